"""ResNet50 weight files: where ImageNet weights come from, and loading either file layout by name.

Two layouts of the same weights live on users' disks, both in the Keras 2 `.h5` weights format:
- the current Keras file (`keras.applications`), layer names `conv1_conv`, `conv2_block1_1_conv`, ...;
- the legacy deep-learning-models v0.2 file, which the original project told users to copy into
  `~/.keras/models/`, layer names `conv1`, `bn_conv1`, `res2a_branch2a`, `bn2a_branch1`, `fc1000`.
Both have the same file name, so the one found in the Keras cache is recognised by its md5.
Loading goes by layer name (not order), and every layer must be accounted for: a ResNet101 file
or a truncated one is an error, not a silent partial load.
"""

import hashlib
import os
import re

import h5py
import numpy as np

from tools.errors import GarbageError
from tools.files import first_line

#: Where Keras publishes the ResNet50 files (the URL `keras.applications.ResNet50` uses).
KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
#: include_top -> (file name, md5 of the Keras file, md5 of the legacy v0.2 file of the same name).
IMAGENET_FILES = {
    True: ("resnet50_weights_tf_dim_ordering_tf_kernels.h5",
           "2cb95161c43110f7111970584f804107", "a7b3fe01876f51b976af0dea6bc144eb"),
    False: ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "4d473c1dd8becc155b73f8504c6f6626", "a268eb855778b3df3c7506639542a6af"),
}
#: Layers a weights file may hold that a model without the top does not have.
TOP_LAYERS = ("predictions", "fc1000")


class WeightsUnavailableError(GarbageError, OSError):
    """ImageNet weights are not cached and cannot be downloaded (or the cached file is foreign)."""


def keras_cache_dir():
    """The folder `keras.utils.get_file` caches into: $KERAS_HOME, else ~/.keras (/tmp/.keras if unwritable)."""
    if "KERAS_HOME" in os.environ:
        return os.environ["KERAS_HOME"]
    home = os.path.expanduser("~")
    return os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")


def md5sum(path, chunk=1 << 20):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def imagenet_weights_path(include_top):
    """Path of the ImageNet weights file, downloaded through `keras.utils.get_file` on first use.

    A file already in the cache is used when its md5 is the Keras or the legacy file's; an
    unrecognised file is never handed to get_file (which deletes it when a re-download fails).
    """
    import keras

    fname, keras_md5, legacy_md5 = IMAGENET_FILES[bool(include_top)]
    cache_dir = keras_cache_dir()
    cached = os.path.join(cache_dir, "models", fname)
    url = KERAS_BASE_URL + fname
    if os.path.exists(cached):
        digest = md5sum(cached)
        if digest in (keras_md5, legacy_md5):
            return cached
        raise WeightsUnavailableError(
            f"{cached} is not the published ResNet50 file (md5 {digest}, expected {keras_md5} or the "
            f"legacy {legacy_md5}); delete it to download {url} again, or use it anyway with --weights {cached}"
        )
    try:
        # get_file falls back to /tmp/.keras when the folder is missing; create it so the file lands
        # where this message and the README say it does.
        os.makedirs(os.path.join(cache_dir, "models"), exist_ok=True)
        return keras.utils.get_file(fname, url, cache_subdir="models", cache_dir=cache_dir, file_hash=keras_md5)
    except Exception as e:  # get_file raises bare Exception for network failures
        reason = first_line(e)
        raise WeightsUnavailableError(
            f"could not download ImageNet weights ({reason}). Offline? Fetch {url} on another machine "
            f"and put it at {cached} (the Keras cache), or pass the file with --weights PATH "
            f"(or train from scratch with --weights none)"
        ) from None


_CURRENT = re.compile(r"^conv(\d)_block(\d+)_(\d)_(conv|bn)$")


def legacy_layer_name(name):
    """Name of a current-Keras ResNet50 layer in the legacy v0.2 file (None if it has no twin)."""
    if name == "conv1_conv":
        return "conv1"
    if name == "conv1_bn":
        return "bn_conv1"
    if name == "predictions":
        return "fc1000"
    m = _CURRENT.match(name)
    if not m:
        return None
    stage, block, idx, kind = m.groups()
    letter = chr(ord("a") + int(block) - 1)
    branch = "1" if idx == "0" else "2" + "abc"[int(idx) - 1]
    return f"{'res' if kind == 'conv' else 'bn'}{stage}{letter}_branch{branch}"


def _decode(values):
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def read_h5_weights(path):
    """{layer name: [arrays in file order]} from a Keras 2 style `.h5` weights (or whole-model) file."""
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in group.attrs:
            raise ValueError(f"{path} is not a Keras .h5 weights file (no 'layer_names' attribute)")
        out = {}
        for layer in _decode(group.attrs["layer_names"]):
            g = group[layer]
            names = _decode(g.attrs.get("weight_names", []))
            if names:
                out[layer] = [np.asarray(g[n]) for n in names]
        return out


def load_weights(model, path):
    """Load an `.h5` ResNet50 weights file of either layout into `model`, matching layers by name.

    Keras 3 `.weights.h5` files go through `model.load_weights`. Returns the number of layers set.
    Raises ValueError naming the layers that are missing, foreign or of the wrong shape.
    """
    path = os.fspath(path)
    if path.endswith(".weights.h5"):
        model.load_weights(path)
        return sum(1 for layer in model.layers if layer.weights)
    stored = read_h5_weights(path)
    used, missing, wrong = set(), [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        key = layer.name if layer.name in stored else legacy_layer_name(layer.name)
        if key not in stored:
            missing.append(layer.name)
            continue
        values = stored[key]
        shapes = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != shapes:
            wrong.append(f"{layer.name}: file {[v.shape for v in values]} vs model {shapes}")
            continue
        layer.set_weights(values)
        used.add(key)
    extra = sorted(set(stored) - used - set(TOP_LAYERS))
    problems = []
    if missing:
        problems.append(f"{len(missing)} layers not in the file (e.g. {', '.join(missing[:3])})")
    if wrong:
        problems.append(f"shape mismatch in {len(wrong)} layers (e.g. {wrong[0]})")
    if extra:
        problems.append(f"{len(extra)} file layers not in the model (e.g. {', '.join(extra[:3])})")
    if problems:
        raise ValueError(f"{path} does not fit this ResNet50: " + "; ".join(problems))
    return len(used)
