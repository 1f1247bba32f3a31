"""The web app: a camera page (the browser's camera, any phone or laptop), an upload page and a JSON API.

    python server.py                              # http://localhost:10086 (Werkzeug's threaded server)
    python server.py --model output/best.h5 --host 0.0.0.0 --port 10086 --cert cert.pem --key key.pem
    python server.py --production --threads 8     # waitress: the way to serve it for real (Linux, macOS, Windows)
    python server.py --model https://example.com/models/v3/best.h5 --model_sha256 HEX   # a published model

By default the server listens on 0.0.0.0, i.e. every network interface: phones on the same network
can open the page (that is the point), and so can anyone else on that network. --host 127.0.0.1
keeps it to this computer.

--production serves through waitress, which reads each whole request before a worker thread sees
it: clients that stall or trickle bytes hold a connection, never a worker. Both servers close a
connection that sends nothing for --timeout seconds (headers, body, idle keep-alive). waitress has
no TLS: put a TLS proxy (Caddy, nginx) in front, or use the dev server's --cert/--key.

The model is loaded in the background when the app is created and warmed up before it answers;
/healthz says 503 until then. A --model URL (labels.json beside it) is fetched into the Keras cache
in that background load (tools/model_source.py); a cached copy is used offline. Photos arriving
together are judged in one model call. Uploads are not written to disk unless --save_uploads DIR is
given (then under generated names).

--collect DIR closes the loop: /predict answers carry a capture_id, the page asks "Correct?" or
"Wrong? Choose the right item", and /feedback writes the photo and its label into DIR in the
garbage_classify_v2 layout, ready for sample.py --check and train.py (tools/serving/feedback.py). Without
--collect nothing of this exists and no photo is kept.

create_app() also reads its settings from the environment, for any WSGI server: GARBAGE_MODEL,
GARBAGE_MODEL_SHA256, GARBAGE_CROPS, GARBAGE_SAVE_UPLOADS, GARBAGE_COLLECT_DIR, ...
"""

import argparse
import datetime
import io
import json
import os
import re
import ssl
import sys
import threading
import time
import uuid

from flask import Flask, Request, Response, jsonify, render_template, request
from werkzeug.exceptions import ClientDisconnected, HTTPException
from werkzeug.sansio.multipart import Epilogue, Field, File, MultipartDecoder, NeedData
from werkzeug.serving import WSGIRequestHandler, make_server

from tools.serving.feedback import CaptureStore, CollectError, Collector, FeedbackError
from tools.images import MAX_PIXELS, ImageDecodeError, ImageTooLarge
from tools.model_source import file_sha256, is_model_url, model_file_name, resolve_model
from tools.quiet import import_keras_quietly
from tools.images import ACCEPTED, ACCEPTED_NAMES, sniff

