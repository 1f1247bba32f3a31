"""Cutout (DeVries & Taylor, 2017): blank square holes in images, vectorised over a batch."""

import numpy as np


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
            raise ValueError(f"Cutout expects a batch (n, H, W, C). Received shape {images.shape}")
        images[self.masks(images.shape[0], images.shape[1], images.shape[2], rng)] = self.fill
        return images
