"""Weight files in the Keras 2 `.h5` layout of the published ImageNet files, made from a model's weights:
what the tests give models.weights.load_weights instead of a download."""

import h5py
import numpy as np

from models.weights import legacy_layer_name


def save_h5_weights(model, path, layout="keras"):
    """Write `model`'s weights in the Keras 2 `.h5` layout, with current (`"keras"`) or `"legacy"` names.

    This is the format of both published files; the tests make them from random weights.
    """
    if layout not in ("keras", "legacy"):
        raise ValueError(f"`layout` must be 'keras' or 'legacy'. Received: layout={layout!r}")
    with h5py.File(path, "w") as f:
        names, counters = [], {}
        for layer in model.layers:
            name = layer.name
            if layout == "legacy":  # v0.2 named weightless layers generically: activation_1, add_3, ...
                kind = type(layer).__name__.lower()
                counters[kind] = counters.get(kind, 0) + 1
                name = legacy_layer_name(layer.name) or f"{kind}_{counters[kind]}"
            names.append(name)
            g = f.create_group(name)
            weight_names = [f"{name}/{w.path.split('/')[-1]}:0" for w in layer.weights]
            g.attrs["weight_names"] = np.array([n.encode("utf8") for n in weight_names], dtype="S")
            for wname, w in zip(weight_names, layer.weights):
                g.create_dataset(wname, data=np.asarray(w.numpy() if hasattr(w, "numpy") else w))
        f.attrs["layer_names"] = np.array([n.encode("utf8") for n in names], dtype="S")
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
