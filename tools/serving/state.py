"""What create_app() hands to the routes: the model holder, the collector, the server camera.

Why: the routes are Blueprints (tools/serving/api.py, pages.py) that see only `current_app`; the
objects live in app.extensions under the names below, where tests and WSGI hosts find them too.
"""

from flask import current_app

MODEL, COLLECTOR, CAMERA = "garbage_model", "garbage_collector", "garbage_camera"


def attach(app, holder, collector=None, camera=None):
    """Keep the app's objects in app.extensions (collector and camera only when there is one)."""
    app.extensions[MODEL] = holder
    for name, value in ((COLLECTOR, collector), (CAMERA, camera)):
        if value is not None:
            app.extensions[name] = value


def holder():
    """The ModelHolder of the app serving this request."""
    return current_app.extensions[MODEL]


def collector():
    """The Collector with --collect DIR, else None."""
    return current_app.extensions.get(COLLECTOR)


def camera():
    """The ServerCamera with --server_camera, else None."""
    return current_app.extensions.get(CAMERA)
