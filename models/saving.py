"""Saving and loading the trained model file (best.h5) safely: no kill or crash can leave it half-written.

best.h5 stays in the HDF5 format the original used (predict.py, server.py and users' scripts
load it with plain `keras.models.load_model`); Keras 3 calls that format legacy and warns on
every save, which here would repeat each epoch, so the warning is silenced for our own saves.
"""

import contextlib
import os

from tools.files import atomic_path


@contextlib.contextmanager
def _quiet_absl():
    from absl import logging as absl_logging

    old = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(old)


TEMP_GLOB = ".*.tmp.h5"  # save_model_atomic's temporary files, left behind only by a killed process


def save_model_atomic(model, path):
    """Write `model` for inference (no optimizer state) to `path` via a temp file + os.replace (atomic_path),
    so a crash mid-write leaves the previous file intact, never a broken one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with atomic_path(path, os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp.h5")) as tmp:
        with _quiet_absl():
            model.save(tmp, include_optimizer=False)


def read_weights(path, model):
    """The values of `model.weights`, in that order, from a model file save_model_atomic wrote (HDF5, the
    weights under their paths), without making a model or assigning anything. ValueError when the file
    lacks one of them or holds another shape."""
    import h5py

    stored = {}
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        for layer in group.values():
            for name in layer.attrs.get("weight_names", []):
                name = name.decode() if isinstance(name, bytes) else name
                stored[name] = layer[name][()]
    values = []
    for v in model.weights:
        if v.path not in stored or stored[v.path].shape != tuple(v.shape):
            raise ValueError(f"{path} does not hold {v.path} {tuple(v.shape)}: it is another model's")
        values.append(stored[v.path])
    return values


def load_model(path):
    """Load a saved classifier for inference (not compiled)."""
    import keras

    return keras.models.load_model(path, compile=False)
