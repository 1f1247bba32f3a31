"""How should a loader reach the TensorFlow training step? Keras' own way against tools/training/feed.py's.

    python bench/feed.py                       # 64 px, 20 TrashNet photos per class, 2 rounds
    python bench/feed.py --per_class 40 --epochs 4 --rounds 3 --json out.json

Keras hands a keras.utils.PyDataset (tools/training/loader.py) to TensorFlow through
`tf.data.Dataset.from_generator`; tools/training/feed.py maps the loader over its batch indices
(`Dataset.range(n).map(numpy_function)`), with tf.data's autotuning off. This runs the same fit() of the
model train.py trains (ResNet50 behind the --augment block, compiled as train.py compiles it) on the same
loader (RAM decode cache, warm after the first epoch) three ways:

    pydataset        fit(loader): Keras' own adapter (from_generator)
    map+autotune     fit(batches(loader, autotune=True)) + EpochEnds
    map              fit(batches(loader)) + EpochEnds: what train.py does

each in a fresh process (a process that has run one keeps what it did to its memory), alternating, in
`--rounds` rounds, so a busy machine shows as spread. For the epochs after the first (compile, cache fill):
training images/s over whole epochs (no validation), minor page faults per batch and system CPU seconds
per epoch (resource.getrusage). Ratios are against `pydataset` of the same run.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tools.quiet import import_keras_quietly  # noqa: E402

import_keras_quietly()  # a benchmark script: Keras is what it measures

import keras  # noqa: E402

from bench.train_speed import subset  # noqa: E402
from models.augmentation import build_augmentation, training_model  # noqa: E402
from models.classifier import build_classifier, set_trainable_from  # noqa: E402
from support.trashnet import TRASHNET  # noqa: E402
from tools.distributed.devices import use_jit  # noqa: E402
from tools.training.data import data_flow  # noqa: E402
from tools.training.feed import EpochEnds, batches  # noqa: E402
from tools.training.phases import compile_model  # noqa: E402

VARIANTS = ("pydataset", "map+autotune", "map")


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None, help="labelled photos (default: ../shared TrashNet)")
    p.add_argument("--per_class", type=int, default=20, help="photos per class, 0 = all (default: %(default)s)")
    p.add_argument("--input_size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument("--batch_size", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=3, help=">= 2; the first is left out (default: %(default)s)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="loader threads (default: cores)")
    p.add_argument("--rounds", type=int, default=2, help="runs of each variant, alternating (default: %(default)s)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--child", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    return p


def child(args):
    """One fit of one variant in this process; prints its figures as one JSON line."""
    flow = data_flow(args.data_dir, batch_size=args.batch_size, input_size=args.input_size, workers=args.workers,
                     print_fn=lambda line: None, cache="ram")
    num_classes = len(flow.dataset.class_names)
    model = build_classifier(num_classes, args.input_size, weights=None)
    set_trainable_from(model, 1, batchnorm=True)
    trainer = training_model(model, build_augmentation("none", args.input_size, seed=1))
    compile_model(trainer, 1e-3, num_classes, use_jit("auto"), weight_decay=1e-4)

    marks = []

    def mark(epoch, logs):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        marks.append((time.perf_counter(), usage.ru_minflt, usage.ru_stime))

    clock = keras.callbacks.LambdaCallback(on_epoch_begin=mark, on_epoch_end=mark)
    callbacks = [clock]
    data = flow.train
    if args.child != "pydataset":
        data = batches(flow.train, autotune=args.child == "map+autotune")
        callbacks.append(EpochEnds([flow.train]))
    trainer.fit(data, epochs=args.epochs, shuffle=False, verbose=0, callbacks=callbacks)
    steady = [(marks[i], marks[i + 1]) for i in range(2, len(marks), 2)]
    seconds = sum(b[0] - a[0] for a, b in steady)
    images = len(flow.train) * flow.train.batch_size * len(steady)
    print(json.dumps({"images_per_s": images / seconds,
                      "epoch_s": [round(b[0] - a[0], 2) for a, b in steady],
                      "faults_per_batch": sum(b[1] - a[1] for a, b in steady) / (len(flow.train) * len(steady)),
                      "sys_s_per_epoch": sum(b[2] - a[2] for a, b in steady) / len(steady)}))
    return 0


def main(args):
    source = args.data_dir or TRASHNET
    if not os.path.isdir(source):
        print(f"error: no photos at {source} (the shared TrashNet copy, or pass --data_dir)", file=sys.stderr)
        return 2
    if args.epochs < 2 or args.rounds < 1:
        print("error: --epochs must be >= 2 (the first is left out) and --rounds >= 1", file=sys.stderr)
        return 2
    runs = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, paths, _, _ = subset(source, args.per_class, tmp)
        for r in range(args.rounds):
            for variant in VARIANTS:
                cmd = [sys.executable, os.path.abspath(__file__), "--child", variant, "--data_dir", data_dir,
                       "--input_size", str(args.input_size), "--batch_size", str(args.batch_size),
                       "--epochs", str(args.epochs), "--workers", str(args.workers)]
                done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"error: the {variant} run failed ({done.returncode}): {done.stderr.strip()[-800:]}",
                          file=sys.stderr)
                    return 1
                runs[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {r + 1}, {variant}: {runs[variant][-1]}", flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    base = [run["images_per_s"] for run in runs["pydataset"]]
    print(f"\nmachine: {machine}; command: {' '.join(sys.argv)}")
    print(f"{len(paths)} photos at {args.input_size} px, batch {args.batch_size}, {args.workers} loader threads, "
          f"epochs 2-{args.epochs} of each run (no validation):")
    print(f"{'feed':<14} {'images/s':>16} {'vs pydataset':>14} {'faults/batch':>14} {'sys s/epoch':>12}")
    for variant in VARIANTS:
        rates = [run["images_per_s"] for run in runs[variant]]
        faults = [run["faults_per_batch"] for run in runs[variant]]
        sys_s = [run["sys_s_per_epoch"] for run in runs[variant]]
        ratio = [a / b for a, b in zip(rates, base)]
        print(f"{variant:<14} {min(rates):7.2f}-{max(rates):<8.2f} {min(ratio):6.2f}-{max(ratio):<7.2f} "
              f"{sum(faults) / len(faults):14,.0f} {sum(sys_s) / len(sys_s):12.1f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": machine, "command": " ".join(sys.argv), "photos": len(paths),
                       "input_size": args.input_size, "batch_size": args.batch_size, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    arguments = get_args_parser().parse_args()
    sys.exit(child(arguments) if arguments.child else main(arguments))
