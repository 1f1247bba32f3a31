"""Is the loader ever what limits training? Loader images/s beside the model's training step rate.

    python bench/loader.py                      # TrashNet at 224 px + generated 3000x4000 JPEGs
    python bench/loader.py --input_size 128 --batches 20 --big 48
    python bench/loader.py --input_size 64 --batches 3 --big 0 --train_steps 1   # a quick check

Measures, in one run on this machine:
- the training-mode loader (uint8 random crops of decoded squares; the rest of augmentation runs
  on the accelerator) over the shared TrashNet copy with 1, 2 and N threads (what
  PyDataset(workers=N) runs): with a cold RAM cache (every image decoded and stored: the first
  epoch) and with the same cache warm (crops only: every later epoch);
- the same on large generated 3000x4000 JPEGs (phone photos), with reduced-scale JPEG decoding
  (PIL draft) and without it (full decode, the baseline) to show what draft buys (--big 0: skipped);
- the model's own training step (ResNet50 + top, all layers trainable, and head only) on uint8
  batches, as the loader hands them over.
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
from support.trashnet import TRASHNET  # noqa: E402
from tools import images as image_io  # noqa: E402
from tools.data.layout import load_dataset  # noqa: E402
from tools.training.cache import open_cache  # noqa: E402
from tools.training.loader import GarbageClassifySequence  # noqa: E402



def loader_rate(seq, batches, workers):
    """Images/s of `seq[i]` for batches 0..n-1 on a pool of `workers` threads (PyDataset's way).

    The warm-up (imports, first allocations) loads the last batch, outside the timed ones when the
    sequence has more, so a cold cache stays cold for the timed batches.
    """
    n = min(batches, max(1, len(seq) - 1))
    seq[len(seq) - 1]
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        images = sum(x.shape[0] for x, _ in pool.map(seq.__getitem__, range(n)))
    return images / (time.perf_counter() - start)


def train_rate(input_size, batch_size, steps, trainable_from):
    model = build_classifier(6, input_size, weights=None)
    set_trainable_from(model, trainable_from)
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=False)
    x = np.random.default_rng(0).integers(0, 256, (batch_size, input_size, input_size, 3), dtype=np.uint8)
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
    rows = []  # (what, images/s, kind)
    if os.path.isdir(args.data_dir):
        ds = load_dataset(args.data_dir)
        notes = []
        for w in worker_counts:
            cache = open_cache(ds.paths, args.input_size, "ram", log=notes.append)
            seq = GarbageClassifySequence(ds.paths, ds.labels, len(ds.class_names), batch_size=args.batch_size,
                                          input_size=args.input_size, training=True, cache=cache)
            rows.append((f"TrashNet 256x192, cold cache (decode), {w} thread(s)", loader_rate(seq, args.batches, w),
                         "cold"))
            rows.append((f"TrashNet 256x192, warm cache (ram), {w} thread(s)", loader_rate(seq, args.batches, w),
                         "warm"))
            notes.append(cache.describe())
        print("\n".join(f"  {line}" for line in notes[:1] + notes[1::2]))
    else:
        print(f"(no real photos at {args.data_dir}: TrashNet rows skipped)")
    draft = full = None
    if args.big > 0:
        with tempfile.TemporaryDirectory() as tmp:
            paths = make_big_jpegs(tmp, args.big)
            seq = GarbageClassifySequence(paths, [i % 2 for i in range(len(paths))], 2,
                                          batch_size=min(8, len(paths)), input_size=args.input_size, training=True)
            nb = len(seq)
            for w in worker_counts:
                rows.append((f"3000x4000 JPEG, draft decode, {w} thread(s)", loader_rate(seq, nb, w), "big"))
            draft = rows[-1][1]
            original = image_io.decode_image
            # baseline: full decode
            image_io.decode_image = lambda source, min_side=None, **kw: original(source, None, **kw)
            try:
                full = loader_rate(seq, nb, cores)
                rows.append((f"3000x4000 JPEG, full decode (baseline), {cores} thread(s)", full, "baseline"))
            finally:
                image_io.decode_image = original
    else:
        print("(--big 0: 3000x4000 JPEG rows skipped)")
    train_all = train_rate(args.input_size, args.batch_size, args.train_steps, 1)
    train_head = train_rate(args.input_size, args.batch_size, args.train_steps, 6)
    rows.append(("training step, all layers (--weights none)", train_all, "train"))
    rows.append(("training step, head only (phase 1)", train_head, "train"))
    print(f"\n{'what':<52} {'images/s':>9}")
    for name, rate, _ in rows:
        print(f"{name:<52} {rate:>9.1f}")
    at_cores = {kind: rate for name, rate, kind in rows if name.endswith(f" {cores} thread(s)")}
    summary = []
    for kind, what in (("cold", "cold cache"), ("warm", "warm cache"), ("big", "3000x4000 JPEGs")):
        if kind in at_cores:
            ratio = at_cores[kind] / train_head
            summary.append(f"loader ({cores} threads, {what}) / fastest training step: {ratio:.1f}x")
    if "cold" in at_cores and "warm" in at_cores:
        summary.append(f"warm vs cold cache: {at_cores['warm'] / at_cores['cold']:.1f}x")
    if draft and full:
        summary.append(f"draft vs full decode on 3000x4000: {draft / full:.1f}x")
    print("\n" + "\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
