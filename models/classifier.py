"""The garbage classifier: RGB pixels in, class probabilities out; the hand-written ResNet50 in between.

The model takes uint8 RGB photos (N, S, S, 3), values 0-255: casting and ImageNet's "caffe"
preprocessing are its first layers (`preprocess_cast`, `preprocess_bgr`, `preprocess_mean`, built by
`models.preprocess.pixel_preprocessing`), so batches travel to the accelerator as bytes (a quarter of
float32) and every runtime (Keras, SavedModel, TFLite, ONNX) gets the same contract: pixels. They are
built-in layers with fixed weights, never trained.

Top (as in the 2022 project): global average pool -> Dropout 0.5 -> Dense 1024 ReLU (L2 1e-3) -> BN
-> Dense 512 ReLU (L2 1e-3) -> BN -> Dropout 0.5 -> Dense N softmax. Built flat (backbone layers
live in the same model) so stages can be frozen and unfrozen by name and best.h5 loads with plain
`keras.models.load_model`, no custom objects.
"""

import keras
from keras import layers, regularizers

from models.preprocess import PREPROCESS_PREFIX, pixel_preprocessing
from models.resnet50 import ResNet50


def custom_top(features, num_classes, dropout=0.5, l2=1e-3):
    """The 2022 project's top on the backbone's feature map; returns the class probabilities tensor."""
    reg = regularizers.L2(l2)
    x = layers.GlobalAveragePooling2D(name="head_pool")(features)
    x = layers.Dropout(dropout, name="head_dropout1")(x)
    x = layers.Dense(1024, activation="relu", kernel_regularizer=reg, name="head_fc1")(x)
    x = layers.BatchNormalization(name="head_bn1")(x)
    x = layers.Dense(512, activation="relu", kernel_regularizer=reg, name="head_fc2")(x)
    x = layers.BatchNormalization(name="head_bn2")(x)
    x = layers.Dropout(dropout, name="head_dropout2")(x)
    x = layers.Dense(num_classes, name="head_logits")(x)
    # float32 softmax keeps probabilities exact under mixed precision.
    return layers.Activation("softmax", dtype="float32", name="head_softmax")(x)


def build_classifier(num_classes, input_size=224, weights="imagenet", dropout=0.5, l2=1e-3):
    """uint8 pixels -> preprocessing -> ResNet50(include_top=False) -> the custom top.

    `weights` as in ResNet50: None, "imagenet" or a path; they are loaded into a plain ResNet50 and
    copied into the backbone layer by layer (same names), so the file checks of models/weights.py apply.
    """
    pixels = layers.Input((input_size, input_size, 3), dtype="uint8", name="pixels")
    base = ResNet50(include_top=False, weights=None, input_tensor=pixel_preprocessing(pixels))
    model = keras.Model(pixels, custom_top(base.output, num_classes, dropout, l2), name="garbage_resnet50")
    if weights is not None:
        pretrained = ResNet50(include_top=False, weights=weights, input_shape=(input_size, input_size, 3))
        for layer in pretrained.layers:
            if layer.weights:
                model.get_layer(layer.name).set_weights(layer.get_weights())
    return model


def stage_of(layer_name):
    """ResNet stage (1..5) a backbone layer belongs to; 0 for the fixed input layers; None for head layers."""
    if layer_name.startswith(PREPROCESS_PREFIX):
        return 0
    if layer_name.startswith("conv") and layer_name[4:5].isdigit():
        return int(layer_name[4])
    if layer_name.startswith("pool1"):
        return 1
    return None


def set_trainable_from(model, stage, batchnorm=False):
    """Train the head and backbone stages >= `stage` (1..6; 6 = head only).

    BatchNormalization layers of the backbone stay frozen unless `batchnorm` (training from scratch):
    in Keras 3 that also keeps them in inference mode, so their ImageNet statistics are not disturbed
    by small fine-tuning batches. The input layers (stage 0) never train. Returns the number of
    trainable weights.
    """
    if not 1 <= stage <= 6:
        raise ValueError(f"`stage` must be 1..5 (or 6 for the head only). Received: stage={stage!r}")
    for layer in model.layers:
        s = stage_of(layer.name)
        if s is None:
            layer.trainable = True
        elif s == 0:
            layer.trainable = False
        else:
            layer.trainable = s >= stage and (batchnorm or not isinstance(layer, layers.BatchNormalization))
    return len(model.trainable_weights)
