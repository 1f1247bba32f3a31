"""Training augmentation as Keras layers: uint8 pixels in, uint8 pixels out, inside the train step.

Why layers: the host only decodes and crops; the random affine and cutout the 2022 project applied
on the host (numpy/OpenCV, once per image) now run on the accelerator as part of the jitted train
step, batched. Randomness comes only from `keras.random` with each layer's `SeedGenerator`, so a
seed fixes the result and the generator states are ordinary model variables (path suffix
"seed_generator_state") that tools/training/resume.py saves and restores: a resumed run repeats an
uninterrupted one. Only `keras.ops` inside `call`, so the same code runs (and jits) on TensorFlow
and JAX.

The block is NOT part of the saved model: `training_model` wraps the classifier (what best.h5
holds) as `classifier(augmentation(pixels))`; `fit` trains the wrapper, the classifier is saved.
At inference (`training` falsy) every layer here returns its input unchanged.

Why not `keras.ops.image.affine_transform`: on TensorFlow it is the op ImageProjectiveTransformV3,
which XLA cannot compile ("No registered 'ImageProjectiveTransformV3' OpKernel for XLA_*_JIT"),
and train steps are jit-compiled whenever a GPU is there (tools/distributed/devices.py `use_jit`).
`resample` does the same bilinear sampling (same transform convention, "nearest" fill) with
gathers that XLA compiles on both backends; tests check it against affine_transform.
"""

import math
import numbers

import keras
from keras import ops

from models.presets import PRESETS  # noqa: F401  (name -> description; re-exported here)

#: The ImageNet mean colour in RGB (the caffe means, rounded): zero after the classifier's preprocessing.
MEAN_RGB = (124, 117, 104)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_number(name, value, low=0.0, high=None, high_open=False):
    ok = _is_number(value) and value >= low and (
        high is None or (value < high if high_open else value <= high))
    if not ok:
        rng = f">= {low}" if high is None else f"in [{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"`{name}` must be a number {rng}. Received: {name}={value!r}")
    return float(value)


def _check_seed(seed):
    if seed is not None and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)):
        raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")
    return None if seed is None else int(seed)


def _to_input_dtype(x, dtype):
    """float32 `x` back to the input's dtype: uint8 rounded and clipped to 0..255, other integers rounded."""
    if dtype == "uint8":
        return ops.cast(ops.clip(ops.round(x), 0, 255), dtype)
    if "int" in dtype:
        return ops.cast(ops.round(x), dtype)
    return ops.cast(x, dtype)


def affine_matrices(theta, tx, ty, shear, zx, zy, fx, fy, height, width):
    """Per-image transforms in `keras.ops.image.affine_transform`'s convention, as an (n, 8) float32 tensor.

    Each row [a0, a1, a2, b0, b1, b2, 0, 0] maps an OUTPUT pixel (x, y) to the INPUT point
    (a0 x + a1 y + a2, b0 x + b1 y + b2), pixel centres at integer coordinates. The matrix is Keras 2
    ImageDataGenerator's `rotation @ shift @ shear @ zoom` about the image centre ((w-1)/2, (h-1)/2),
    then the flips (ImageDataGenerator flipped after the transform): output -> input,
        p_in = c + R(theta) (t + Sh(shear) Z(zx, zy) F(fx, fy) (p_out - c)),
    with R the rotation, Sh = [[1, -sin(shear)], [0, cos(shear)]], Z = diag(zx, zy), F = diag(fx, fy)
    (fx, fy = -1 flip, 1 not). `theta` and `shear` in radians, `tx`, `ty` in pixels; all (n,) tensors.
    """
    cos, sin = ops.cos(theta), ops.sin(theta)
    sx, sy = zx * fx, zy * fy
    a00, a01 = cos * sx, -ops.sin(theta + shear) * sy
    a10, a11 = sin * sx, ops.cos(theta + shear) * sy
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    a2 = cx - a00 * cx - a01 * cy + (cos * tx - sin * ty)
    b2 = cy - a10 * cx - a11 * cy + (sin * tx + cos * ty)
    zero = ops.zeros_like(a00)
    return ops.cast(ops.stack([a00, a01, a2, a10, a11, b2, zero, zero], axis=1), "float32")


