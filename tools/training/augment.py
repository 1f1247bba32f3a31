"""Training-time augmentation, all of it: random crop, random affine (OpenCV) and cutout.

The loader (tools/training/loader.py) only calls `Augmentation.crop` per image and
`Augmentation.batch` per batch: what a training batch goes through is decided here alone.

The affine part is what the original got from Keras 2's ImageDataGenerator. Keras 3 dropped
ImageDataGenerator; this reproduces its settings (rotation, shift, shear, zoom, flips, 'nearest'
fill) with one `cv2.warpAffine` per image. Every random choice is drawn from the numpy Generator
passed in, so a seed fixes the result.
"""

import math

import cv2
import numpy as np

from models.preprocess import preprocess_input


class RandomAffine:
    """Rotation ±`rotation` degrees, shift ±`shift` of the size, shear factor ±`shear`, zoom 1±`zoom`
    per axis, horizontal/vertical flips with probability 0.5 each; borders repeat the edge pixels."""

    def __init__(self, rotation=30.0, shift=0.2, shear=0.2, zoom=0.2, horizontal_flip=True, vertical_flip=True):
        for name, value in (("rotation", rotation), ("shift", shift), ("shear", shear), ("zoom", zoom)):
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"`{name}` must be a number >= 0. Received: {name}={value!r}")
        if zoom >= 1:
            raise ValueError(f"`zoom` must be below 1 (zoom range is 1±zoom). Received: zoom={zoom!r}")
        self.rotation, self.shift, self.shear, self.zoom = rotation, shift, shear, zoom
        self.horizontal_flip, self.vertical_flip = horizontal_flip, vertical_flip

    def matrix(self, height, width, rng):
        """A 2x3 affine matrix about the image centre, drawn from `rng`."""
        theta = math.radians(rng.uniform(-self.rotation, self.rotation))
        tx, ty = rng.uniform(-self.shift, self.shift) * width, rng.uniform(-self.shift, self.shift) * height
        sh = rng.uniform(-self.shear, self.shear)
        zx, zy = rng.uniform(1 - self.zoom, 1 + self.zoom, size=2)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        to_origin = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
        rotate = np.array([[math.cos(theta), -math.sin(theta), 0], [math.sin(theta), math.cos(theta), 0], [0, 0, 1]])
        shear = np.array([[1, sh, 0], [0, 1, 0], [0, 0, 1]])
        scale = np.diag([zx, zy, 1.0])
        back = np.array([[1, 0, cx + tx], [0, 1, cy + ty], [0, 0, 1]])
        return (back @ rotate @ shear @ scale @ to_origin)[:2].astype(np.float32)

    def __call__(self, image, rng):
        """Transform one HxWxC uint8 image; returns an array of the same shape and dtype."""
        height, width = image.shape[:2]
        out = cv2.warpAffine(image, self.matrix(height, width, rng), (width, height),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if self.horizontal_flip and rng.random() < 0.5:
            out = out[:, ::-1]
        if self.vertical_flip and rng.random() < 0.5:
            out = out[::-1]
        return np.ascontiguousarray(out.reshape(image.shape))


class Cutout:
    """Zero `n_holes` squares of side `length` at random centres (holes may cross the border).

    Applied after preprocessing, a zero is the ImageNet mean colour, i.e. "no information".
    """

    def __init__(self, n_holes=1, length=16, fill=0.0):
        if not isinstance(n_holes, (int, np.integer)) or n_holes < 1:
            raise ValueError(f"`n_holes` must be a positive integer. Received: n_holes={n_holes!r}")
        if not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"`length` must be a positive integer. Received: length={length!r}")
        self.n_holes = int(n_holes)
        self.length = int(length)
        self.fill = fill

    def masks(self, n, height, width, rng):
        """Boolean (n, height, width) masks, True inside a hole."""
        cy = rng.integers(0, height, size=(n, self.n_holes, 1))
        cx = rng.integers(0, width, size=(n, self.n_holes, 1))
        half = self.length // 2
        ys, xs = np.arange(height), np.arange(width)
        in_y = (ys >= cy - half) & (ys < cy - half + self.length)  # (n, holes, H)
        in_x = (xs >= cx - half) & (xs < cx - half + self.length)  # (n, holes, W)
        return (in_y[:, :, :, None] & in_x[:, :, None, :]).any(axis=1)

    def __call__(self, images, rng=None):
        """Return a copy of `images` (n, H, W, C) with the holes filled."""
        rng = np.random.default_rng() if rng is None else rng
        images = np.array(images, copy=True)
        if images.ndim != 4:
            raise ValueError(f"Cutout expects a batch (n, H, W, C). Received: images.shape={images.shape}")
        images[self.masks(images.shape[0], images.shape[1], images.shape[2], rng)] = self.fill
        return images


def random_crop(arr, size, rng):
    """A `size`x`size` window of HxWx3 `arr` at a position drawn from `rng`."""
    h, w = arr.shape[:2]
    top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    return arr[top:top + size, left:left + size]


class Augmentation:
    """What each training image and batch goes through, as the original trained.

    Each image: a random `input_size` crop of the resized photo. Each batch: the random affine on
    `affine_share` of it, then preprocessing, then cutout on another `cutout_share` of it (after
    preprocessing a zero is the ImageNet mean colour, i.e. "no information"). Cutout holes have
    side `cutout_length` (default input_size // 4).
    """

    def __init__(self, input_size, cutout_share=0.25, affine_share=0.5, cutout_holes=1, cutout_length=None):
        if not 0 <= cutout_share + affine_share <= 1:
            raise ValueError("`cutout_share + affine_share` must be in [0, 1]. "
                             f"Received: cutout_share={cutout_share!r}, affine_share={affine_share!r}")
        self.input_size = int(input_size)
        self.cutout_share, self.affine_share = float(cutout_share), float(affine_share)
        self.cutout = Cutout(cutout_holes, cutout_length or max(1, self.input_size // 4))
        self.affine = RandomAffine()

    def crop(self, image, rng):
        """The training crop of one resized HxWx3 uint8 image."""
        return random_crop(image, self.input_size, rng)

    def batch(self, images, rng):
        """Preprocessed float32 batch from the (n, size, size, 3) uint8 crops `images` (changed in place)."""
        perm = rng.permutation(len(images))
        n_cut = int(round(len(images) * self.cutout_share))
        n_aff = int(round(len(images) * self.affine_share))
        for k in perm[n_cut:n_cut + n_aff]:
            images[k] = self.affine(images[k], rng)
        x = preprocess_input(images)
        if n_cut:
            cut = perm[:n_cut]
            x[cut] = self.cutout(x[cut], rng)
        return x
