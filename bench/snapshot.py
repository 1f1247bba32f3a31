"""What an epoch-end snapshot costs the training thread (tools/training/checkpoints.snapshot), against the
copy it replaced, measured in one process, interleaved:

    python bench/snapshot.py                      # ResNet50 + AdamW at 224 px: 781 variables, 314 MB
    python bench/snapshot.py --rounds 10 --input_size 64

Each round times, on the same trained model: the snapshot as made now; the earlier one (a read and a
tf.identity per variable); and the training step after each, against a step with no snapshot alive (a
snapshot shares the variables' buffers, so the step after it pays for copying what it writes).
TensorFlow backend only: on JAX a snapshot is one device copy per array.
"""

import argparse
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from models.augmentation import build_augmentation, training_model  # noqa: E402
from models.classifier import build_classifier, set_trainable_from  # noqa: E402
from tools.training.checkpoints import snapshot, training_variables  # noqa: E402
from tools.training.phases import compile_model  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input_size", type=int, default=224, help="(default: %(default)s)")
    p.add_argument("--batch_size", type=int, default=2, help="of the training steps between snapshots "
                                                             "(default: %(default)s)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds, the first left out (default: %(default)s)")
    return p


def identity_snapshot(variables):
    """The snapshot before: a read and a tf.identity of each variable (two eager ops per variable)."""
    import tensorflow as tf

    return [tf.identity(v.value) for v in variables]


def timed(f, *args):
    start = time.perf_counter()
    out = f(*args)
    return time.perf_counter() - start, out


def main(args):
    if keras.backend.backend() != "tensorflow":
        print("error: bench/snapshot.py measures the TensorFlow backend (KERAS_BACKEND=tensorflow)", file=sys.stderr)
        return 2
    if args.rounds < 2:
        print("error: --rounds must be >= 2 (the first round warms up and is left out)", file=sys.stderr)
        return 2
    num_classes = 6
    model = build_classifier(num_classes, args.input_size, weights=None)
    set_trainable_from(model, 1, batchnorm=True)
    trainer = training_model(model, build_augmentation("none", args.input_size, seed=1))
    compile_model(trainer, 1e-3, num_classes, False, weight_decay=1e-4)
    x = np.random.default_rng(0).integers(0, 256, (args.batch_size, args.input_size, args.input_size, 3), np.uint8)
    y = np.eye(num_classes, dtype=np.float32)[np.arange(args.batch_size) % num_classes]
    trainer.train_on_batch(x, y)  # builds the optimizer's variables
    variables = [v for _, v in training_variables(trainer)]
    megabytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables) / 1e6
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, Keras "
          f"{keras.__version__}; {args.input_size} px: {len(variables)} variables, {megabytes:.0f} MB; "
          f"command: python bench/snapshot.py --input_size {args.input_size} --batch_size {args.batch_size} "
          f"--rounds {args.rounds}", flush=True)
    times = {k: [] for k in ("now", "before", "step after now", "step after before", "step, no snapshot")}
    for round_ in range(args.rounds):
        for name, make in (("now", snapshot), ("before", identity_snapshot)):
            seconds, copies = timed(make, variables)
            first = np.array(copies[0])
            step, _ = timed(trainer.train_on_batch, x, y)
            if not np.array_equal(np.asarray(copies[0]), first):
                print(f"error: the {name} snapshot followed the training step", file=sys.stderr)
                return 1
            del copies
            if round_:
                times[name].append(seconds)
                times[f"step after {name}"].append(step)
        step, _ = timed(trainer.train_on_batch, x, y)
        if round_:
            times["step, no snapshot"].append(step)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{'median of ' + str(args.rounds - 1) + ' rounds':<44} {'ms':>8}  (min .. max)")
    for k, v in times.items():
        print(f"{k:<44} {1000 * median[k]:>8.1f}  ({1000 * min(v):.1f} .. {1000 * max(v):.1f})")
    print(f"\nheadline: the snapshot takes {median['now'] / median['before']:.2f}x the time of the one before "
          f"({1000 * median['now']:.0f} vs {1000 * median['before']:.0f} ms); the step after it takes "
          f"{median['step after now'] / median['step, no snapshot']:.2f}x a step with no snapshot alive")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