def resample(images, transforms):
    """Bilinear resampling of (n, h, w, c) `images` by (n, 8) `transforms`, edges repeated ("nearest" fill).

    What `keras.ops.image.affine_transform(images, transforms, "bilinear", "nearest")` computes, with
    gathers instead of ImageProjectiveTransformV3 so XLA compiles it. float32 out. A transform that
    lands on integer coordinates (identity, flips) reproduces the pixels exactly.
    """
    images = ops.cast(images, "float32")
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    t = ops.cast(transforms, "float32")
    coef = [ops.reshape(t[:, i], (-1, 1, 1)) for i in range(6)]
    xs = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width))
    ys = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1))
    x = ops.clip(coef[0] * xs + coef[1] * ys + coef[2], 0.0, width - 1.0)  # (n, h, w); clip = "nearest" fill
    y = ops.clip(coef[3] * xs + coef[4] * ys + coef[5], 0.0, height - 1.0)
    x0, y0 = ops.floor(x), ops.floor(y)
    wx, wy = ops.expand_dims(x - x0, -1), ops.expand_dims(y - y0, -1)
    x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
    x1, y1 = ops.minimum(x0 + 1, width - 1), ops.minimum(y0 + 1, height - 1)
    n = ops.shape(images)[0]
    base = ops.reshape(ops.arange(n, dtype="int32") * (height * width), (-1, 1, 1))
    flat = ops.reshape(images, (-1, channels))

    def pixels(yi, xi):
        index = ops.reshape(base + yi * width + xi, (-1,))
        return ops.reshape(ops.take(flat, index, axis=0), (-1, height, width, channels))

    top = (1.0 - wx) * pixels(y0, x0) + wx * pixels(y0, x1)
    bottom = (1.0 - wx) * pixels(y1, x0) + wx * pixels(y1, x1)
    return (1.0 - wy) * top + wy * bottom


