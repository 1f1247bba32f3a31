"""The Flask application factory: create_app() for server.py and for any WSGI server.

Why a factory: nothing is loaded at import time. create_app() reads its settings (DEFAULTS, then
GARBAGE_* environment variables, then its argument: tools/serving/settings.py) into app.config, starts loading the model in
the background (tools/serving/model.py), opens the collect folder and the server camera when asked
to, and registers the pages and the API (tools/serving/pages.py, api.py).
"""

import os

from flask import Flask
from werkzeug.exceptions import HTTPException

from tools.serving import state
from tools.serving.api import api, http_error, kiosk
from tools.serving.feedback import CaptureStore, Collector
from tools.serving.http import add_security_headers
from tools.serving.kiosk import ServerCamera
from tools.serving.model import ModelHolder
from tools.serving.pages import pages
from tools.serving.settings import DEFAULTS, settings_from_env
from tools.serving.uploads import InMemoryRequest

#: The checkout: templates/ and static/ lie there, beside server.py.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _collector(config):
    """The Collector of COLLECT_DIR, None when not collecting."""
    if config["COLLECT_DIR"] in (None, ""):
        return None
    max_mb = config["COLLECT_MAX_MB"]
    store = CaptureStore(int(config["COLLECT_PENDING"]), int(float(config["COLLECT_PENDING_MB"]) * 2 ** 20),
                         float(config["COLLECT_TTL_S"]))
    return Collector(config["COLLECT_DIR"], None if max_mb is None else float(max_mb) * 2 ** 20, store)


def create_app(test_config=None):
    """Flask application factory; nothing is loaded at import time.

    Settings: DEFAULTS, overridden by GARBAGE_* environment variables, then by `test_config`.
    Raises kiosk.CameraError when SERVER_CAMERA is set and cannot be opened.
    """
    app = Flask(__name__, root_path=ROOT)
    app.request_class = InMemoryRequest
    app.config.from_mapping(DEFAULTS)
    app.config.update(settings_from_env())
    if test_config:
        app.config.update(test_config)
    app.json.ensure_ascii = False
    collector = _collector(app.config)

    def on_ready(h):  # the collect folder's rule file is the served model's class list: known once it is loaded
        if collector is not None:
            collector.start(h.classifier.labels, h.sha256)

    camera = None
    if app.config["SERVER_CAMERA"] not in (None, ""):
        # before the model starts loading: an exit while a thread imports TensorFlow aborts the process
        # ("terminate called without an active exception") instead of exiting 2
        camera = ServerCamera(app.config["SERVER_CAMERA"])  # raises CameraError if it cannot open
    holder = ModelHolder(app.config, on_ready=on_ready)
    state.attach(app, holder, collector, camera)
    app.register_error_handler(HTTPException, http_error)
    app.after_request(add_security_headers)
    app.register_blueprint(pages)
    app.register_blueprint(api)
    if camera is not None:
        app.register_blueprint(kiosk)
    return app
