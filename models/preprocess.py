"""ImageNet "caffe" preprocessing, the contract of ResNet50's weights, in numpy.

Same arithmetic as `keras.applications.resnet50.preprocess_input` (RGB -> BGR, subtract the
ImageNet BGR means, no scaling); a test checks the two agree. Done in numpy so the loader and the
prediction code need no backend tensor ops and stay identical on TensorFlow and JAX.
"""

import numpy as np

#: ImageNet channel means in BGR order.
BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
#: Written to labels.json / export metadata so other runtimes can reproduce the input.
CONTRACT = {"mode": "caffe", "channel_order": "BGR", "mean": BGR_MEAN.tolist(), "scale": 1.0}


def preprocess_input(images):
    """uint8/float RGB images (..., H, W, 3) -> float32 BGR with the ImageNet means subtracted."""
    x = np.asarray(images, dtype=np.float32)
    if x.shape[-1] != 3:
        raise ValueError(f"`images` must be RGB images with 3 channels, shape (..., H, W, 3). "
                         f"Received: images.shape={x.shape}")
    return x[..., ::-1] - BGR_MEAN
