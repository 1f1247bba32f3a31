"""What hostile uploads and slow clients cost a real server process, against an ordinary photo.

    python bench/hostile.py --heic                          # this checkout's server.py (docs/results.md's uploads)
    python bench/hostile.py --uploads 0 --input_size 32     # slow clients only, a fast model (docs/results.md's)
    python bench/hostile.py --root /tmp/old     # another checkout (e.g. `git worktree add /tmp/old d17f4c7`)

1. Uploads: the files of tests/support/hostile.py (tiny files that decode to huge images, each
   accepted format just under its budget, thin strips) one at a time to `server.py --crops 5` with a
   random-weight model (224 px by default: the input size decides how far large images are reduced
   before conversion), reading the server's peak RSS (VmHWM) around each request, reset before each
   one through /proc/PID/clear_refs, above the RSS the server had after warm-up (memory a request
   leaves behind counts against the next ones: an upper bound). The decoder column is
   tools.images.load_resized alone, in a fresh process. The baseline row is an ordinary 640x480
   JPEG; the ratio column is each upload's growth over the baseline's (at least 1 MB). Then
   --concurrent of the costliest accepted ones at once, and whether the server still answers the
   ordinary photo alike.
2. Slow clients, on `server.py --production` and the dev server with their defaults:
   --slow_clients connections trickle a request header one byte every --trickle_s seconds (never
   silent for the 30 s timeout) while real photos (the TrashNet copy, else generated ones) are
   posted one after another: each photo's time against the same photos' time before the tricklers
   came, and when the server closed each trickler (the head deadline is 10 s). On the dev server,
   the most threads it ran.
"""

import argparse
import concurrent.futures
import glob
import io
import os
import platform
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import requests  # noqa: E402

from models.classifier import build_classifier  # noqa: E402
from models.saving import save_model_atomic  # noqa: E402
from support import hostile  # noqa: E402
from support.datagen import CLASS_NAMES, make_image  # noqa: E402
from support.servers import free_port, proc_status, start, stop  # noqa: E402
from support.trashnet import TRASHNET  # noqa: E402
from tools.contract import write_labels  # noqa: E402

MB = 1024 * 1024


