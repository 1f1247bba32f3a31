"""One process, three runs of tools.training.run.train on the same photos, seed and global batch, with a model
that has no dropout and no BatchNormalization (nothing that depends on how the batch is split): on one
device, on two (--strategy mirrored, --cpu_devices 2) with the learning rate as given (scaled x 2 by the
linear rule), and on two with a learning rate that the scaling would double only if the code forgot it.
Prints their history rows as JSON. Used by tests/test_distributed.py."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def small_model(num_classes, input_size, weights=None):
    """Convolution + pooling + dense, in float32, without dropout or BatchNormalization."""
    import keras
    from keras import layers

    pixels = keras.Input((input_size, input_size, 3), dtype="uint8", name="pixels")
    x = layers.Rescaling(1 / 255, name="head_scale")(pixels)
    x = layers.Conv2D(8, 3, activation="relu", name="head_conv")(x)
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = layers.Dense(16, activation="relu", name="head_fc")(x)
    return keras.Model(pixels, layers.Dense(num_classes, activation="softmax", name="head_logits")(x))


def main(data, out):
    import csv
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    logging.getLogger("tools").setLevel(logging.INFO)
    from tools.training.config import TrainConfig
    from tools.training.run import train

    runs = {"single": ("none", 16, 1e-3), "mirrored": ("mirrored", 8, 5e-4), "unscaled": ("mirrored", 8, 2.5e-4)}
    rows = {}
    for name, (strategy, batch, lr) in runs.items():
        folder = os.path.join(out, name)
        config = TrainConfig(data_dirs=(data,), weights="none", augment="none", input_size=32, batch_size=batch,
                             learning_rate=lr, strategy=strategy, cpu_devices=2, epochs=3, val_split=0.25,
                             workers=1, output_dir=folder, patience=100)
        train(config, build_model=small_model)
        with open(os.path.join(folder, "history.csv"), newline="") as f:
            rows[name] = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    print("ROWS " + json.dumps(rows), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
