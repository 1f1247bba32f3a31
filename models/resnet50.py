"""Hand-written ResNet50 (v1), layer for layer the network of `keras.applications.ResNet50`.

Kept by hand (rather than importing keras.applications) because this project descends from a
teaching repo whose point was to show the blocks; the test suite copies weights between the two
and checks the outputs agree, so the hand-written version cannot drift.

Layer names follow current Keras (`conv1_conv`, `conv2_block1_1_conv`, ...), so weights from the
Keras-published file, from the legacy deep-learning-models v0.2 file (`res2a_branch2a`, ...) and
from `keras.applications.ResNet50` all land in the right layers (see `models/weights.py`).

Run as a script to classify one photo with ImageNet weights:

    python models/resnet50.py IMAGE
"""

import argparse
import os
import sys

import keras
import numpy as np
from keras import layers
from PIL import UnidentifiedImageError

if __package__ in (None, ""):  # `python models/resnet50.py IMAGE`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models import weights as weights_lib  # noqa: E402
from models.preprocess import preprocess_input  # noqa: E402

#: Bottleneck blocks per stage (stages 2..5) and their filters: depth as data.
STAGES = ((2, 3, (64, 64, 256)), (3, 4, (128, 128, 512)), (4, 6, (256, 256, 1024)), (5, 3, (512, 512, 2048)))
BN_EPSILON = 1.001e-5
MIN_INPUT_SIZE = 32
DEFAULT_INPUT_SIZE = 224


def _block_number(block):
    """Accept the original's block letters ('a', 'b', ...) or 1-based numbers."""
    if isinstance(block, str) and len(block) == 1 and block.isalpha():
        return ord(block.lower()) - ord("a") + 1
    if isinstance(block, int) and block >= 1:
        return block
    raise ValueError(f"`block` must be a letter 'a'.. or a number >= 1. Received: block={block!r}")


def _prefix(stage, block):
    return f"conv{stage}_block{_block_number(block)}"


def _bottleneck(x, shortcut, kernel_size, filters, name, strides=(1, 1)):
    """1x1 -> kxk -> 1x1 with BN after each conv, ReLU between, add shortcut, ReLU."""
    filters1, filters2, filters3 = filters
    x = layers.Conv2D(filters1, 1, strides=strides, name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters2, kernel_size, padding="same", name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(filters3, 1, name=f"{name}_3_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name=f"{name}_3_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def identity_block(input_tensor, kernel_size, filters, stage, block):
    """Bottleneck block whose shortcut is the input itself (shapes already match).

    Args:
        input_tensor: input tensor.
        kernel_size: size of the middle convolution.
        filters: the three conv filter counts, e.g. (64, 64, 256).
        stage: stage number (2..5), used in layer names.
        block: block letter ('a', 'b', ...) or number (1, 2, ...), used in layer names.
    """
    return _bottleneck(input_tensor, input_tensor, kernel_size, filters, _prefix(stage, block))


def conv_block(input_tensor, kernel_size, filters, stage, block, strides=(2, 2)):
    """Bottleneck block with a 1x1 projection shortcut; `strides` sit in the first 1x1 (ResNet v1)."""
    name = _prefix(stage, block)
    shortcut = layers.Conv2D(filters[2], 1, strides=strides, name=f"{name}_0_conv")(input_tensor)
    shortcut = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name=f"{name}_0_bn")(shortcut)
    return _bottleneck(input_tensor, shortcut, kernel_size, filters, name, strides=strides)


def _check_args(include_top, weights, input_shape, input_tensor, pooling, classes):
    if not (weights in (None, "imagenet") or (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights))):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), 'imagenet' "
            f"(pre-training on ImageNet), or the path to the weights file to be loaded. Received: weights={weights!r}"
        )
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(
            "If using `weights='imagenet'` with `include_top=True`, `classes` should be 1000. "
            f"Received: classes={classes!r}"
        )
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    if not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer. Received: classes={classes!r}")
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        return (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE, 3) if include_top else (None, None, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"`input_shape` must be (height, width, channels). Received: input_shape={input_shape!r}")
    if input_shape[2] != 3 and weights == "imagenet":
        raise ValueError(f"ImageNet weights need 3 input channels. Received: input_shape={input_shape!r}")
    for side in input_shape[:2]:
        if side is not None and side < MIN_INPUT_SIZE:
            raise ValueError(
                f"Input size must be at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}. Received: input_shape={input_shape!r}"
            )
    if include_top and weights == "imagenet" and input_shape[:2] != (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE):
        raise ValueError(
            "With `include_top=True` and ImageNet weights the input must be 224x224x3. "
            f"Received: input_shape={input_shape!r}"
        )
    if include_top and None in input_shape[:2]:
        raise ValueError(f"`include_top=True` needs a fixed input size. Received: input_shape={input_shape!r}")
    return input_shape


