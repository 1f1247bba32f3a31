"""ImageNet "caffe" preprocessing, the contract of ResNet50's weights, in numpy.

Same arithmetic as `keras.applications.resnet50.preprocess_input` (RGB -> BGR, subtract the
ImageNet BGR means, no scaling); a test checks the two agree. The classifier does it itself in its
first layers (models/classifier.py, bit for bit the same values), so models from train.py take
uint8 RGB pixels (labels.json "input": "rgb_uint8"). This numpy version feeds models of the older
contract ("caffe_float32": best.h5 files that take preprocessed float32 input, see tools/contract)
and the plain ImageNet ResNet50. Numpy only, no Keras: a .tflite-only install imports it too.
"""

import numpy as np

#: ImageNet channel means in BGR order.
BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
#: labels.json / export metadata "preprocessing": what the model does to its pixels inside (the
#: caller does it only for "caffe_float32" models; tools/contract says which a model is).
CONTRACT = {"mode": "caffe", "channel_order": "BGR", "mean": BGR_MEAN.tolist(), "scale": 1.0}


def preprocess_input(images):
    """uint8/float RGB images (..., H, W, 3) -> float32 BGR with the ImageNet means subtracted."""
    x = np.asarray(images, dtype=np.float32)
    if x.shape[-1] != 3:
        raise ValueError(f"`images` must be RGB images with 3 channels, shape (..., H, W, 3). "
                         f"Received: images.shape={x.shape}")
    return x[..., ::-1] - BGR_MEAN
