"""How fast can train.py's own path go when the model costs nothing? The host-path ceiling.

    python bench/host_path.py                        # all TrashNet photos, 224 px, batch 64, 4 epochs
    python bench/host_path.py --per_class 100 --json out.json

Runs tools.training.run.train, the function train.py calls, with everything real (the loader and its
RAM decode cache, validation, best.h5, history, epoch backups every 300 s by default, the epoch clock)
except the model: uint8 pixels -> Rescaling -> GlobalAveragePooling2D -> Dense softmax. Its steady
images/s (whole epochs after the first, validation and saves included, as train.py prints them) is the
most any model can train at through this path on this machine; it must be above what one accelerator
consumes (keras.applications.ResNet50, bf16, H100/H200: 2,800-3,300 images/s), or the GPU waits for
the host. Baselines, in the same run: a bare fit() of the same model on the same loader (no validation,
no callbacks), given the loader as Keras takes it (a PyDataset) and as train.py feeds it (tools/training/feed.py). Prints the machine, the command and the figures; --json writes them too.
"""

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tools.quiet import import_keras_quietly  # noqa: E402

import_keras_quietly()  # a benchmark script: Keras is what it measures (bench.train_speed imports it too)

import keras  # noqa: E402
from keras import layers  # noqa: E402

from bench.train_speed import subset  # noqa: E402
from support.trashnet import TRASHNET  # noqa: E402
from tools.training.config import TrainConfig  # noqa: E402
from tools.training.data import data_flow  # noqa: E402
from tools.training.feed import EpochEnds, fit_input  # noqa: E402
from tools.training.run import train  # noqa: E402
from tools.training.state import finished_run  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=TRASHNET, help="labelled photos (default: ../shared TrashNet)")
    p.add_argument("--per_class", type=int, default=0, help="photos per class, 0 = all (default: %(default)s)")
    p.add_argument("--input_size", type=int, default=224, help="(default: %(default)s)")
    p.add_argument("--batch_size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=4, help=">= 2; the first fills the cache (default: %(default)s)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="loader threads (default: cores)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p


def null_classifier(num_classes, input_size, weights=None):
    """A classifier that costs almost nothing, with the real one's input (uint8 pixels) and output."""
    pixels = keras.Input((input_size, input_size, 3), dtype="uint8", name="pixels")
    x = layers.Rescaling(1 / 255, name="head_scale")(pixels)
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    return keras.Model(pixels, layers.Dense(num_classes, activation="softmax", name="head_logits")(x), name="null")


def bare_fit(data_dir, config, fed=False):
    """Images/s of a plain fit() of the null model on the project's training loader (warm RAM cache), no
    validation, no callbacks, epochs after the first (which fills the cache and compiles): the baseline.
    `fed`: the loader as train.py feeds it (tools/training/feed.py), else as Keras takes a PyDataset."""
    flow = data_flow(data_dir, batch_size=config.batch_size, input_size=config.input_size, val_split=config.val_split,
                     seed=config.seed, workers=config.workers, print_fn=lambda line: None, cache="ram")
    model = null_classifier(len(flow.dataset.class_names), config.input_size)
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy")
    times = []
    timer = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: times.append(time.perf_counter()),
                                           on_epoch_end=lambda e, logs: times.append(time.perf_counter()))
    data, callbacks = flow.train, [timer]
    if fed:
        data = fit_input(flow.train)
        callbacks.append(EpochEnds([flow.train]))
    model.fit(data, epochs=config.epochs, shuffle=False, verbose=0, callbacks=callbacks)
    seconds = sum(times[i + 1] - times[i] for i in range(2, len(times), 2))
    return len(flow.train) * flow.train.batch_size * (config.epochs - 1) / seconds


def main(args):
    if not os.path.isdir(args.data_dir):
        print(f"error: no photos at {args.data_dir} (the shared TrashNet copy, or pass --data_dir)", file=sys.stderr)
        return 2
    if args.epochs < 2:
        print("error: --epochs must be >= 2 (the first fills the decode cache)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    with tempfile.TemporaryDirectory() as tmp:
        data_dir, paths, _, num_classes = subset(args.data_dir, args.per_class, tmp)
        out = os.path.join(tmp, "out")
        config = TrainConfig(data_dirs=(data_dir,), weights="none", augment="none", cache="ram",
                             input_size=args.input_size, batch_size=args.batch_size, epochs=args.epochs,
                             patience=1000, workers=args.workers, output_dir=out)
        bare = bare_fit(data_dir, config)
        bare_fed = bare_fit(data_dir, config, fed=True)
        train(config, build_model=null_classifier)
        state = finished_run(out)
    whole, steps = state.rates()
    steady = state.steady()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    figures = {"machine": machine, "command": " ".join(sys.argv), "photos": len(paths),
               "input_size": args.input_size, "batch_size": args.batch_size,
               "images_per_s_whole_epochs": whole, "images_per_s_steps": steps, "bare_fit_images_per_s": bare,
               "bare_fit_fed_images_per_s": bare_fed, "whole_over_bare": whole / bare,
               "steady_epochs": [{"wall": e.wall, "data": e.data, "steps": e.steps, "validation": e.validation,
                                  "callbacks": e.callbacks} for e in steady]}
    print(f"machine: {machine}; command: {figures['command']}")
    print(f"host path, null model, {len(paths)} photos at {args.input_size} px, batch {args.batch_size}: "
          f"train.py's path {whole:.0f} images/s over whole steady epochs (validation and saves included; "
          f"{steps:.0f} in the steps), a bare fit() of the same model on the same loader {bare:.0f} "
          f"({whole / bare:.2f}x; {bare_fed:.0f} with the loader fed as train.py feeds it)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
