"""Serving and prediction speed against the bare model, measured in one run on this machine.

    python bench/serve.py                   # 224 px, 40 classes, 5 crops, 640x480 JPEG
    python bench/serve.py --requests 20 --per_client 4

Reports:
1. latency of POST /predict (p50/p95) against the bare batched forward of the same 5 crops (target p50 <= 1.3x);
2. throughput with 1, 4 and 8 concurrent clients against the model's own batch throughput
   (8 photos x 5 crops per call; target >= 0.8x at 8 clients);
3. the original's way (5 separate model.predict calls on random crops) against one batched call
   (target >= 3.5x faster);
4. predict.py on a folder against the bare batched rate on the same photos (target >= 0.9x).
The model has random weights: speed does not depend on them.
"""

import argparse
import concurrent.futures
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
from support.datagen import make_image  # noqa: E402
from support.servers import start, stop  # noqa: E402
from tools.batch_predict import DEFAULT_BATCH_SIZE, expand, run  # noqa: E402
from tools.contract import write_labels  # noqa: E402
from tools.images import load_resized  # noqa: E402
from tools.inference import Classifier  # noqa: E402
from tools.training.loader import random_crop  # noqa: E402


def pct(values, q):
    return float(np.percentile(values, q))


def timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input_size", type=int, default=224)
    p.add_argument("--classes", type=int, default=40)
    p.add_argument("--crops", type=int, default=5)
    p.add_argument("--requests", type=int, default=30, help="sequential requests for latency (default: %(default)s)")
    p.add_argument("--per_client", type=int, default=6, help="requests per concurrent client (default: %(default)s)")
    p.add_argument("--folder", type=int, default=48, help="photos for the predict.py folder run (default: %(default)s)")
    p.add_argument("--port", type=int, default=10099)
    args = p.parse_args(argv)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Keras {keras.__version__} on "
          f"{keras.backend.backend()}; {args.input_size}px, {args.classes} classes, {args.crops} crops")
    tmp = tempfile.mkdtemp()
    model_path = os.path.join(tmp, "best.h5")
    save_model_atomic(build_classifier(args.classes, args.input_size, weights=None), model_path)
    write_labels(tmp, [f"可回收物/c{i}" for i in range(args.classes)], args.input_size)
    buf = io.BytesIO()
    make_image(1, np.random.default_rng(0), (640, 480)).save(buf, "JPEG", quality=90)
    photo = buf.getvalue()

    clf = Classifier(model_path, crops=args.crops)
    crops = clf.prepare(photo)
    bare = timed(lambda: clf.forward(crops), args.requests)
    batch8 = np.concatenate([crops] * 8)
    clf.forward(batch8)
    batch_times = timed(lambda: clf.forward(batch8), 4)
    model_photos_per_s = 8 / statistics.median(batch_times)

    # 3. the original way: 5 random crops, 5 separate model.predict calls
    model = clf.model
    arr = load_resized(photo, args.input_size)  # 640x480 -> 341x256, as the original resized
    rng = np.random.default_rng(0)

    def original():
        for _ in range(5):
            model.predict(random_crop(arr, args.input_size, rng)[None], verbose=0)  # uint8 pixels: the model preprocesses

    original()
    orig = timed(original, 5)
    one_call = timed(lambda: model.predict_on_batch(crops), 5)

    # 4. predict.py on a folder (its library: tools.batch_predict) vs bare batched forward of the same photos
    folder = os.path.join(tmp, "photos")
    os.makedirs(folder)
    for i in range(args.folder):
        make_image(i % 6, np.random.default_rng(i), (640, 480)).save(os.path.join(folder, f"{i}.jpg"), quality=90)
    items = expand([folder])
    devnull = open(os.devnull, "w")
    stdout, sys.stdout = sys.stdout, devnull
    try:
        t = time.perf_counter()
        run(clf, items, batch_size=DEFAULT_BATCH_SIZE)
        folder_rate = len(items) / (time.perf_counter() - t)
    finally:
        sys.stdout = stdout
    prepared = [clf.prepare(open(path, "rb").read()) for path, _ in items]
    t = time.perf_counter()
    for first in range(0, len(prepared), DEFAULT_BATCH_SIZE):
        clf.forward(np.concatenate(prepared[first:first + DEFAULT_BATCH_SIZE]))
    bare_folder_rate = len(prepared) / (time.perf_counter() - t)

    # 1 and 2: the real server process
    server = start([sys.executable, "server.py", "--model", model_path, "--host", "127.0.0.1", "--port",
                    str(args.port), "--crops", str(args.crops)], args.port)
    url = f"http://127.0.0.1:{args.port}/predict"
    try:
        with requests.Session() as s:
            post = lambda: s.post(url, files={"file": ("p.jpg", photo)}).raise_for_status()
            post()
            latency = timed(post, args.requests)

        def client(n):
            with requests.Session() as s:
                for _ in range(n):
                    s.post(url, files={"file": ("p.jpg", photo)}).raise_for_status()

        throughput = {}
        for clients in (1, 4, 8):
            t = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                list(pool.map(client, [args.per_client] * clients))
            throughput[clients] = clients * args.per_client / (time.perf_counter() - t)
    finally:
        stop(server)

    ms = lambda v: f"{v * 1000:7.0f} ms"
    print(f"\n1. latency, {args.requests} sequential requests (640x480 JPEG)")
    print(f"   bare batched forward of {args.crops} crops   p50 {ms(pct(bare, 50))}  p95 {ms(pct(bare, 95))}")
    print(f"   POST /predict                      p50 {ms(pct(latency, 50))}  p95 {ms(pct(latency, 95))}"
          f"   -> p50 ratio {pct(latency, 50) / pct(bare, 50):.2f}x (target <= 1.3x)")
    print(f"\n2. throughput (photos/s); model alone, 8 photos per call: {model_photos_per_s:.2f}")
    for clients, rate in throughput.items():
        print(f"   {clients} client(s): {rate:6.2f}  = {rate / model_photos_per_s:.2f}x of the model"
              + ("  (target >= 0.8x)" if clients == 8 else ""))
    print("\n3. the original's 5 separate model.predict calls on random crops vs one batched call")
    print(f"   5 calls {ms(statistics.median(orig))}, one call {ms(statistics.median(one_call))}"
          f"  -> {statistics.median(orig) / statistics.median(one_call):.1f}x faster (target >= 3.5x)")
    print(f"\n4. predict.py on a folder of {len(items)} photos: {folder_rate:.2f} photos/s; bare batched forward "
          f"{bare_folder_rate:.2f} -> {folder_rate / bare_folder_rate:.2f}x (target >= 0.9x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
