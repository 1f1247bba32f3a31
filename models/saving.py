"""Saving and loading the trained model file (best.h5) safely: no kill or crash can leave it half-written.

best.h5 stays in the HDF5 format the original used (predict.py, server.py and users' scripts
load it with plain `keras.models.load_model`); Keras 3 calls that format legacy and warns on
every save, which here would repeat each epoch, so the warning is silenced for our own saves.
"""

import contextlib
import json
import os


@contextlib.contextmanager
def _quiet_absl():
    from absl import logging as absl_logging

    old = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(old)


def replace_atomic(tmp, path):
    """os.replace(tmp, path) once tmp's bytes are on disk, then the rename itself where the OS allows:
    a kill, crash or power cut at any instant leaves either the old file or the complete new one."""
    fd = os.open(tmp, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its renames need no such flush
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: In the name of every temporary file the training run writes besides best.h5's (backups, state, JSON):
#: tools/training/resume.remove_stale_temp_files finds what a killed run left by it.
TMP = ".tmp-"


def write_json_atomic(path, obj, indent=None):
    """Write `obj` as JSON to `path` through a temporary file + replace_atomic: never a half-written file."""
    tmp = f"{path}{TMP}{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, default=float, ensure_ascii=False, indent=indent)
        replace_atomic(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


TEMP_GLOB = ".*.tmp.h5"  # save_model_atomic's temporary files, left behind only by a killed process


def remove_files(paths):
    """Delete each of `paths` that can be deleted (gone already, or in use elsewhere: left); returns those deleted.
    For what a killed run left (temporary files) and caches that are out of date."""
    removed = []
    for path in paths:
        try:
            os.remove(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def save_model_atomic(model, path):
    """Write `model` for inference (no optimizer state) to `path` via a temp file + os.replace,
    so a crash mid-write leaves the previous file intact, never a broken one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp.h5")
    try:
        with _quiet_absl():
            model.save(tmp, include_optimizer=False)
        replace_atomic(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