def upload(url, pid, data, before):
    """(status, seconds, peak RSS above `before` in MB) of one POST /predict."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # a new peak window
    t = time.perf_counter()
    status = upload_quiet(url, data)
    secs = time.perf_counter() - t
    try:
        return status, secs, (proc_status(pid, "VmHWM") - before) / MB
    except (OSError, KeyError):  # the server is gone (killed for memory)
        return status, secs, float("nan")


def upload_quiet(url, data, timeout=300):
    try:
        return requests.post(url + "/predict", files={"file": data}, timeout=timeout).status_code
    except requests.RequestException as e:
        return type(e).__name__


def tiny_model(folder, input_size):
    keras.utils.set_random_seed(0)
    path = os.path.join(folder, "best.h5")
    save_model_atomic(build_classifier(4, input_size, weights=None), path)
    write_labels(folder, CLASS_NAMES[:4], input_size)
    return path


def serve(root, model, extra=()):
    port = free_port()
    proc = start([sys.executable, os.path.join(root, "server.py"), "--model", model, "--host", "127.0.0.1",
                  "--port", str(port), "--crops", "5", *extra], port)
    return proc, f"http://127.0.0.1:{port}", port


def uploads(args, model, photo, tmp):
    cases = hostile.cases(int(args.max_mpx * 1e6), slow=args.heic)
    decoder = hostile.decoder_peaks({name: data for name, (data, _) in cases.items()}, args.input_size,
                                    os.path.join(tmp, "cases"), root=args.root)
    proc, url, _ = serve(args.root, model)
    try:
        reference = requests.post(url + "/predict", files={"file": photo}, timeout=60).json()
        warm = proc_status(proc.pid, "VmRSS")
        status, secs, base = upload(url, proc.pid, photo, warm)
        print(f"{'upload':54s} {'bytes':>9s} {'status':>6s} {'time s':>7s} {'peak MB':>8s} {'x photo':>7s} "
              f"{'decoder MB':>10s}")
        print(f"{'baseline: 640x480 JPEG':54s} {len(photo):9d} {status!s:>6s} {secs:7.2f} {base:8.1f} {1:7.1f}")
        growth = {}
        for name, (data, _) in cases.items():
            status, secs, growth[name] = upload(url, proc.pid, data, warm)
            print(f"{name:54s} {len(data):9d} {status!s:>6s} {secs:7.2f} {growth[name]:8.1f} "
                  f"{growth[name] / max(base, 1.0):7.1f} {decoder[name][0]:10.1f}", flush=True)
        worst = sorted((n for n in cases if cases[n][1]), key=growth.get, reverse=True)[:args.concurrent]
        if worst:
            with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
                f.write("5")
            t = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(len(worst)) as pool:
                statuses = list(pool.map(lambda n: upload_quiet(url, cases[n][0]), worst))
            peak = (proc_status(proc.pid, "VmHWM") - warm) / MB if proc.poll() is None else float("nan")
            print(f"{len(worst)} at once (the costliest accepted: {', '.join(worst)}): statuses {statuses}, "
                  f"{time.perf_counter() - t:.1f} s, peak RSS growth {peak:.0f} MB")
        alive = proc.poll() is None
        same = False
        if alive:
            after = requests.post(url + "/predict", files={"file": photo}, timeout=60).json()
            same = after.get("label") == reference["label"]
        print(f"server still up: {alive}; answers the ordinary photo as before: {same}")
    finally:
        stop(proc)


def real_photos(count):
    paths = sorted(glob.glob(os.path.join(TRASHNET, "*.jpg")))[:count]
    if paths:
        return [open(p, "rb").read() for p in paths], f"{len(paths)} TrashNet photos"
    out = []
    for i in range(count):
        buf = io.BytesIO()
        make_image(i % 4, np.random.default_rng(i), (640, 480)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out, f"{count} generated 640x480 photos"


def thread_count(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def photo_times(url, photos, seconds=None, pid=None):
    """Post `photos` in turn (for `seconds`, round and round, if given): [(status, seconds)], most threads."""
    out, threads, start_time, i = [], 0, time.monotonic(), 0
    while (i < len(photos)) if seconds is None else (time.monotonic() - start_time < seconds):
        t = time.perf_counter()
        status = upload_quiet(url, photos[i % len(photos)], timeout=30)
        out.append((status, time.perf_counter() - t))
        if pid is not None:
            threads = max(threads, thread_count(pid))
        i += 1
    return out, threads


def slow_clients(args, model):
    photos, which = real_photos(20)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    seconds = 10 + 3 * args.trickle_s + 2  # past the head deadline and the next check
    print(f"\n{args.slow_clients} connections trickling a request header 1 byte / {args.trickle_s:g} s for "
          f"{seconds:g} s, while {which} are posted one after another ({args.root}/server.py, --crops 5)")
    print(f"{'server':26s} {'photos':>6s} {'ok':>4s} {'p50 s':>6s} {'max s':>6s} {'before p50':>10s} "
          f"{'ratio':>6s} {'408s':>5s} {'closed after s (min/median/max)':>32s} {'left open':>9s} {'threads':>7s}")
    for name, extra in [("--production (waitress)", ["--production"]), ("dev server", [])]:
        proc, url, port = serve(args.root, model, extra)
        try:
            before, _ = photo_times(url, photos)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                tricklers = pool.submit(hostile.trickle, port, args.slow_clients, head, args.trickle_s, seconds)
                time.sleep(1.0)
                during, threads = photo_times(url, photos, seconds - 2, proc.pid)
                results = tricklers.result()
            ok = [secs for status, secs in during if status == 200]
            closed = sorted(after for after, _ in results if after is not None)
            answered = sum(raw.startswith(b"HTTP/1.1 408") for _, raw in results)
            p50_before = statistics.median(secs for _, secs in before)
            spread = (f"{closed[0]:.1f} / {statistics.median(closed):.1f} / {closed[-1]:.1f}" if closed else "-")
            print(f"{name:26s} {len(during):6d} {len(ok):4d} {statistics.median(ok) if ok else float('nan'):6.2f} "
                  f"{max(ok) if ok else float('nan'):6.2f} {p50_before:10.2f} "
                  f"{(statistics.median(ok) if ok else float('nan')) / p50_before:6.2f} {answered:5d} {spread:>32s} "
                  f"{len(results) - len(closed):9d} {threads if not extra else '':>7}", flush=True)
        finally:
            stop(proc)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=ROOT, help="checkout whose server.py is measured (default: this one)")
    p.add_argument("--input_size", type=int, default=224, help="model input side (default: %(default)s)")
    p.add_argument("--max_mpx", type=float, default=40, help="budget the cases are made around (default: %(default)s)")
    p.add_argument("--concurrent", type=int, default=3, help="costliest uploads sent at once (default: %(default)s)")
    p.add_argument("--heic", action="store_true", help="add a HEIC case (20 s to encode)")
    p.add_argument("--uploads", type=int, default=1, help="0 skips the uploads part (default: %(default)s)")
    p.add_argument("--slow_clients", type=int, default=500, help="trickling connections; 0 skips (default: %(default)s)")
    p.add_argument("--trickle_s", type=float, default=3, help="seconds between a trickler's bytes (default: %(default)s)")
    args = p.parse_args()

    buf = io.BytesIO()
    make_image(2, np.random.default_rng(4), (640, 480)).save(buf, "JPEG", quality=90)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"server: {args.root}/server.py; {args.input_size} px random-weight model")
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_model(tmp, args.input_size)
        if args.uploads:
            uploads(args, model, buf.getvalue(), tmp)
        if args.slow_clients:
            slow_clients(args, model)


if __name__ == "__main__":
    main()
