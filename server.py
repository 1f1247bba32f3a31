"""The web app: a camera page (the browser's camera, any phone or laptop), an upload page and a JSON API.

    python server.py                              # http://localhost:10086
    python server.py --model output/best.h5 --host 0.0.0.0 --port 10086 --cert cert.pem --key key.pem
    gunicorn -w 2 --threads 4 -b 0.0.0.0:10086 'server:create_app()'

The model is loaded in the background when the app is created and warmed up before it answers;
/healthz says 503 until then. Photos arriving together are judged in one model call. Uploads are
not written to disk unless --save_uploads DIR is given (then under generated names).
Settings for gunicorn come from the environment: GARBAGE_MODEL, GARBAGE_CROPS, GARBAGE_SAVE_UPLOADS, ...
"""

import argparse
import datetime
import io
import json
import os
import sys
import threading
import time
import uuid

from flask import Flask, Request, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

DEFAULTS = {
    "MODEL": "output/best.h5",
    "CROPS": 5,
    "TOP_K": 5,
    "UNSURE_THRESHOLD": 0.5,
    "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,
    "BATCH_MAX": 8,
    "BATCH_WAIT_MS": 5.0,
    "SAVE_UPLOADS": None,
    "SERVER_CAMERA": None,
}
ENV_PREFIX = "GARBAGE_"