DEFAULTS = {
    "MODEL": "output/best.h5",
    "MODEL_SHA256": None,
    "CROPS": 5,
    "TOP_K": 5,
    "UNSURE_THRESHOLD": 0.5,
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
#: The Server header of both servers: no product versions.
SERVER_NAME = "garbage-classifier"
#: Seconds a connection may send nothing (while sending headers or body, or idle) before it is closed.
READ_TIMEOUT = 30
#: On every response, pages and API. The pages load only their own scripts and styles (no inline
#: code); blob: is the upload page's preview of the chosen photo. The camera preview uses
#: video.srcObject, which no CSP directive governs.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


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
    """Loads the classifier in a background thread (fetching a URL model first); `ready`, `error` and
    `batcher` tell the routes. `error` names the model by file name only; `detail` is the whole message
    (URL, cache path) for the operator's console."""

    def __init__(self, config, on_ready=None):
        self.config = config
        self.on_ready = on_ready  # called with the holder once the model is loaded; may raise CollectError
        self.ready = threading.Event()
        self.error = self.detail = None
        self.classifier = self.batcher = None
        self.sha256 = None
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def _load(self):
        path = None
        try:
            from tools.serving.batcher import MicroBatcher
            from tools.inference import Classifier

            path = resolve_model(self.config["MODEL"], self.config.get("MODEL_SHA256"))
            if os.path.isfile(path):
                self.sha256 = file_sha256(path)
            self.classifier = Classifier(path, crops=int(self.config["CROPS"]),
                                         top_k=int(self.config["TOP_K"]),
                                         unsure_threshold=float(self.config["UNSURE_THRESHOLD"]),
                                         max_pixels=int(self.config["MAX_PIXELS"]))
            self.batcher = MicroBatcher(self.classifier, int(self.config["BATCH_MAX"]),
                                        float(self.config["BATCH_WAIT_MS"]))
            if self.on_ready is not None:
                self.on_ready(self)
            self.ready.set()
        except CollectError as e:  # the collect folder: its path goes to the console only
            self.detail, self.error = str(e), e.public
        except Exception as e:  # reported by /healthz and /predict, the server keeps answering
            self.detail = str(e)
            # the model's file name only: clients are not told where it lives on the server, nor its URL
            cached = getattr(e, "cache_path", None)
            hidden = {self.config["MODEL"], os.path.abspath(self.config["MODEL"]), path and os.path.abspath(path),
                      cached, cached and os.path.abspath(cached), cached and os.path.dirname(os.path.abspath(cached))}
            message = self.detail
            for text in sorted(filter(None, hidden), key=len, reverse=True):
                message = message.replace(text, self.model_name)
            self.error = message

    @property
    def model_name(self):
        return model_file_name(self.config["MODEL"])


_QUOTED = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_LINE_BREAKS = re.compile(rb"[\r\n]")


class TolerantMultipartDecoder(MultipartDecoder):
    """Werkzeug's multipart decoder, reading a part's headers whatever the client put in a filename.

    Werkzeug decodes part headers as strict UTF-8 (one non-UTF-8 byte in a filename raises
    UnicodeDecodeError, and its form parser then silently drops the whole form) and splits them at
    any CR or LF (one inside the quoted filename cuts the Content-Disposition line: the filename is
    lost and the photo becomes a text field). Here line breaks inside a quoted string become spaces
    and undecodable bytes U+FFFD. Filenames are never used: uploads are judged by their bytes and
    saved under generated names.
    """

    def _parse_headers(self, data):
        data = _QUOTED.sub(lambda m: _LINE_BREAKS.sub(b" ", m.group()), bytes(data))
        return super()._parse_headers(data.decode("utf-8", "replace").encode("utf-8"))


def read_multipart_photo(stream, boundary, max_field_size, max_parts):
    """The bytes of the first part named `file` (with or without a filename); None if there is none.

    Other parts are read and dropped; more than `max_parts` parts, or a text field (a part without
    a filename) over `max_field_size` bytes, is a 413 that says so: Werkzeug's limits, with their own
    messages (Werkzeug raises a bare 413 for both, which read as "file too large").
    """
    decoder = TolerantMultipartDecoder(boundary)
    photo = target = None
    parts = field_size = 0
    name, is_text = "", False
    while True:
        chunk = stream.read(64 * 1024)
        try:
            decoder.receive_data(chunk or None)
            event = decoder.next_event()
            while not isinstance(event, (NeedData, Epilogue)):
                if isinstance(event, (Field, File)):
                    parts += 1
                    if max_parts is not None and parts > max_parts:
                        raise BadImage(f"too many form fields: the limit is {max_parts} parts; "
                                       "send the photo in the multipart field 'file'", 413)
                    name, is_text, field_size = event.name, isinstance(event, Field), 0
                    target = io.BytesIO() if name == "file" and photo is None else None
                    photo = photo if target is None else target
                elif target is not None:
                    target.write(event.data)
                elif is_text:
                    field_size += len(event.data)
                    if max_field_size is not None and field_size > max_field_size:
                        raise BadImage(f"form field {name!r} is too large: text fields may have "
                                       f"{max_field_size // 1000} KB; send the photo in the multipart field 'file'", 413)
                event = decoder.next_event()
        except ValueError as e:  # what Werkzeug's parser raises for a broken body
            raise BadImage(f"malformed multipart body: {e}") from None
        if not chunk or isinstance(event, Epilogue):
            break
    return None if photo is None else photo.getvalue()


def read_upload():
    """The image bytes of this request: multipart field `file`, or a raw image/* body."""
    ctype = (request.mimetype or "").lower()
    try:
        if ctype == "multipart/form-data":
            boundary = request.mimetype_params.get("boundary", "")
            if not boundary:
                raise BadImage("malformed multipart body: the Content-Type has no boundary")
            data = read_multipart_photo(request.stream, boundary.encode("latin-1"),
                                        request.max_form_memory_size, request.max_form_parts)
            if data is None:
                raise BadImage("no image: send the photo in the multipart field 'file'")
        elif ctype.startswith("image/") or ctype == "application/octet-stream":
            data = request.get_data(cache=False)
        elif not ctype and not request.content_length:
            raise BadImage("no image: send the photo in the multipart field 'file' or as an image/* body")
        else:
            raise BadImage(f"unsupported Content-Type {ctype}: send multipart/form-data or an image/* body", 415)
    except ClientDisconnected as e:  # Werkzeug's answer to a read that failed or timed out
        if isinstance(e.__context__, TimeoutError):
            raise BadImage("upload stalled: the request body stopped arriving before it was complete", 408) from None
        raise BadImage("upload cut off: the client closed the connection before the body was complete") from None
    if not data:
        raise BadImage("empty file")
    return data


def classify_upload(holder, data, save_dir=None):
    """Sniff, decode, classify (micro-batched); raise BadImage for anything that is not a usable photo."""
    fmt, accepted = sniff(data)
    if fmt is None:
        raise BadImage(f"not an image (the bytes are no {ACCEPTED_NAMES})")
    if not accepted:
        raise BadImage(f"unsupported image type {fmt}: send {ACCEPTED_NAMES}", 415)
    start = time.perf_counter()
    try:
        prepared = holder.classifier.prepare(data)
    except ImageDecodeError as e:
        raise BadImage(str(e), 413 if isinstance(e, ImageTooLarge) else 400) from None
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
    collector = None
    if app.config["COLLECT_DIR"] not in (None, ""):
        max_mb = app.config["COLLECT_MAX_MB"]
        store = CaptureStore(int(app.config["COLLECT_PENDING"]),
                             int(float(app.config["COLLECT_PENDING_MB"]) * 2 ** 20), float(app.config["COLLECT_TTL_S"]))
        collector = Collector(app.config["COLLECT_DIR"], None if max_mb is None else float(max_mb) * 2 ** 20, store)
        app.extensions["garbage_collector"] = collector

    def on_ready(h):  # the collect folder's rule file is the served model's class list: known once it is loaded
        if collector is not None:
            collector.start(h.classifier.labels, h.sha256)

    holder = ModelHolder(app.config, on_ready=on_ready)
    app.extensions["garbage_model"] = holder
    camera = None
    if app.config["SERVER_CAMERA"] not in (None, ""):
        from tools.serving.kiosk import ServerCamera

        camera = ServerCamera(app.config["SERVER_CAMERA"])  # raises CameraError if it cannot open
        app.extensions["garbage_camera"] = camera

    @app.errorhandler(HTTPException)
    def http_error(e):
        if e.code == 413:  # the body is over MAX_CONTENT_LENGTH (form limits are BadImage, see read_multipart_photo)
            limit = app.config["MAX_CONTENT_LENGTH"]
            return jsonify(error=f"file too large: the limit is {limit / (1024 * 1024):g} MB"), 413
        return jsonify(error=f"{e.name}: {e.description}"), e.code

    @app.after_request
    def security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/")
    def index():
        return render_template("index.html", server_camera=camera is not None, collecting=collector is not None)

    @app.get("/upload")
    def upload():
        return render_template("upload.html", collecting=collector is not None)

    @app.get("/healthz")
    def healthz():
        if holder.ready.is_set():
            extra = {} if collector is None else {"collected": collector.collected}
            return jsonify(status="ok", classes=len(holder.classifier.labels), model=holder.model_name,
                           model_sha256=holder.sha256, input_size=holder.classifier.input_size,
                           crops=holder.classifier.crops, **extra)
        status = "error" if holder.error else "loading"
        return jsonify(status=status, error=holder.error, model=holder.model_name), 503

    def not_ready():
        return jsonify(error=holder.error or "model is still loading, try again shortly"), 503

    def answer(data):
        """classify_upload's answer; while collecting, the photo waits for feedback under its capture_id."""
        result = classify_upload(holder, data, app.config["SAVE_UPLOADS"])
        if collector is not None:
            result["collecting"] = True
            result["capture_id"] = collector.store.put(data, ACCEPTED[sniff(data)[0]], result["label"],
                                                       result["probability"])
        return result

    @app.post("/predict")
    def predict():
        if not holder.ready.is_set():
            return not_ready()
        try:
            return jsonify(answer(read_upload()))
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
            return jsonify(answer(data))

    @app.post("/feedback")
    def feedback():
        """{"capture_id": ..., "label": <class id>}: save the photo of that capture under that label."""
        if collector is None:
            return jsonify(error="not collecting: the server was started without --collect DIR"), 404
        if not holder.ready.is_set():
            return not_ready()
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return jsonify(error='send JSON {"capture_id": "...", "label": <class id>}'), 400
        try:
            saved = collector.feedback(body.get("capture_id"), body.get("label"))
        except FeedbackError as e:
            return jsonify(error=str(e)), e.status
        return jsonify(saved=True, **saved), 201

    return app


class DevRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler under a socket timeout: a read (request line, headers, body) or a write that
    makes no progress for `timeout` seconds fails and frees the thread (a stalled upload gets 408, an
    idle connection is closed). The Server header names no versions."""

    timeout = READ_TIMEOUT

    def version_string(self):
        return SERVER_NAME


class _HandshakeInThreadContext(ssl.SSLContext):
    """Werkzeug wraps the listening socket, so every TLS handshake would run inside accept(), in the
    one thread that accepts all connections, with no timeout: one client that connects and sends
    nothing would stop the https server. Deferred, the handshake runs on the connection's first read,
    in its own thread, under the handler's timeout."""

    def wrap_socket(self, sock, *args, **kwargs):
        kwargs["do_handshake_on_connect"] = False
        return super().wrap_socket(sock, *args, **kwargs)


def make_dev_server(app, host, port, timeout=READ_TIMEOUT, cert=None, key=None):
    """Werkzeug's threaded server (python server.py), with read timeouts; https with cert/key."""
    ssl_context = None
    if cert:
        ssl_context = _HandshakeInThreadContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(cert, key)
    handler = type("RequestHandler", (DevRequestHandler,), {"timeout": timeout})
    return make_server(host, port, app, threaded=True, request_handler=handler, ssl_context=ssl_context)


def make_production_server(app, host, port, threads=8, timeout=READ_TIMEOUT):
    """waitress (python server.py --production). Its I/O loop reads each whole request, headers and
    body, before a worker thread sees it: clients that stall or trickle bytes hold a connection, never
    a worker. A connection silent for `timeout` seconds is closed."""
    import waitress

    body_limit = app.config["MAX_CONTENT_LENGTH"]
    return waitress.create_server(
        app, host=host, port=port, threads=threads, ident=SERVER_NAME,
        channel_timeout=timeout, cleanup_interval=max(1.0, timeout / 3),
        # a body over the limit is refused from its Content-Length, before it is read
        max_request_body_size=body_limit + 1,
        # bodies stay in memory (waitress spools those over 512 KB to a temporary file by default)
        inbuf_overflow=body_limit + 64 * 1024)


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULTS["MODEL"],
                   help="model from train.py, labels.json beside it, or the http(s) URL of a published one, fetched "
                        "into the Keras cache (default: %(default)s)")
    p.add_argument("--model_sha256", metavar="HEX",
                   help="sha256 the model file must have (sha256sum best.h5); a URL's download that differs is "
                        "refused and not cached")
    p.add_argument("--host", default="0.0.0.0",
                   help="address to listen on (default: %(default)s, every network interface: phones on your network "
                        "can open the page, and so can anyone else on it; --host 127.0.0.1 keeps it to this computer)")
    p.add_argument("--port", type=int, default=10086, help="port, as in the original (default: %(default)s)")
    p.add_argument("--crops", type=int, choices=(1, 5, 10), default=DEFAULTS["CROPS"],
                   help="deterministic crops per photo (default: %(default)s)")
    p.add_argument("--threshold", type=float, default=DEFAULTS["UNSURE_THRESHOLD"],
                   help="top probability below which the answer is 'not sure' (default: %(default)s)")
    p.add_argument("--max_mb", type=float, default=10, help="largest upload in MB (default: %(default)s)")
    p.add_argument("--max_mpx", type=float, default=MAX_PIXELS / 1e6,
                   help="largest photo in megapixels decoded; larger ones get 413 before any decoding "
                        "(default: %(default)s)")
    p.add_argument("--batch_max", type=int, default=DEFAULTS["BATCH_MAX"],
                   help="most photos per model call (default: %(default)s)")
    p.add_argument("--batch_wait_ms", type=float, default=DEFAULTS["BATCH_WAIT_MS"],
                   help="how long a photo waits for company (default: %(default)s)")
    p.add_argument("--save_uploads", metavar="DIR", help="keep each photo (generated name) + JSON of the answer")
    p.add_argument("--collect", metavar="DIR",
                   help="collect training data: the pages ask whether each answer was right, and a confirmed or "
                        "corrected photo is saved into DIR with its label (garbage_classify_v2 layout, with the "
                        "model's rule file and feedback.csv); train on it with train.py --data_dir. Off by default: "
                        "without it no photo is kept")
    p.add_argument("--collect_max_mb", type=float, default=DEFAULTS["COLLECT_MAX_MB"],
                   help="with --collect: most MB the DIR may hold; feedback beyond it gets 507 (default: %(default)s)")
    p.add_argument("--server_camera", metavar="INDEX",
                   help="kiosk mode: a camera wired to the server (OpenCV index, or a video file) at /video_feed "
                        "and /shot_photo")
    p.add_argument("--cert", help="TLS certificate (PEM): serve https so phones may use the camera")
    p.add_argument("--key", help="TLS private key (PEM), with --cert")
    p.add_argument("--production", action="store_true",
                   help="serve with waitress, the way to run it for real: whole requests are read before a worker "
                        "sees them, so slow or stalled clients cannot take the workers (no TLS: put a TLS proxy in "
                        "front)")
    p.add_argument("--threads", type=int, default=8,
                   help="worker threads with --production; micro-batching groups the photos they carry "
                        "(default: %(default)s)")
    p.add_argument("--timeout", type=float, default=READ_TIMEOUT,
                   help="seconds a connection may send nothing (while sending headers or body, or idle between "
                        "requests) before it is closed; a stalled upload gets 408 on the dev server "
                        "(default: %(default)s)")
    return p


