"""The garbage classifier: hand-written ResNet50 backbone + the original project's custom top.

Top (as in the 2022 project): global average pool -> Dropout 0.5 -> Dense 1024 ReLU (L2 1e-3) -> BN
-> Dense 512 ReLU (L2 1e-3) -> BN -> Dropout 0.5 -> Dense N softmax. Built flat (backbone layers
live in the same model) so stages can be frozen and unfrozen by name and best.h5 loads with plain
`keras.models.load_model`, no custom objects.
"""

import keras
from keras import layers, regularizers

from models.resnet50 import ResNet50


def build_classifier(num_classes, input_size=224, weights="imagenet", dropout=0.5, l2=1e-3):
    """ResNet50(include_top=False) + the custom top; `weights` as in ResNet50 (None, "imagenet", path)."""
    base = ResNet50(include_top=False, weights=weights, input_shape=(input_size, input_size, 3))
    reg = regularizers.L2(l2)
    x = layers.GlobalAveragePooling2D(name="head_pool")(base.output)
    x = layers.Dropout(dropout, name="head_dropout1")(x)
    x = layers.Dense(1024, activation="relu", kernel_regularizer=reg, name="head_fc1")(x)
    x = layers.BatchNormalization(name="head_bn1")(x)
    x = layers.Dense(512, activation="relu", kernel_regularizer=reg, name="head_fc2")(x)
    x = layers.BatchNormalization(name="head_bn2")(x)
    x = layers.Dropout(dropout, name="head_dropout2")(x)
    x = layers.Dense(num_classes, name="head_logits")(x)
    # float32 softmax keeps probabilities exact under mixed precision.
    out = layers.Activation("softmax", dtype="float32", name="head_softmax")(x)
    return keras.Model(base.input, out, name="garbage_resnet50")


def stage_of(layer_name):
    """ResNet stage (1..5) a backbone layer belongs to; None for head layers."""
    if layer_name.startswith("conv") and layer_name[4:5].isdigit():
        return int(layer_name[4])
    if layer_name.startswith("pool1"):
        return 1
    return None


def set_trainable_from(model, stage):
    """Train the head and backbone stages >= `stage` (1..6; 6 = head only).

    BatchNormalization layers of the backbone stay frozen, which in Keras 3 also keeps them in
    inference mode: their ImageNet statistics are not disturbed by small fine-tuning batches.
    Returns the number of trainable weights.
    """
    if not 1 <= stage <= 6:
        raise ValueError(f"`stage` must be 1..5 (or 6 for the head only). Received: stage={stage!r}")
    for layer in model.layers:
        s = stage_of(layer.name)
        if s is None:
            layer.trainable = True
        else:
            layer.trainable = s >= stage and not isinstance(layer, layers.BatchNormalization)
    return len(model.trainable_weights)
