"""Is the loader ever what limits training? Loader images/s beside the model's training step rate.

    python bench/loader.py                      # TrashNet at 224 px + generated 3000x4000 JPEGs
    python bench/loader.py --input_size 128 --batches 20 --big 48

Measures, in one run on this machine:
- the training-mode loader (decode, resize, random crop, affine/cutout, preprocessing) over the
  shared TrashNet copy with 1, 2 and N threads (what PyDataset(workers=N) runs);
- the same on large generated 3000x4000 JPEGs (phone photos), with reduced-scale JPEG decoding
  (PIL draft) and without it (full decode, the baseline) to show what draft buys;
- the model's own training step (ResNet50 + top, all layers trainable, and head only) on real batches.
The loader keeps up when its images/s exceed the training step's images/s.
"""

import argparse
import concurrent.futures
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from models.classifier import build_classifier, set_trainable_from  # noqa: E402
from support.datagen import make_big_jpegs  # noqa: E402
from tools import images as image_io  # noqa: E402
from tools.data.layout import load_dataset  # noqa: E402
from tools.training.loader import GarbageClassifySequence  # noqa: E402

TRASHNET = os.path.join(ROOT, "..", "shared", "data", "trashnet_v2", "train_data_v2")


def loader_rate(seq, batches, workers):
    """Images/s of `seq[i]` for `batches` batches on a pool of `workers` threads (PyDataset's way)."""
    n = min(batches, len(seq))
    seq[0]  # warm caches / imports
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        images = sum(x.shape[0] for x, _ in pool.map(seq.__getitem__, range(n)))
    return images / (time.perf_counter() - start)


def train_rate(input_size, batch_size, steps, trainable_from):
    model = build_classifier(6, input_size, weights=None)
    set_trainable_from(model, trainable_from)
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=False)
    x = np.random.default_rng(0).normal(0, 50, (batch_size, input_size, input_size, 3)).astype(np.float32)
    y = np.eye(6, dtype=np.float32)[np.arange(batch_size) % 6]
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return batch_size * steps / (time.perf_counter() - start)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input_size", type=int, default=224, help="crop side (default: %(default)s)")
    p.add_argument("--batch_size", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--batches", type=int, default=12, help="loader batches per measurement (default: %(default)s)")
    p.add_argument("--big", type=int, default=32, help="generated 3000x4000 JPEGs (default: %(default)s)")
    p.add_argument("--train_steps", type=int, default=3, help="timed training steps (default: %(default)s)")
    p.add_argument("--data_dir", default=TRASHNET, help="real photos (default: ../shared TrashNet)")
    args = p.parse_args(argv)

    cores = os.cpu_count() or 1
    worker_counts = sorted({1, 2, cores})
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}; "
          f"input {args.input_size}px, batch {args.batch_size}")
    rows = []
    if os.path.isdir(args.data_dir):
        ds = load_dataset(args.data_dir)
        seq = GarbageClassifySequence(ds.paths, ds.labels, len(ds.class_names), batch_size=args.batch_size,
                                      input_size=args.input_size, training=True)
        for w in worker_counts:
            rows.append((f"TrashNet 256x192, {w} thread(s)", loader_rate(seq, args.batches, w)))
    else:
        print(f"(no real photos at {args.data_dir}: TrashNet rows skipped)")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_big_jpegs(tmp, args.big)
        seq = GarbageClassifySequence(paths, [i % 2 for i in range(len(paths))], 2, batch_size=min(8, len(paths)),
                                      input_size=args.input_size, training=True)
        nb = len(seq)
        for w in worker_counts:
            rows.append((f"3000x4000 JPEG, draft decode, {w} thread(s)", loader_rate(seq, nb, w)))
        original = image_io.decode_image
        # baseline: full decode
        image_io.decode_image = lambda source, min_side=None, **kw: original(source, None, **kw)
        try:
            rows.append((f"3000x4000 JPEG, full decode (baseline), {cores} thread(s)", loader_rate(seq, nb, cores)))
        finally:
            image_io.decode_image = original
    full, draft = rows[-1][1], rows[-2][1]
    train_all = train_rate(args.input_size, args.batch_size, args.train_steps, 1)
    train_head = train_rate(args.input_size, args.batch_size, args.train_steps, 6)
    rows.append(("training step, all layers (--weights none)", train_all))
    rows.append(("training step, head only (phase 1)", train_head))
    print(f"\n{'what':<52} {'images/s':>9}")
    for name, rate in rows:
        print(f"{name:<52} {rate:>9.1f}")
    slowest_loader = min(r for n, r in rows if "thread" in n and "baseline" not in n and f"{cores} thread" in n)
    print(f"\nloader ({cores} threads, slowest data) / fastest training step: {slowest_loader / train_head:.1f}x; "
          f"draft vs full decode on 3000x4000: {draft / full:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
