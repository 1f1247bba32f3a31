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
connection that sends nothing for --timeout seconds, or whose request line and headers take more
than --head_timeout seconds in all, or whose body averages less than --min_upload_rate KB/s (408
JSON); they hold at most --max_connections connections (the dev server answers 503 beyond them).
waitress has no TLS: put a TLS proxy (Caddy, nginx) in front, or use the dev server's --cert/--key.

The port is bound first (a port in use is refused at once) and the URLs printed (this computer's,
and the one phones on the same network open); the model is loaded in the background and warmed up
meanwhile: /healthz and /predict answer 503 with Retry-After until then, and a model that cannot
be loaded stops the server with its error. A --model URL (labels.json beside it) is fetched into the
Keras cache in that background load (tools/model_source.py); a cached copy is used offline. Photos
arriving together are judged in one model call. Uploads are not written to disk unless
--save_uploads DIR is given (then under generated names).

--collect DIR closes the loop: /predict answers carry a capture_id, the page asks "Correct?" or
"Wrong? Choose the right item", and /feedback writes the photo and its label into DIR in the
garbage_classify_v2 layout, ready for sample.py --check and train.py (tools/serving/feedback.py). Without
--collect nothing of this exists and no photo is kept.

create_app() also reads its settings from the environment, for any WSGI server: GARBAGE_MODEL,
GARBAGE_MODEL_SHA256, GARBAGE_CROPS, GARBAGE_SAVE_UPLOADS, GARBAGE_COLLECT_DIR, ...
"""

import argparse
import errno
import os
import socket
import sys
import threading
import time

from tools.calibration import check_threshold
from tools.contract import ModelFilesError, load_labels
from tools.errors import UsageError, guarded
from tools.files import is_url
from tools.model_source import add_model_arguments
from tools.serving.app import create_app
from tools.serving.feedback import check_rule_file
from tools.serving.http import (HEAD_TIMEOUT, MAX_CONNECTIONS, MIN_UPLOAD_RATE, READ_TIMEOUT, THREADS, Limits,
                                allow_open_files, listen, make_server_for, serve_until_interrupted, stop, urls)
from tools.serving.kiosk import CameraError
from tools.serving.settings import DEFAULTS, add_flags, from_flags


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p, DEFAULTS["MODEL"])
    p.add_argument("--host", default="0.0.0.0",
                   help="address to listen on (default: %(default)s, every network interface: phones on your network "
                        "can open the page, and so can anyone else on it; --host 127.0.0.1 keeps it to this computer)")
    p.add_argument("--port", type=int, default=10086, help="port, as in the original (default: %(default)s)")
    add_flags(p)  # --crops, --threshold, --max_mb, ... --server_camera: the app's settings
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
    p.add_argument("--head_timeout", type=float, default=HEAD_TIMEOUT,
                   help="seconds the request line and headers may take in all, from their first byte: a client "
                        "that trickles them gets 408 and is closed (default: %(default)s)")
    p.add_argument("--min_upload_rate", type=float, default=MIN_UPLOAD_RATE / 1024,
                   help="KB/s an upload must average, counted from --head_timeout seconds after its headers; a "
                        "slower one gets 408 (default: %(default)s)")
    p.add_argument("--max_connections", type=int, default=MAX_CONNECTIONS,
                   help="connections held at once; beyond them the dev server answers 503, waitress waits to "
                        "accept (default: %(default)s)")
    return p


def _listen_error(e, host, port):
    """What to tell the operator when the port cannot be bound."""
    if e.errno == errno.EADDRINUSE:
        return f"port {port} is already in use (another server.py?): stop that program or choose another --port"
    if e.errno == errno.EACCES:
        return f"no permission to listen on port {port} (ports below 1024 need administrator rights): choose another --port"
    if e.errno == errno.EADDRNOTAVAIL or isinstance(e, socket.gaierror):
        return f"cannot listen on {host}: not an address of this computer (--host)"
    return f"cannot listen on {host}:{port}: {e.strerror or e}"


@guarded
def main(args):
    if bool(args.cert) != bool(args.key):
        raise UsageError("--cert and --key go together")
    if args.production and args.cert:
        raise UsageError("--production (waitress) does not serve https: put a TLS proxy such as Caddy in front, "
                         "or leave out --production to use --cert/--key")
    if args.collect_max_mb <= 0:
        raise UsageError("--collect_max_mb must be above 0")
    check_threshold(args.threshold)
    if min(args.timeout, args.head_timeout, args.min_upload_rate) <= 0 or args.threads < 1 or args.max_connections < 1:
        raise UsageError("--timeout, --head_timeout and --min_upload_rate must be above 0, --threads and "
                         "--max_connections at least 1")
    config = from_flags(args)
    if not is_url(args.model) and not os.path.isfile(args.model):
        raise UsageError(f"no model at {args.model}; train one with train.py or pass --model")
    if args.collect and not is_url(args.model):
        try:  # before the model loads (a URL model's labels are checked once it is fetched); CollectError: exit 2
            check_rule_file(args.collect, load_labels(args.model)[0])
        except ModelFilesError:
            pass  # the model load says so
    try:
        sock = listen(args.host, args.port)  # first: a port in use is refused before anything loads
    except OSError as e:
        raise UsageError(_listen_error(e, args.host, args.port)) from None
    started = time.monotonic()
    try:
        app = create_app(config)  # the model loads in the background from here on
    except CameraError:
        sock.close()
        raise
    limits = allow_open_files(Limits(args.timeout, args.head_timeout, args.min_upload_rate * 1024,
                                     args.max_connections))
    server = make_server_for(app, sock, args.production, limits, args.threads, args.cert, args.key)
    holder = app.extensions["garbage_model"]
    kind = "waitress" if args.production else "development server"
    where = ("every network interface (--host 127.0.0.1 for this computer only)"
             if args.host in ("0.0.0.0", "::") else args.host)
    print(f"{kind} listening on {where}, port {server.socket.getsockname()[1]}, "
          f"at most {limits.connections} connections; loading the model {holder.model_name} ...", flush=True)
    for who, url in urls(server.socket, "https" if args.cert else "http"):
        print(f"  {who + ':':24s}{url}", flush=True)
    failed = threading.Event()

    def report_model():
        if holder.wait():
            print(f"model ready ({len(holder.classifier.labels)} classes) after {time.monotonic() - started:.1f} s"
                  + (f"; collecting corrected photos into {args.collect}" if args.collect else ""), flush=True)
        else:  # nothing to serve: stop with the reason
            print(f"error: {holder.detail}", file=sys.stderr, flush=True)
            failed.set()
            stop(server, args.production)

    threading.Thread(target=report_model, name="model-report", daemon=True).start()
    serve_until_interrupted(server, args.production)
    return 2 if failed.is_set() else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
