"""ImageNet "caffe" preprocessing, the contract of ResNet50's weights: in numpy, and as the model's first layers.

Same arithmetic as `keras.applications.resnet50.preprocess_input` (RGB -> BGR, subtract the
ImageNet BGR means, no scaling); a test checks the two agree. The classifier does it itself in its
first layers (`pixel_preprocessing`, bit for bit the same values), so models from train.py take
uint8 RGB pixels (labels.json "input": "rgb_uint8"); a best.h5 of the older contract
("caffe_float32": float32 input preprocessed by the caller) gets the same layers put in front of it
when it is loaded (tools/model_loading.py). The numpy version is the reference the tests compare
with, feeds the plain ImageNet ResNet50, and an older float32 .tflite export. Keras is imported only
when the layers are built: a .tflite-only install imports this module too.
"""

import numpy as np

#: ImageNet channel means in BGR order.
BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
#: labels.json / export metadata "preprocessing": what the model does to its pixels inside.
CONTRACT = {"mode": "caffe", "channel_order": "BGR", "mean": BGR_MEAN.tolist(), "scale": 1.0}
#: Layer-name prefix of the fixed input layers (cast + mean, RGB -> BGR): never trainable.
PREPROCESS_PREFIX = "preprocess_"


def preprocess_input(images):
    """uint8/float RGB images (..., H, W, 3) -> float32 BGR with the ImageNet means subtracted."""
    x = np.asarray(images, dtype=np.float32)
    if x.shape[-1] != 3:
        raise ValueError(f"`images` must be RGB images with 3 channels, shape (..., H, W, 3). "
                         f"Received: images.shape={x.shape}")
    return x[..., ::-1] - BGR_MEAN


def pixel_preprocessing(pixels):
    """uint8 RGB tensor -> float32 BGR minus the ImageNet means, with built-in layers only.

    Same values as `preprocess_input` to the last bit, on any hardware: the cast is exact, the
    RGB -> BGR swap (a 1x1 convolution with a permutation kernel) works on whole numbers 0..255,
    which even TF32 or bfloat16 matrix units hold exactly, and the means are subtracted last,
    elementwise in float32. float32 under a mixed-precision policy too (the next layer casts after it).
    """
    import keras  # here, not at the top: see the module docstring
    from keras import layers

    x = layers.Rescaling(1.0, dtype="float32", name=PREPROCESS_PREFIX + "cast")(pixels)
    to_bgr = np.eye(3, dtype=np.float32)[::-1].reshape(1, 1, 3, 3)  # output channel j = input channel 2 - j
    x = layers.Conv2D(3, 1, use_bias=False, trainable=False, dtype="float32",
                      kernel_initializer=keras.initializers.Constant(to_bgr), name=PREPROCESS_PREFIX + "bgr")(x)
    return layers.Rescaling(1.0, offset=(-BGR_MEAN).tolist(), dtype="float32", name=PREPROCESS_PREFIX + "mean")(x)
