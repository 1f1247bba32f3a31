"""models/augmentation.py: the on-device augmentation layers, the presets and the training wrapper."""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from models.augmentation import (MEAN_RGB, PRESETS, Cutout, RandomAffine, affine_matrices, build_augmentation,
                                 resample, training_model)
from models.classifier import build_classifier, set_trainable_from

from support import ROOT



def _noise(n=8, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _changed(x, y):
    """Per image: does y differ from x anywhere?"""
    return np.asarray(y).reshape(len(x), -1).astype(int) != np.asarray(x).reshape(len(x), -1).astype(int)


def _share_changed(x, y):
    return _changed(x, y).any(axis=1).mean()


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(3)
    return build_classifier(3, 32, weights=None)


# ----------------------------------------------------------------- inference: the block is invisible
def test_inference_is_the_classifier_alone(classifier):
    model = training_model(classifier, build_augmentation("original", 32, seed=0))
    assert model is not classifier and model.name == "train_" + classifier.name
    assert model.input.dtype == "uint8"
    x = _noise(4)
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), np.asarray(classifier(x, training=False)))
    np.testing.assert_array_equal(model.predict(x, verbose=0), classifier.predict(x, verbose=0))
    assert training_model(classifier, None) is classifier
    assert build_augmentation("none", 32) is None


