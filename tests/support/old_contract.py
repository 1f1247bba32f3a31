"""best.h5 + labels.json exactly as train.py wrote them before models took pixels (the "caffe_float32"
contract): what users' disks hold, for the tests that check such files keep loading and predicting.

The model is the old `build_classifier` (git show 4915130:models/classifier.py): the plain ResNet50
(float32 input, already preprocessed by the caller) + the same head, saved with save_model_atomic;
labels.json has labels / input_size / preprocessing only, no "input".
"""

import json
import os

import numpy as np

#: labels.json "preprocessing" as the old write_labels wrote it (models.preprocess.CONTRACT of the time).
OLD_CONTRACT = {"mode": "caffe", "channel_order": "BGR",
                "mean": np.array([103.939, 116.779, 123.68], dtype=np.float32).tolist(), "scale": 1.0}


def build_old_classifier(num_classes, input_size=224, dropout=0.5, l2=1e-3):
    """The classifier before the pixel layers: float32 (N, S, S, 3) preprocessed input, same layer names."""
    import keras

    from models.classifier import custom_top
    from models.resnet50 import ResNet50

    base = ResNet50(include_top=False, weights=None, input_shape=(input_size, input_size, 3))
    return keras.Model(base.input, custom_top(base.output, num_classes, dropout, l2), name="garbage_resnet50")


def write_old_labels(folder, class_names, input_size):
    """labels.json byte for byte as the old tools.contract.write_labels wrote it."""
    with open(os.path.join(folder, "labels.json"), "w", encoding="utf-8") as f:
        json.dump({"labels": list(class_names), "input_size": input_size, "preprocessing": OLD_CONTRACT}, f,
                  ensure_ascii=False, indent=1)


def save_old_contract_model(folder, num_classes=4, input_size=32, like=None, class_names=None):
    """Write folder/best.h5 + folder/labels.json of the old contract; returns the best.h5 path.

    `like`: a new-contract (uint8-input) model whose weights are copied in by layer name, so the two
    compute the same function (its fixed preprocess_* layers have no counterpart: the caller does that).
    `class_names` default to the first `num_classes` of support.datagen.CLASS_NAMES.
    """
    from models.saving import save_model_atomic
    from support.datagen import CLASS_NAMES

    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    model = build_old_classifier(num_classes, input_size)
    if like is not None:
        for layer in model.layers:
            if layer.weights:
                layer.set_weights(like.get_layer(layer.name).get_weights())
    path = os.path.join(folder, "best.h5")
    save_model_atomic(model, path)
    write_old_labels(folder, class_names or CLASS_NAMES[:num_classes], input_size)
    return path