class InMemoryRequest(Request):
    """Multipart uploads stay in memory (Werkzeug spools files over 500 KB to a temporary file on
    disk); MAX_CONTENT_LENGTH bounds how much memory one request can take."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


class BadImage(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def _from_env():
    out = {}
    for key, default in DEFAULTS.items():
        value = os.environ.get(ENV_PREFIX + key)
        if value is not None:
            out[key] = type(default)(value) if isinstance(default, (int, float)) else value
    return out


class ModelHolder:
    """Loads the classifier in a background thread; `ready`, `error` and `batcher` tell the routes."""

    def __init__(self, config):
        self.config = config
        self.ready = threading.Event()
        self.error = None
        self.classifier = self.batcher = None
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def _load(self):
        try:
            from tools.batcher import MicroBatcher
            from tools.inference import Classifier

            self.classifier = Classifier(self.config["MODEL"], crops=int(self.config["CROPS"]),
                                         top_k=int(self.config["TOP_K"]),
                                         unsure_threshold=float(self.config["UNSURE_THRESHOLD"]))
            self.batcher = MicroBatcher(self.classifier, int(self.config["BATCH_MAX"]),
                                        float(self.config["BATCH_WAIT_MS"]))
            self.ready.set()
        except Exception as e:  # reported by /healthz and /predict, the server keeps answering
            self.error = str(e)


def read_upload():
    """The image bytes of this request: multipart field `file`, or a raw image/* body."""
    ctype = (request.mimetype or "").lower()
    if ctype == "multipart/form-data":
        if "file" not in request.files:
            raise BadImage("no image: send the photo in the multipart field 'file'")
        data = request.files["file"].read()
    elif ctype.startswith("image/") or ctype == "application/octet-stream":
        data = request.get_data(cache=False)
    elif not ctype and not request.content_length:
        raise BadImage("no image: send the photo in the multipart field 'file' or as an image/* body")
    else:
        raise BadImage(f"unsupported Content-Type {ctype}: send multipart/form-data or an image/* body", 415)
    if not data:
        raise BadImage("empty file")
    return data


def classify_upload(holder, data, save_dir=None):
    """Sniff, decode, classify (micro-batched); raise BadImage for anything that is not a usable photo."""
    from tools.image_io import ImageDecodeError
    from tools.sniff import ACCEPTED, sniff

    fmt, accepted = sniff(data)
    if fmt is None:
        raise BadImage("not an image (the bytes are no JPEG, PNG, GIF, WebP, BMP or TIFF)")
    if not accepted:
        raise BadImage(f"unsupported image type {fmt}: send JPEG, PNG, GIF, WebP, BMP or TIFF", 415)
    start = time.perf_counter()
    try:
        prepared = holder.classifier.prepare(data)
    except ImageDecodeError as e:
        raise BadImage(str(e)) from None
    result = holder.batcher.submit(prepared)
    result = dict(result, time_ms=round((time.perf_counter() - start) * 1000, 1))
    if save_dir:
        save_upload(save_dir, data, ACCEPTED[fmt], result)
    return result


def save_upload(folder, data, ext, result):
    """Keep the photo under a generated name (never the client's) with a JSON sidecar of the answer."""
    os.makedirs(folder, exist_ok=True)
    stem = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:12]
    with open(os.path.join(folder, f"{stem}.{ext}"), "wb") as f:
        f.write(data)
    with open(os.path.join(folder, f"{stem}.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)


def create_app(test_config=None):
    """Flask application factory; nothing is loaded at import time.

    Settings: DEFAULTS, overridden by GARBAGE_* environment variables, then by `test_config`.
    """
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.config.from_mapping(DEFAULTS)
    app.config.update(_from_env())
    if test_config:
        app.config.update(test_config)
    app.json.ensure_ascii = False
    holder = ModelHolder(app.config)
    app.extensions["garbage_model"] = holder
    camera = None
    if app.config["SERVER_CAMERA"] not in (None, ""):
        from tools.camera import ServerCamera

        camera = ServerCamera(app.config["SERVER_CAMERA"])  # raises CameraError if it cannot open
        app.extensions["garbage_camera"] = camera

    @app.errorhandler(HTTPException)
    def http_error(e):
        if e.code == 413:
            limit = app.config["MAX_CONTENT_LENGTH"]
            return jsonify(error=f"file too large: the limit is {limit // (1024 * 1024)} MB"), 413
        return jsonify(error=f"{e.name}: {e.description}"), e.code

    @app.get("/")
    def index():
        return render_template("index.html", server_camera=camera is not None)

    @app.get("/upload")
    def upload():
        return render_template("upload.html")

    @app.get("/healthz")
    def healthz():
        if holder.ready.is_set():
            return jsonify(status="ok", classes=len(holder.classifier.labels), model=app.config["MODEL"],
                           input_size=holder.classifier.input_size, crops=holder.classifier.crops)
        status = "error" if holder.error else "loading"
        return jsonify(status=status, error=holder.error, model=app.config["MODEL"]), 503

    def not_ready():
        return jsonify(error=holder.error or "model is still loading, try again shortly"), 503

    @app.post("/predict")
    def predict():
        if not holder.ready.is_set():
            return not_ready()
        try:
            data = read_upload()
            return jsonify(classify_upload(holder, data, app.config["SAVE_UPLOADS"]))
        except BadImage as e:
            return jsonify(error=str(e)), e.status

    @app.get("/labels")
    def labels():
        if not holder.ready.is_set():
            return not_ready()
        return jsonify(labels=holder.classifier.labels, bins=holder.classifier.bins)

    if camera is not None:
        @app.get("/video_feed")
        def video_feed():
            return Response(camera.mjpeg(), mimetype="multipart/x-mixed-replace; boundary=frame")

        @app.route("/shot_photo", methods=["GET", "POST"])
        def shot_photo():
            if not holder.ready.is_set():
                return not_ready()
            try:
                data = camera.snapshot_jpeg()
            except OSError as e:
                return jsonify(error=str(e)), 503
            return jsonify(classify_upload(holder, data, app.config["SAVE_UPLOADS"]))

    return app


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULTS["MODEL"], help="model from train.py, labels.json beside it (default: %(default)s)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=10086, help="port, as in the original (default: %(default)s)")
    p.add_argument("--crops", type=int, choices=(1, 5, 10), default=DEFAULTS["CROPS"],
                   help="deterministic crops per photo (default: %(default)s)")
    p.add_argument("--threshold", type=float, default=DEFAULTS["UNSURE_THRESHOLD"],
                   help="top probability below which the answer is 'not sure' (default: %(default)s)")
    p.add_argument("--max_mb", type=float, default=10, help="largest upload in MB (default: %(default)s)")
    p.add_argument("--batch_max", type=int, default=DEFAULTS["BATCH_MAX"],
                   help="most photos per model call (default: %(default)s)")
    p.add_argument("--batch_wait_ms", type=float, default=DEFAULTS["BATCH_WAIT_MS"],
                   help="how long a photo waits for company (default: %(default)s)")
    p.add_argument("--save_uploads", metavar="DIR", help="keep each photo (generated name) + JSON of the answer")
    p.add_argument("--server_camera", metavar="INDEX",
                   help="kiosk mode: a camera wired to the server (OpenCV index, or a video file) at /video_feed "
                        "and /shot_photo")
    p.add_argument("--cert", help="TLS certificate (PEM): serve https so phones may use the camera")
    p.add_argument("--key", help="TLS private key (PEM), with --cert")
    return p


def main(args):
    from tools.camera import CameraError

    if bool(args.cert) != bool(args.key):
        print("error: --cert and --key go together", file=sys.stderr)
        return 2
    config = {"MODEL": args.model, "CROPS": args.crops, "UNSURE_THRESHOLD": args.threshold,
              "MAX_CONTENT_LENGTH": int(args.max_mb * 1024 * 1024), "BATCH_MAX": args.batch_max,
              "BATCH_WAIT_MS": args.batch_wait_ms, "SAVE_UPLOADS": args.save_uploads,
              "SERVER_CAMERA": args.server_camera}
    if not os.path.isfile(args.model):
        print(f"error: no model at {args.model}; train one with train.py or pass --model", file=sys.stderr)
        return 2
    try:
        app = create_app(config)
    except CameraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    holder = app.extensions["garbage_model"]
    while not holder.ready.is_set() and holder.error is None:
        time.sleep(0.05)
    if holder.error:
        print(f"error: {holder.error}", file=sys.stderr)
        return 2
    scheme = "https" if args.cert else "http"
    print(f"model ready ({len(holder.classifier.labels)} classes); open {scheme}://localhost:{args.port}/", flush=True)
    app.run(host=args.host, port=args.port, threaded=True,
            ssl_context=(args.cert, args.key) if args.cert else None)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