@pytest.mark.parametrize("preset", ["original", "flip"])
def test_training_mode_changes_uint8_images_only_then(preset):
    block = build_augmentation(preset, 32, seed=1)
    assert block.name == "augment"
    x = _noise()
    for training in (None, False):
        np.testing.assert_array_equal(np.asarray(block(x, training=training)), x)
    y = block(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "uint8" and tuple(y.shape) == x.shape
    assert 0 < _share_changed(x, y) < 1  # seeded: some images augmented, some not


@pytest.mark.parametrize("make", [lambda rate: RandomAffine(rate=rate, seed=4), lambda rate: Cutout(8, rate=rate, seed=4)],
                         ids=["RandomAffine", "Cutout"])
def test_rate_is_the_share_of_images_changed(make):
    x = _noise()
    shares = {}
    for rate in (0.0, 0.5, 1.0):
        layer = make(rate)
        shares[rate] = np.mean([_share_changed(x, layer(x, training=True)) for _ in range(8)])  # 64 images
    assert shares[0.0] == 0 and shares[1.0] == 1
    assert 0.3 < shares[0.5] < 0.7


def test_seed_fixes_every_random_choice():
    x = _noise()
    a, b, c = (build_augmentation("original", 32, seed=s) for s in (5, 5, 6))
    first_a, first_b, first_c = (np.asarray(m(x, training=True)) for m in (a, b, c))
    np.testing.assert_array_equal(first_a, first_b)
    assert not np.array_equal(first_a, first_c)
    second_a, second_b = np.asarray(a(x, training=True)), np.asarray(b(x, training=True))
    np.testing.assert_array_equal(second_a, second_b)
    assert not np.array_equal(first_a, second_a)  # the generator moves on between batches


def test_seed_states_are_named_after_their_layers():
    paths = [v.path for v in build_augmentation("original", 32, seed=0).variables]
    assert paths == ["random_affine/seed_generator/seed_generator_state", "cutout/seed_generator/seed_generator_state"]


# ----------------------------------------------------------------- RandomAffine
def _matrices(n, rng, flips_only=False):
    def col(lo, hi):
        return ops.convert_to_tensor(rng.uniform(lo, hi, n).astype("float32"))

    fx = ops.convert_to_tensor(np.array([1, -1, 1, -1] * (n // 4), "float32"))
    fy = ops.convert_to_tensor(np.array([1, 1, -1, -1] * (n // 4), "float32"))
    if flips_only:
        zero, one = ops.zeros((n,)), ops.ones((n,))
        return affine_matrices(zero, zero, zero, zero, one, one, fx, fy, 32, 40)
    return affine_matrices(col(-0.5, 0.5), col(-6, 6), col(-6, 6), col(-0.3, 0.3), col(0.8, 1.2), col(0.8, 1.2),
                           fx, fy, 32, 40)


def test_flip_matrices_reproduce_array_flips_exactly():
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 40, 3)).astype("float32")
    out = np.asarray(resample(x, _matrices(4, None, flips_only=True)))
    np.testing.assert_array_equal(out, np.stack([x[0], x[1, :, ::-1], x[2, ::-1], x[3, ::-1, ::-1]]))


def test_resample_is_keras_affine_transform_with_nearest_fill():
    """Same convention (output -> input, pixel centres at integers) and values as keras.ops.image.affine_transform."""
    x = np.random.default_rng(2).uniform(0, 255, (8, 32, 40, 3)).astype("float32")
    t = _matrices(8, np.random.default_rng(3))
    expected = ops.image.affine_transform(x, t, interpolation="bilinear", fill_mode="nearest")
    np.testing.assert_allclose(np.asarray(resample(x, t)), np.asarray(expected), atol=1e-3)


def test_rotation_turns_a_dot_about_the_centre_by_at_most_the_angle():
    size, radius = 33, 10.0
    x = np.zeros((8, size, size, 1), "float32")
    x[:, 16, 16 + int(radius)] = 1000.0  # a dot right of the centre (16, 16): angle 0
    y = np.asarray(RandomAffine(rotation=30, shift=0, shear=0, zoom=0, horizontal_flip=False, vertical_flip=False,
                                rate=1.0, seed=7)(x, training=True))
    assert y.dtype == np.float32
    rows, cols = np.mgrid[:size, :size]
    angles = []
    for img in y[..., 0]:
        w = img / img.sum()
        dy, dx = (w * rows).sum() - 16, (w * cols).sum() - 16
        assert math.hypot(dx, dy) == pytest.approx(radius, abs=0.5)
        angles.append(math.degrees(math.atan2(dy, dx)))
    assert max(abs(a) for a in angles) <= 31
    assert max(angles) - min(angles) > 10  # each image its own angle


def test_flip_preset_flips_horizontally_exactly():
    x = _noise()
    y = np.asarray(build_augmentation("flip", 32, seed=2)(x, training=True))
    flipped = [np.array_equal(y[i], x[i, :, ::-1]) for i in range(len(x))]
    assert all(f or np.array_equal(y[i], x[i]) for i, f in enumerate(flipped))
    assert 0 < sum(flipped) < len(x)


def test_uint8_output_is_the_rounded_float_output():
    x = _noise(4)
    layer_u8, layer_f = RandomAffine(rate=1.0, seed=9), RandomAffine(rate=1.0, seed=9)
    y_u8 = np.asarray(layer_u8(x, training=True))
    y_f = np.asarray(layer_f(x.astype("float32"), training=True))
    assert y_f.dtype == np.float32 and y_u8.dtype == np.uint8
    np.testing.assert_array_equal(y_u8, np.clip(np.round(y_f), 0, 255).astype(np.uint8))


def test_block_compiles_with_xla_on_tensorflow():
    """Train steps are jit-compiled with a GPU: the block must compile (affine_transform's TF op would not)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's XLA")
    import tensorflow as tf

    block = build_augmentation("original", 32, seed=3)
    y = tf.function(lambda z: block(z, training=True), jit_compile=True)(tf.constant(_noise()))
    assert y.dtype == tf.uint8 and 0 < _share_changed(_noise(), y.numpy())


# ----------------------------------------------------------------- Cutout
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_cutout_fills_one_length_square_with_the_mean_colour(dtype):
    length, size = 9, 40
    x = np.full((8, size, size, 3), 50, dtype)
    clipped = full = 0
    for seed in range(3):
        y = np.asarray(Cutout(length, rate=1.0, seed=seed)(x, training=True))
        assert y.dtype == np.dtype(dtype)
        for img in y:
            hole = (img != 50).any(axis=-1)
            assert (img[hole] == np.array(MEAN_RGB, dtype)).all() and (img[~hole] == 50).all()
            rows, cols = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
            assert hole.sum() == len(rows) * len(cols)  # a rectangle...
            assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)
            for idx in (rows, cols):  # ...of side `length` unless the border cuts it
                at_border = idx[0] == 0 or idx[-1] == size - 1
                assert len(idx) == length or (at_border and 0 < len(idx) < length)
            if len(rows) == len(cols) == length:
                full += 1
            else:
                clipped += 1
    assert full and clipped


def test_cutout_fill_per_channel_or_one_value():
    x = _noise(2, 32)
    y = np.asarray(Cutout(32, fill=300.0, rate=1.0, seed=0)(x, training=True))  # a 32 hole at any centre covers >= 1/4
    assert (y == 255).any(axis=-1).mean() >= 0.25  # clipped to 255 for uint8
    with pytest.raises(ValueError, match=r"2 values for images of 3 channels"):
        Cutout(4, fill=(1, 2), rate=1.0)(x, training=True)


# ----------------------------------------------------------------- arguments, config, presets
@pytest.mark.parametrize("make,quoted", [
    (lambda: RandomAffine(rotation=-1), "rotation=-1"),
    (lambda: RandomAffine(shear="0.2"), "shear='0.2'"),
    (lambda: RandomAffine(zoom=1.0), "zoom=1.0"),
    (lambda: RandomAffine(shift=float("nan")), "shift=nan"),
    (lambda: RandomAffine(rate=1.5), "rate=1.5"),
    (lambda: RandomAffine(horizontal_flip="yes"), "horizontal_flip='yes'"),
    (lambda: RandomAffine(seed=1.5), "seed=1.5"),
    (lambda: Cutout(0), "length=0"),
    (lambda: Cutout(4.0), "length=4.0"),
    (lambda: Cutout(4, fill="grey"), "fill='grey'"),
    (lambda: Cutout(4, rate=-0.1), "rate=-0.1"),
    (lambda: build_augmentation("original", 0), "input_size=0"),
    (lambda: build_augmentation("heavy", 32), "preset='heavy'"),
])
def test_bad_arguments_raise_valueerror_quoting_the_value(make, quoted):
    with pytest.raises(ValueError) as e:
        make()
    assert quoted in str(e.value)


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ValueError) as e:
        build_augmentation("heavy", 32)
    assert all(repr(name) in str(e.value) for name in PRESETS)
    assert {"original", "flip", "none"} <= set(PRESETS)


def test_layers_round_trip_through_their_config():
    block = build_augmentation("original", 48, seed=11)
    again = keras.saving.deserialize_keras_object(json.loads(json.dumps(keras.saving.serialize_keras_object(block))))
    assert [type(l) for l in again.layers] == [RandomAffine, Cutout]
    assert [l.get_config() for l in again.layers] == [l.get_config() for l in block.layers]
    assert again.layers[1].length == 12  # input_size // 4
    x = _noise(4, 48)
    np.testing.assert_array_equal(np.asarray(again(x, training=True)), np.asarray(block(x, training=True)))


# ----------------------------------------------------------------- JAX
JAX_SCRIPT = r"""
import sys
import jax, numpy as np
from keras import ops
from models.augmentation import build_augmentation, resample
x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
def run(seed):
    block = build_augmentation("original", 32, seed=seed)
    trainable = [v.value for v in block.trainable_variables]
    state = [v.value for v in block.non_trainable_variables]
    step = jax.jit(lambda state, x: block.stateless_call(trainable, state, x, training=True))
    outs = []
    for _ in range(2):
        y, state = step(state, x)
        outs.append(np.asarray(y))
    return outs
a, b, c = run(3), run(3), run(4)
print("shape", a[0].shape, "dtype", a[0].dtype,
      "changed", np.mean([(a[0][i] != x[i]).any() for i in range(8)]),
      "same_seed_same", all(np.array_equal(p, q) for p, q in zip(a, b)),
      "steps_differ", not np.array_equal(a[0], a[1]), "seeds_differ", not np.array_equal(a[0], c[0]))
np.save(sys.argv[1], np.asarray(resample(np.load(sys.argv[2]), np.load(sys.argv[3]))))
"""


def test_same_block_runs_jitted_on_jax(tmp_path):
    x = np.random.default_rng(2).uniform(0, 255, (8, 32, 40, 3)).astype("float32")
    t = np.asarray(_matrices(8, np.random.default_rng(3)))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "y.npy"), str(tmp_path / "x.npy"),
                           str(tmp_path / "t.npy")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert "shape (8, 32, 32, 3) dtype uint8" in line
    assert "same_seed_same True steps_differ True seeds_differ True" in line
    changed = float(line.split("changed ")[1].split()[0])
    assert 0 < changed < 1
    # the sampler itself: the same numbers as on this backend
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), np.asarray(resample(x, t)), atol=1e-3)


# ----------------------------------------------------------------- fit
def test_fit_trains_the_classifier_through_the_block():
    keras.utils.set_random_seed(1)
    clf = build_classifier(3, 32, weights=None)
    model = training_model(clf, build_augmentation("original", 32, seed=1))
    set_trainable_from(clf, 5)  # flags on the classifier's layers: the wrapper follows them
    assert [id(v) for v in model.trainable_weights] == [id(v) for v in clf.trainable_weights]
    seeds = {v.path: v for v in model.variables if v.path.endswith("seed_generator_state")}
    assert {"random_affine/seed_generator/seed_generator_state", "cutout/seed_generator/seed_generator_state"} <= set(seeds)
    frozen, trained = clf.get_layer("conv1_conv").kernel, clf.get_layer("head_logits").kernel
    before = np.asarray(frozen).copy(), np.asarray(trained).copy()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    x = _noise(8)
    y = keras.utils.to_categorical(np.arange(8) % 3, 3)
    history = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    np.testing.assert_array_equal(np.asarray(frozen), before[0])
    assert not np.array_equal(np.asarray(trained), before[1])
    assert np.asarray(seeds["random_affine/seed_generator/seed_generator_state"]).tolist() == [1, 2]  # 2 batches
    clf.trainable = False
    assert model.trainable_weights == []
