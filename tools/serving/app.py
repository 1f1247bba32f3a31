"""The Flask application factory: create_app() for server.py and for any WSGI server.

Why a factory: nothing is loaded at import time. create_app() reads its settings (DEFAULTS, then
GARBAGE_* environment variables, then its argument) into app.config, starts loading the model in
the background (tools/serving/model.py), opens the collect folder and the server camera when asked
to, and registers the pages and the API (tools/serving/pages.py, api.py).
"""

import os

from flask import Flask
from werkzeug.exceptions import HTTPException

from tools.contract import DEFAULT_CROPS, DEFAULT_MODEL
from tools.images import MAX_PIXELS
from tools.serving import state
from tools.serving.api import api, http_error, kiosk
from tools.serving.feedback import CaptureStore, Collector
from tools.serving.http import add_security_headers
from tools.serving.kiosk import ServerCamera
from tools.serving.model import ModelHolder
from tools.serving.pages import pages
from tools.serving.uploads import InMemoryRequest

#: Every setting of the app and its default; server.py's flags set them, and so does GARBAGE_<NAME>.
DEFAULTS = {
    "MODEL": DEFAULT_MODEL,
    "MODEL_SHA256": None,
    "CROPS": DEFAULT_CROPS,
    "TOP_K": 5,
    "UNSURE_THRESHOLD": None,  # None: the threshold in the model's labels.json (tools/calibration.py)
    "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,
    "MAX_PIXELS": MAX_PIXELS,
    "BATCH_MAX": 8,
    "BATCH_WAIT_MS": 5.0,
    "SAVE_UPLOADS": None,
    "SERVER_CAMERA": None,
    # --collect DIR (tools/serving/feedback.py): photos wait COLLECT_TTL_S seconds for feedback, at most
    # COLLECT_PENDING of them and COLLECT_PENDING_MB in all (the oldest make room); DIR is capped at
    # COLLECT_MAX_MB.
    "COLLECT_DIR": None,
    "COLLECT_MAX_MB": 1024.0,
    "COLLECT_TTL_S": 600.0,
    "COLLECT_PENDING": 200,
    "COLLECT_PENDING_MB": 100.0,
}
ENV_PREFIX = "GARBAGE_"
#: The checkout: templates/ and static/ lie there, beside server.py.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def settings_from_env(environ=os.environ):
    """The GARBAGE_<NAME> variables that are set, as settings (numbers converted like their default)."""
    out = {}
    for key, default in DEFAULTS.items():
        value = environ.get(ENV_PREFIX + key)
        if value is not None:
            out[key] = type(default)(value) if isinstance(default, (int, float)) else value
    return out


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

    holder = ModelHolder(app.config, on_ready=on_ready)
    camera = None
    if app.config["SERVER_CAMERA"] not in (None, ""):
        camera = ServerCamera(app.config["SERVER_CAMERA"])  # raises CameraError if it cannot open
    state.attach(app, holder, collector, camera)
    app.register_error_handler(HTTPException, http_error)
    app.after_request(add_security_headers)
    app.register_blueprint(pages)
    app.register_blueprint(api)
    if camera is not None:
        app.register_blueprint(kiosk)
    return app
