"""The model's preprocessing (models/preprocess.py) equals Keras' ResNet50 preprocess_input, under mixed
precision too; an older best.h5, adapted at load (tools/model_loading.py), takes the loader's uint8 batches."""


import keras
import numpy as np
import pytest

from tools.data.layout import load_dataset
from tools.training.loader import GarbageClassifySequence
from models.preprocess import preprocess_input



def _every_pixel_value():
    """(128, 32, 32, 3) uint8 RGB crops holding every pair of values 0..255 in every pair of channels."""
    a, b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    a, b = a.ravel(), b.ravel()
    return np.concatenate([np.stack([a, b, a], -1), np.stack([b, a, b], -1)]).astype(np.uint8).reshape(-1, 32, 32, 3)


def test_preprocessing_equals_keras_resnet50_preprocess_input():
    x = _every_pixel_value()
    expected = keras.applications.resnet50.preprocess_input(x.astype("float32"))
    np.testing.assert_array_equal(preprocess_input(x), np.asarray(expected))  # bit for bit


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_the_models_preprocessing_stays_exact_under_mixed_precision(policy):
    """The classifier's input layers (models.classifier.pixel_preprocessing) keep float32 under a
    mixed-precision policy, while the layer after them computes in float16/bfloat16, and give
    preprocess_input's values (so keras.applications') bit for bit for every pixel value. And the channel
    swap computed in that low precision itself, as TF32/bfloat16 matrix units compute, is exact too: it
    moves whole numbers 0..255. (Run on the CPU: what a GPU's matrix units add is not tested here.)"""
    from models.classifier import PREPROCESS_PREFIX, pixel_preprocessing

    low = policy.split("_")[1]
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        pixels = keras.Input((32, 32, 3), dtype="uint8")
        model = keras.Model(pixels, keras.layers.Conv2D(4, 3, name="next")(pixel_preprocessing(pixels)))
    finally:
        keras.mixed_precision.set_global_policy(before)
    fixed = [layer for layer in model.layers if layer.name.startswith(PREPROCESS_PREFIX)]
    assert len(fixed) == 3 and all(layer.compute_dtype == "float32" for layer in fixed)
    assert model.get_layer("next").compute_dtype == low
    x = _every_pixel_value()
    preprocessed = keras.Model(pixels, fixed[-1].output)(x)
    assert keras.backend.standardize_dtype(preprocessed.dtype) == "float32"
    np.testing.assert_array_equal(np.asarray(preprocessed), preprocess_input(x))
    swap = keras.ops.conv(keras.ops.cast(x, low), keras.ops.cast(model.get_layer(PREPROCESS_PREFIX + "bgr").kernel, low))
    np.testing.assert_array_equal(np.asarray(keras.ops.cast(swap, "float32")), x[..., ::-1].astype(np.float32))


def test_an_old_contract_model_takes_the_loaders_uint8_batches_as_it_took_preprocessed_floats(tiny_data, old_model):
    """The loader yields uint8 crops for every model: a best.h5 of the old contract, as tools.model_loading
    opens it, answers on them exactly what the file's own model answers on the crops preprocessed on the host
    (what the loader's former `preprocess=True` fed it)."""
    from models.saving import load_model
    from tools.model_loading import open_model

    ds = load_dataset(tiny_data)
    x, y, _ = GarbageClassifySequence(ds.paths, ds.labels, 4, batch_size=12, input_size=32)[1]
    assert x.dtype == np.uint8
    adapted, stored = open_model(old_model).model, load_model(old_model)
    assert adapted.inputs[0].dtype == "uint8" and stored.inputs[0].dtype == "float32"
    np.testing.assert_array_equal(np.asarray(adapted.predict_on_batch(x)),
                                  np.asarray(stored.predict_on_batch(preprocess_input(x))))
    assert (np.asarray(adapted.predict_on_batch(x)).argmax(1) == y.argmax(1)).all()  # its classes, not noise
