"""Does train.py train at the speed of the model, or does the data path hold it back? One run measures:

    python bench/train_speed.py                                  # 2 cores: 64 px, 40 TrashNet photos/class
    python bench/train_speed.py --baseline_root /tmp/old         # + the same train.py run of another checkout
    KERAS_BACKEND=jax python bench/train_speed.py --input_size 224 --per_class 0 --mixed_precision bfloat16 \\
        --epochs 6 --threads 1,2,8,16                            # a GPU machine (see ../shared/gpu/README.md)

1. the loader (tools/training/loader.py) in training mode, images/s per thread count, with a cold
   decode cache (every photo decoded) and a warm one (none decoded);
2. the model's training step alone (the classifier behind the --augment block, compiled as
   train.py compiles it) on synthetic uint8 batches, after warm-up: compilation is left out;
3. train.py end to end on the photos: its steady images/s (the epochs after the first, which
   compiles) and the whole run's figure it prints (compilation included).

Headline: end-to-end / synthetic step (1.0 = the data path costs nothing); the warm loader / step
ratio; with --baseline_root, this train.py's printed images/s / the other checkout's, same flags
(only those both know), same photos, same machine, same run.
"""

import argparse
import concurrent.futures
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from models.augmentation import build_augmentation, training_model  # noqa: E402
from models.classifier import build_classifier, set_trainable_from  # noqa: E402
from tools.data.layout import find_rule_file, load_dataset  # noqa: E402
from tools.training.cache import open_cache  # noqa: E402
from tools.training.devices import use_jit  # noqa: E402
from tools.training.loader import GarbageClassifySequence  # noqa: E402
from tools.training.phases import compile_model  # noqa: E402

TRASHNET = os.path.join(ROOT, "..", "shared", "data", "trashnet_v2", "train_data_v2")
IPS = re.compile(r"([0-9.]+) training images/s(?: \(([0-9.]+) after the first epoch)?")


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=TRASHNET, help="labelled photos, garbage_classify_v2 layout "
                                                         "(default: ../shared TrashNet)")
    p.add_argument("--per_class", type=int, default=40, help="photos per class, 0 = all (default: %(default)s)")
    p.add_argument("--input_size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument("--batch_size", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--augment", default="original", help="train.py --augment (default: %(default)s)")
    p.add_argument("--mixed_precision", default="off", help="train.py --mixed_precision (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=3, help="train.py epochs, >= 2 (default: %(default)s)")
    p.add_argument("--threads", default=None, help="loader thread counts, e.g. 1,2,16 (default: 1, 2, cores)")
    p.add_argument("--steps", type=int, default=5, help="timed synthetic training steps (default: %(default)s)")
    p.add_argument("--baseline_root", default=None,
                   help="another checkout (e.g. git archive of an older commit) whose train.py runs alike")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p


def subset(data_dir, per_class, dest):
    """Links to `per_class` photos of each class (+ label files, rule file) in `dest`; its data folder."""
    ds = load_dataset(data_dir)
    folder = os.path.join(dest, "train_data_v2")
    os.makedirs(folder)
    seen, paths, labels = {}, [], []
    for path, label in zip(ds.paths, ds.labels):
        if per_class and seen.get(label, 0) >= per_class:
            continue
        seen[label] = seen.get(label, 0) + 1
        paths.append(path)
        labels.append(int(label))
        stem = os.path.splitext(path)[0]
        for src in (path, stem + ".txt"):
            if os.path.exists(src):
                os.symlink(os.path.abspath(src), os.path.join(folder, os.path.basename(src)))
    rule = find_rule_file(data_dir)
    if rule:
        os.symlink(os.path.abspath(rule), os.path.join(dest, os.path.basename(rule)))
    return folder, paths, labels, len(ds.class_names)


def loader_rates(paths, labels, num_classes, args, threads):
    """{threads: (cold images/s, warm images/s)} of the training loader with a RAM decode cache."""
    out = {}
    for w in threads:
        cache = open_cache(paths, args.input_size, mode="ram")
        seq = GarbageClassifySequence(paths, labels, num_classes, batch_size=args.batch_size,
                                      input_size=args.input_size, training=True, cache=cache)
        rates = []
        for _ in ("cold", "warm"):
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(w) as pool:
                n = sum(x.shape[0] for x, _ in pool.map(seq.__getitem__, range(len(seq))))
            rates.append(n / (time.perf_counter() - start))
            seq.on_epoch_end()
        out[w] = tuple(rates)
    return out


def step_rate(num_classes, args):
    """Images/s of the compiled training step on synthetic uint8 batches, warm-up excluded."""
    if args.mixed_precision != "off":
        keras.mixed_precision.set_global_policy(f"mixed_{args.mixed_precision}")
    model = build_classifier(num_classes, args.input_size, weights=None)
    set_trainable_from(model, 1, batchnorm=True)
    trainer = training_model(model, build_augmentation(args.augment, args.input_size, seed=1))
    compile_model(trainer, 1e-3, num_classes, use_jit("auto"), weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch_size, args.input_size, args.input_size, 3), dtype=np.uint8)
    y = np.eye(num_classes, dtype=np.float32)[np.arange(args.batch_size) % num_classes]
    for _ in range(3):  # compile + settle
        trainer.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = trainer.train_on_batch(x, y)
    float(np.asarray(loss if np.ndim(loss) == 0 else loss[0]))  # wait for the device
    keras.mixed_precision.set_global_policy("float32")
    return args.batch_size * args.steps / (time.perf_counter() - start)