def ResNet50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="resnet50"):
    """ResNet50 v1 (He et al., 2015), numerically the same network as `keras.applications.ResNet50`.

    Args:
        include_top: whether to end with global average pooling and the `classes`-way Dense layer.
        weights: `None` (random init), `"imagenet"` (Keras' published file, fetched once into the
            Keras cache `~/.keras/models/`), or a path to an `.h5` weights file in the current Keras
            layout or the legacy deep-learning-models v0.2 layout.
        input_tensor: optional Keras tensor to use as image input.
        input_shape: `(height, width, 3)`, each side >= 32; default 224x224x3 with the top, any size without.
        pooling: without the top: `None` (4D feature map), `"avg"` or `"max"` (2D features).
        classes: number of classes of the top.
        classifier_activation: activation of the top layer.
        name: model name.

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: on a bad argument (the message quotes it).
        weights.WeightsUnavailableError: `"imagenet"` requested, no cached file and no network.
    """
    input_shape = _check_args(include_top, weights, input_shape, input_tensor, pooling, classes)
    if input_tensor is None:
        img_input = layers.Input(shape=input_shape)
    elif not keras.backend.is_keras_tensor(input_tensor):
        img_input = layers.Input(tensor=input_tensor, shape=input_shape)
    else:
        img_input = input_tensor

    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(img_input)
    x = layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    for stage, blocks, filters in STAGES:
        x = conv_block(x, 3, filters, stage=stage, block=1, strides=(1, 1) if stage == 2 else (2, 2))
        for block in range(2, blocks + 1):
            x = identity_block(x, 3, filters, stage=stage, block=block)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else img_input
    model = keras.Model(inputs, x, name=name)

    if weights == "imagenet":
        weights_lib.load_weights(model, weights_lib.imagenet_weights_path(include_top))
    elif weights is not None:
        weights_lib.load_weights(model, os.fspath(weights))
    return model


def main(argv=None):
    """Print the top-5 ImageNet classes for one image."""
    parser = argparse.ArgumentParser(description="Top-5 ImageNet predictions of ResNet50 for one image.")
    parser.add_argument("image", help="path of a JPEG/PNG/... photo")
    parser.add_argument("--weights", default="imagenet", help="'imagenet' (Keras cache) or PATH of an .h5 file")
    args = parser.parse_args(argv)

    side = DEFAULT_INPUT_SIZE
    try:  # Keras' own loader, as in keras.applications' examples: the centre square, resized to 224x224
        img = keras.utils.load_img(args.image, target_size=(side, side), interpolation="bilinear",
                                   keep_aspect_ratio=True)
    except UnidentifiedImageError:
        sys.exit(f"error: {args.image}: not an image (unrecognised format)")
    except (OSError, ValueError, SyntaxError) as e:
        sys.exit(f"error: {args.image}: {e}")
    try:
        model = ResNet50(weights=args.weights)
    except (weights_lib.WeightsUnavailableError, ValueError) as e:
        sys.exit(f"error: {e}")
    probs = np.asarray(model.predict(preprocess_input(np.asarray(img, np.float32)[None]), verbose=0))
    try:  # the class names file also comes through the Keras cache
        names = [name for _, name, _ in keras.applications.imagenet_utils.decode_predictions(probs, top=5)[0]]
    except Exception:  # offline and not cached: fall back to class ids
        names = None
    for rank, idx in enumerate(np.argsort(probs[0])[::-1][:5], 1):
        label = names[rank - 1] if names else f"ImageNet class {idx}"
        print(f"{rank}. {label:<30s} {probs[0][idx]:.4f}")


if __name__ == "__main__":
    main()
