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
import os
import sys

from tools.calibration import THRESHOLD_HELP
from tools.contract import CROP_CHOICES, ModelFilesError, load_labels
from tools.model_source import add_model_arguments, is_model_url
from tools.quiet import import_keras_quietly
from tools.serving.app import DEFAULTS, create_app
from tools.serving.feedback import CollectError, check_rule_file
from tools.serving.http import READ_TIMEOUT, THREADS, make_server_for, serve_until_interrupted
from tools.serving.kiosk import CameraError


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p, DEFAULTS["MODEL"])
    p.add_argument("--host", default="0.0.0.0",
                   help="address to listen on (default: %(default)s, every network interface: phones on your network "
                        "can open the page, and so can anyone else on it; --host 127.0.0.1 keeps it to this computer)")
    p.add_argument("--port", type=int, default=10086, help="port, as in the original (default: %(default)s)")
    p.add_argument("--crops", type=int, choices=CROP_CHOICES, default=DEFAULTS["CROPS"],
                   help="deterministic crops per photo (default: %(default)s)")
    p.add_argument("--threshold", type=float, default=DEFAULTS["UNSURE_THRESHOLD"], help=THRESHOLD_HELP)
    p.add_argument("--max_mb", type=float, default=DEFAULTS["MAX_CONTENT_LENGTH"] // 2 ** 20,
                   help="largest upload in MB (default: %(default)s)")
    p.add_argument("--max_mpx", type=float, default=DEFAULTS["MAX_PIXELS"] / 1e6,
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
    p.add_argument("--threads", type=int, default=THREADS,
                   help="worker threads with --production; micro-batching groups the photos they carry "
                        "(default: %(default)s)")
    p.add_argument("--timeout", type=float, default=READ_TIMEOUT,
                   help="seconds a connection may send nothing (while sending headers or body, or idle between "
                        "requests) before it is closed; a stalled upload gets 408 on the dev server "
                        "(default: %(default)s)")
    return p


def main(args):
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
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        print(f"error: --threshold must be in 0..1, got {args.threshold}", file=sys.stderr)
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
        try:  # before the model loads (a URL model's labels are checked once it is fetched)
            check_rule_file(args.collect, load_labels(args.model)[0])
        except CollectError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except ModelFilesError:
            pass  # the model load says so
    import_keras_quietly()  # before the model loader imports Keras: TensorFlow's start-up noise hidden
    try:
        app = create_app(config)
    except CameraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    holder = app.extensions["garbage_model"]
    if not holder.wait():
        print(f"error: {holder.detail}", file=sys.stderr)
        return 2
    server = make_server_for(app, args.host, args.port, args.production, args.threads, args.timeout,
                             args.cert, args.key)
    scheme = "https" if args.cert else "http"
    kind = "waitress" if args.production else "development server"
    print(f"model ready ({len(holder.classifier.labels)} classes); {kind} listening on {args.host}:{args.port}"
          + (" (every network interface; --host 127.0.0.1 for this computer only)" if args.host in ("0.0.0.0", "::") else "")
          + f"; open {scheme}://localhost:{args.port}/"
          + (f"; collecting corrected photos into {args.collect}" if args.collect else ""), flush=True)
    serve_until_interrupted(server, args.production)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