def run_train(root, data_dir, args, extra):
    """train.py of checkout `root` on `data_dir`: (printed images/s, steady images/s or None, wall s)."""
    out = tempfile.mkdtemp(prefix="bench_train_speed_")
    cmd = [sys.executable, "train.py", "--data_dir", data_dir, "--weights", "none", "--input_size",
           str(args.input_size), "--batch_size", str(args.batch_size), "--epochs", str(args.epochs),
           "--patience", "1000", "--output_dir", out, "--no_resume", *extra]
    if args.mixed_precision != "off":
        cmd += ["--mixed_precision", args.mixed_precision]
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - start
    m = IPS.search(r.stdout)
    if r.returncode != 0 or not m:
        raise SystemExit(f"error: train.py in {root} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    shutil.rmtree(out, ignore_errors=True)
    return float(m.group(1)), float(m.group(2)) if m.group(2) else None, wall


def main(args):
    if args.epochs < 2:
        print("error: --epochs must be >= 2 (the first epoch compiles; the steady rate needs another)", file=sys.stderr)
        return 2
    if not os.path.isdir(args.data_dir):
        print(f"error: no photos at {args.data_dir} (the shared TrashNet copy, or pass --data_dir)", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    threads = sorted({int(t) for t in args.threads.split(",")} if args.threads else {1, 2, cores})
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, paths, labels, num_classes = subset(args.data_dir, args.per_class, tmp)
        print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}, backend "
              f"{keras.backend.backend()}; {len(paths)} photos ({num_classes} classes), {args.input_size} px, "
              f"batch {args.batch_size}, --augment {args.augment}, --mixed_precision {args.mixed_precision}",
              flush=True)
        loader = loader_rates(paths, labels, num_classes, args, threads)
        step = step_rate(num_classes, args)
        printed, steady, wall = run_train(ROOT, data_dir, args, ["--augment", args.augment, "--cache", "ram"])
        base = run_train(args.baseline_root, data_dir, args, []) if args.baseline_root else None
    rows = [(f"loader, {w} thread(s), cold cache", cold) for w, (cold, _) in loader.items()]
    rows += [(f"loader, {w} thread(s), warm cache", warm) for w, (_, warm) in loader.items()]
    rows += [("training step, synthetic uint8 batches, compiled", step),
             (f"train.py end to end, epochs 2..{args.epochs} (steady)", steady or float("nan")),
             (f"train.py end to end, whole run as printed ({wall:.0f} s wall)", printed)]
    if base:
        rows.append((f"baseline train.py ({args.baseline_root}), as printed ({base[2]:.0f} s wall)", base[0]))
    print(f"\n{'what':<64} {'images/s':>9}")
    for name, rate in rows:
        print(f"{name:<64} {rate:>9.1f}")
    warm_best = max(warm for _, warm in loader.values())
    figures = {"end_to_end_over_step": (steady or float("nan")) / step, "warm_loader_over_step": warm_best / step,
               "printed_over_baseline": printed / base[0] if base else None, "rows": rows}
    print(f"\nend to end (steady) / synthetic step: {figures['end_to_end_over_step']:.2f}")
    print(f"warm loader ({max(loader)} threads) / synthetic step: {figures['warm_loader_over_step']:.1f}x")
    if base:
        print(f"this train.py / baseline train.py (printed images/s, compile included): "
              f"{figures['printed_over_baseline']:.2f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