def main(args):
    from tools.serving.kiosk import CameraError

    if bool(args.cert) != bool(args.key):
        print("error: --cert and --key go together", file=sys.stderr)
        return 2
    if args.production and args.cert:
        print("error: --production (waitress) does not serve https: put a TLS proxy such as Caddy in front, "
              "or leave out --production to use --cert/--key", file=sys.stderr)
        return 2
    if args.collect_max_mb <= 0:
        print("error: --collect_max_mb must be above 0", file=sys.stderr)
        return 2
    if args.timeout <= 0 or args.threads < 1:
        print("error: --timeout must be above 0 and --threads at least 1", file=sys.stderr)
        return 2
    config = {"MODEL": args.model, "MODEL_SHA256": args.model_sha256, "CROPS": args.crops,
              "UNSURE_THRESHOLD": args.threshold,
              "MAX_CONTENT_LENGTH": int(args.max_mb * 1024 * 1024), "MAX_PIXELS": int(args.max_mpx * 1e6),
              "BATCH_MAX": args.batch_max,
              "BATCH_WAIT_MS": args.batch_wait_ms, "SAVE_UPLOADS": args.save_uploads,
              "SERVER_CAMERA": args.server_camera, "COLLECT_DIR": args.collect,
              "COLLECT_MAX_MB": args.collect_max_mb}
    if not is_model_url(args.model) and not os.path.isfile(args.model):
        print(f"error: no model at {args.model}; train one with train.py or pass --model", file=sys.stderr)
        return 2
    if args.collect and not is_model_url(args.model):
        from tools.serving.feedback import check_rule_file
        from tools.inference import ModelFilesError, load_labels

        try:  # before the model loads (a URL model's labels are checked once it is fetched)
            check_rule_file(args.collect, load_labels(args.model)[0])
        except CollectError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except ModelFilesError:
            pass  # the model load says so
    import_keras_quietly()
    try:
        app = create_app(config)
    except CameraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    holder = app.extensions["garbage_model"]
    while not holder.ready.is_set() and holder.error is None:
        time.sleep(0.05)
    if holder.error:
        print(f"error: {holder.detail}", file=sys.stderr)
        return 2
    if args.production:
        server = make_production_server(app, args.host, args.port, args.threads, args.timeout)
    else:
        server = make_dev_server(app, args.host, args.port, args.timeout, args.cert, args.key)
    scheme = "https" if args.cert else "http"
    kind = "waitress" if args.production else "development server"
    print(f"model ready ({len(holder.classifier.labels)} classes); {kind} listening on {args.host}:{args.port}"
          + (" (every network interface; --host 127.0.0.1 for this computer only)" if args.host in ("0.0.0.0", "::") else "")
          + f"; open {scheme}://localhost:{args.port}/"
          + (f"; collecting corrected photos into {args.collect}" if args.collect else ""), flush=True)
    try:
        if args.production:
            server.run()
        else:
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if args.production:
            server.close()
        else:
            server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
