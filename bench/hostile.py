"""What each hostile upload costs a real server process: status, time and peak RSS growth.

    python bench/hostile.py                     # this checkout's server.py
    python bench/hostile.py --root /tmp/old     # another checkout (e.g. `git worktree add /tmp/old 5fb4565`)

Uploads the files of tests/hostile.py (tiny files that decode to huge images) one at a time to
`server.py --crops 5` with a small random-weight model, and reads the server's peak RSS (VmHWM)
around each request, reset before each one through /proc/PID/clear_refs, and reports the peak
above the RSS the server had after warm-up (memory a request leaves behind counts against the
next ones: an upper bound). The baseline row is an ordinary 640x480 JPEG; the ratio column is each
upload's growth over the baseline's (at least 1 MB). Then --concurrent of the costliest at once (8; use 0 against
an unprotected server, or the machine may run out of memory), and whether the server still
answers the ordinary photo alike.
"""

import argparse
import concurrent.futures
import io
import os
import platform
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
from tools.contract import write_labels  # noqa: E402

MB = 1024 * 1024


def upload(url, pid, data, before):
    """(status, seconds, peak RSS above `before` in MB) of one POST /predict."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # a new peak window
    t = time.perf_counter()
    try:
        status = requests.post(url + "/predict", files={"file": ("x", data)}, timeout=300).status_code
    except requests.RequestException as e:
        status = type(e).__name__
    secs = time.perf_counter() - t
    try:
        return status, secs, (proc_status(pid, "VmHWM") - before) / MB
    except (OSError, KeyError):  # the server is gone (killed for memory)
        return status, secs, float("nan")


def tiny_model(folder, input_size):
    keras.utils.set_random_seed(0)
    path = os.path.join(folder, "best.h5")
    save_model_atomic(build_classifier(4, input_size, weights=None), path)
    write_labels(folder, CLASS_NAMES[:4], input_size)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=ROOT, help="checkout whose server.py is measured (default: this one)")
    p.add_argument("--input_size", type=int, default=64, help="model input side (default: %(default)s)")
    p.add_argument("--max_mpx", type=float, default=40, help="budget the cases are made around (default: %(default)s)")
    p.add_argument("--concurrent", type=int, default=8, help="costliest uploads sent at once (default: %(default)s)")
    args = p.parse_args()

    cases = hostile.cases(int(args.max_mpx * 1e6))
    buf = io.BytesIO()
    make_image(2, np.random.default_rng(4), (640, 480)).save(buf, "JPEG", quality=90)
    photo = buf.getvalue()
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_model(tmp, args.input_size)
        port = free_port()
        proc = start([sys.executable, os.path.join(args.root, "server.py"), "--model", model, "--host", "127.0.0.1",
                      "--port", str(port), "--crops", "5"], port)
        url = f"http://127.0.0.1:{port}"
        try:
            reference = requests.post(url + "/predict", files={"file": photo}, timeout=60).json()
            warm = proc_status(proc.pid, "VmRSS")
            status, secs, base = upload(url, proc.pid, photo, warm)
            print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
                  f"server: {args.root}/server.py")
            print(f"{'upload':48s} {'bytes':>9s} {'status':>6s} {'time s':>7s} {'peak MB':>8s} {'x photo':>7s}")
            print(f"{'baseline: 640x480 JPEG':48s} {len(photo):9d} {status!s:>6s} {secs:7.2f} {base:8.1f} {1:7.1f}")
            growth = {}
            for name, (data, _) in cases.items():
                status, secs, growth[name] = upload(url, proc.pid, data, warm)
                print(f"{name:48s} {len(data):9d} {status!s:>6s} {secs:7.2f} {growth[name]:8.1f} "
                      f"{growth[name] / max(base, 1.0):7.1f}", flush=True)
            worst = sorted(growth, key=growth.get, reverse=True)[:args.concurrent]
            if worst:
                with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
                    f.write("5")
                t = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(len(worst)) as pool:
                    statuses = list(pool.map(lambda n: upload_quiet(url, cases[n][0]), worst))
                peak = (proc_status(proc.pid, "VmHWM") - warm) / MB if proc.poll() is None else float("nan")
                print(f"{len(worst)} at once (the costliest): statuses {statuses}, {time.perf_counter() - t:.1f} s, "
                      f"peak RSS growth {peak:.0f} MB")
            alive = proc.poll() is None
            same = False
            if alive:
                after = requests.post(url + "/predict", files={"file": photo}, timeout=60).json()
                same = after.get("label") == reference["label"]
            print(f"server still up: {alive}; answers the ordinary photo as before: {same}")
        finally:
            stop(proc)


def upload_quiet(url, data):
    try:
        return requests.post(url + "/predict", files={"file": data}, timeout=300).status_code
    except requests.RequestException as e:
        return type(e).__name__


if __name__ == "__main__":
    main()