class _Augment(keras.layers.Layer):
    """Shared plumbing: no autocast (the output has the input's dtype), shape unchanged, a seed generator."""

    def __init__(self, seed=None, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.seed = _check_seed(seed)
        # Under the layer's name: state path "<layer>/seed_generator/seed_generator_state", the same in every
        # process whatever else was built before (tools/training/resume.py restores the states by path).
        with keras.name_scope(self.name):
            self.seed_generator = keras.random.SeedGenerator(self.seed, name="seed_generator")
        self.supports_masking = False

    def compute_output_shape(self, input_shape):
        return input_shape

    def _check_images(self, images):
        if len(images.shape) != 4 or any(d is None for d in images.shape[1:]):
            raise ValueError(f"{type(self).__name__} expects a batch (n, height, width, channels) of known "
                             f"height, width and channels. Received: images.shape={tuple(images.shape)}")


@keras.saving.register_keras_serializable(package="garbage")
class RandomAffine(_Augment):
    """Random rotation, shift, shear, zoom and flips as ONE bilinear resampling per image, "nearest" fill.

    What Keras 2's ImageDataGenerator(rotation_range, width/height_shift_range, shear_range,
    zoom_range, horizontal_flip, vertical_flip, fill_mode="nearest") did, for a batch at once: per
    image, rotation uniform in ±`rotation` degrees, shift uniform in ±`shift` x width (x) and
    x height (y), shear uniform in ±`shear` DEGREES (ImageDataGenerator's `shear_range` was an
    angle in degrees, so the original's 0.2 is 0.2°, barely visible), zoom uniform in 1±`zoom` per
    axis, each flip with probability 0.5, all composed into one matrix (`affine_matrices`): one
    interpolation, not a chain of resamplings. Each image is transformed with probability `rate`;
    the others pass through unchanged. With rotation = shift = shear = zoom = 0 only flips are left
    and they are done exactly (array flips, no resampling).

    uint8 or float images (n, h, w, c) in, the same dtype out (uint8 rounded, clipped to 0..255).
    Unchanged when `training` is falsy.
    """

    def __init__(self, rotation=30.0, shift=0.2, shear=0.2, zoom=0.2, horizontal_flip=True, vertical_flip=True,
                 rate=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rotation = _check_number("rotation", rotation)
        self.shift = _check_number("shift", shift)
        self.shear = _check_number("shear", shear)
        self.zoom = _check_number("zoom", zoom, 0.0, 1.0, high_open=True)
        for name, value in (("horizontal_flip", horizontal_flip), ("vertical_flip", vertical_flip)):
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
        self.horizontal_flip, self.vertical_flip = horizontal_flip, vertical_flip
        self.rate = _check_number("rate", rate, 0.0, 1.0)

    def call(self, images, training=None):
        if not training:
            return images
        self._check_images(images)
        dtype = keras.backend.standardize_dtype(images.dtype)
        height, width = images.shape[1], images.shape[2]
        u = keras.random.uniform((ops.shape(images)[0], 9), seed=self.seed_generator)  # one draw per batch
        apply = u[:, 8] < self.rate
        no_flip = ops.zeros_like(apply)
        fx = ops.where(ops.logical_and(apply, u[:, 6] < 0.5) if self.horizontal_flip else no_flip, -1.0, 1.0)
        fy = ops.where(ops.logical_and(apply, u[:, 7] < 0.5) if self.vertical_flip else no_flip, -1.0, 1.0)
        if not (self.rotation or self.shift or self.shear or self.zoom):  # flips only: exact, no resampling
            out = ops.where(ops.reshape(fx < 0, (-1, 1, 1, 1)), ops.flip(images, axis=2), images)
            return ops.where(ops.reshape(fy < 0, (-1, 1, 1, 1)), ops.flip(out, axis=1), out)

        def spread(col, half):  # uniform in [-half, half), identity (0) where not applied
            return ops.where(apply, (2.0 * u[:, col] - 1.0) * half, 0.0)

        theta = spread(0, math.radians(self.rotation))
        tx, ty = spread(1, self.shift * width), spread(2, self.shift * height)
        shear = spread(3, math.radians(self.shear))
        zx, zy = 1.0 + spread(4, self.zoom), 1.0 + spread(5, self.zoom)
        transforms = affine_matrices(theta, tx, ty, shear, zx, zy, fx, fy, height, width)
        out = _to_input_dtype(resample(images, transforms), dtype)
        return ops.where(ops.reshape(apply, (-1, 1, 1, 1)), out, images)  # untouched images stay bit-identical

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "shift": self.shift, "shear": self.shear,
                "zoom": self.zoom, "horizontal_flip": self.horizontal_flip, "vertical_flip": self.vertical_flip,
                "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="garbage")
class Cutout(_Augment):
    """One `length` x `length` hole filled with `fill`, at a uniformly random centre (DeVries & Taylor 2017).

    The centre is any pixel, so a hole may cross the border and be clipped, as in the paper and the
    2022 project's host code (rows cy - length//2 .. cy - length//2 + length - 1, same for columns).
    `fill`: one number or one per channel; default the ImageNet mean colour in RGB, which the
    classifier's caffe preprocessing turns into zeros, "no information". Each image gets a hole with
    probability `rate`. uint8 or float images in, the same dtype out; unchanged when `training` is falsy.
    """

    def __init__(self, length, fill=MEAN_RGB, rate=0.25, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(length, numbers.Integral) or isinstance(length, bool) or length < 1:
            raise ValueError(f"`length` must be a positive integer. Received: length={length!r}")
        self.length = int(length)
        values = fill if isinstance(fill, (list, tuple)) else [fill]
        if not values or not all(_is_number(v) for v in values):
            raise ValueError(f"`fill` must be a number or a list of numbers (one per channel). Received: fill={fill!r}")
        self.fill = tuple(float(v) for v in values) if isinstance(fill, (list, tuple)) else float(fill)
        self.rate = _check_number("rate", rate, 0.0, 1.0)

    def _fill_values(self, channels, dtype):
        values = list(self.fill) if isinstance(self.fill, tuple) else [self.fill] * channels
        if len(values) != channels:
            raise ValueError(f"`fill` has {len(values)} values for images of {channels} channels. "
                             f"Received: fill={self.fill!r}")
        if dtype == "uint8":
            values = [min(255.0, max(0.0, float(round(v)))) for v in values]
        return ops.cast(ops.convert_to_tensor(values, dtype="float32"), dtype)

    def call(self, images, training=None):
        if not training:
            return images
        self._check_images(images)
        dtype = keras.backend.standardize_dtype(images.dtype)
        height, width, channels = images.shape[1], images.shape[2], images.shape[3]
        u = keras.random.uniform((ops.shape(images)[0], 3), seed=self.seed_generator)
        cy = ops.minimum(ops.cast(ops.floor(u[:, 0] * height), "int32"), height - 1)
        cx = ops.minimum(ops.cast(ops.floor(u[:, 1] * width), "int32"), width - 1)
        top = ops.reshape(cy - self.length // 2, (-1, 1))
        left = ops.reshape(cx - self.length // 2, (-1, 1))
        rows, cols = ops.arange(height, dtype="int32")[None, :], ops.arange(width, dtype="int32")[None, :]
        in_rows = ops.logical_and(rows >= top, rows < top + self.length)  # (n, h)
        in_cols = ops.logical_and(cols >= left, cols < left + self.length)  # (n, w)
        hole = ops.logical_and(ops.expand_dims(in_rows, 2), ops.expand_dims(in_cols, 1))  # (n, h, w)
        hole = ops.logical_and(hole, ops.reshape(u[:, 2] < self.rate, (-1, 1, 1)))
        return ops.where(ops.expand_dims(hole, -1), self._fill_values(channels, dtype), images)

    def get_config(self):
        fill = list(self.fill) if isinstance(self.fill, tuple) else self.fill
        return {**super().get_config(), "length": self.length, "fill": fill, "rate": self.rate, "seed": self.seed}


def build_augmentation(preset, input_size, seed=None):
    """The augmentation block of `preset` (a name in PRESETS) for `input_size` px: a
    `keras.Sequential(name="augment")` mapping uint8 pixels (n, s, s, 3) to uint8 pixels, or None for "none".

    "original": RandomAffine() (rotation ±30°, shift ±0.2, shear ±0.2°, zoom ±0.2, both flips) on
    half the images, then a Cutout of side input_size // 4 on a quarter. "flip": horizontal flips.
    `seed` (an int) fixes every random choice; its layers use seed and seed + 1.
    """
    if preset not in PRESETS:
        raise ValueError(f"`preset` must be one of {sorted(PRESETS)}. Received: preset={preset!r}")
    if not isinstance(input_size, numbers.Integral) or isinstance(input_size, bool) or input_size < 1:
        raise ValueError(f"`input_size` must be a positive integer. Received: input_size={input_size!r}")
    seed = _check_seed(seed)
    nth = (lambda k: None) if seed is None else (lambda k: seed + k)
    if preset == "none":
        return None
    if preset == "original":
        layers = [RandomAffine(rate=0.5, seed=nth(0), name="random_affine"),
                  Cutout(max(1, input_size // 4), rate=0.25, seed=nth(1), name="cutout")]
    else:  # "flip"
        layers = [RandomAffine(rotation=0, shift=0, shear=0, zoom=0, horizontal_flip=True, vertical_flip=False,
                               rate=1.0, seed=nth(0), name="random_flip")]
    pixels = keras.Input((input_size, input_size, 3), dtype="uint8", name="pixels")
    return keras.Sequential([pixels, *layers], name="augment")


def training_model(classifier, augmentation):
    """What `fit` trains: `classifier` itself when `augmentation` is None, else classifier(augmentation(pixels)).

    The wrapper shares every weight with `classifier` (trainable flags set on the classifier's layers
    apply) and adds the augmentation layers' seed-generator states to its variables. Save `classifier`,
    not the wrapper: the augmentation is a training-time thing and holds custom layers.
    """
    if augmentation is None:
        return classifier
    pixels = keras.Input(classifier.input_shape[1:], dtype="uint8", name="pixels")
    return keras.Model(pixels, classifier(augmentation(pixels)), name="train_" + classifier.name)
