"""GarbageClassifySequence: batches of (uint8 RGB crops, one-hot labels) for Model.fit.

A Keras 3 PyDataset (the successor of keras.utils.Sequence), so the same loader feeds TensorFlow
and JAX; `workers` threads load in parallel. The host does the least it can: each photo is decoded
once into an R x R uint8 square (R = resize_size(input_size), 256 for 224; tools/training/cache.py
keeps the squares, in RAM or on disk), and a batch is only crops of those squares: a random
`input_size` crop in training, the centre crop in validation (the same pixels as the centre crop of
the whole resized photo). Preprocessing is the model's first layers and the rest of augmentation
runs on the accelerator as Keras layers, so batches travel as bytes. Every random choice comes
from numpy Generators seeded by (seed, epoch, batch): the same seed gives the same batches whatever
the number of workers, with or without a cache.

Every batch has the same shape, so a compiled step (XLA: JAX, TensorFlow on a GPU) is compiled once,
not again for a smaller last batch: in training the last batch is filled up with the first images of
the epoch's order (each image is seen at least once an epoch); in validation it is padded with copies
of its last image whose sample weight is 0, and the real images weigh N_padded / N each, so the loss
and every metric Keras averages over the padded epoch equal their mean over the real images exactly.
"""

import logging
import math
import threading

import keras
import numpy as np

from tools.images import ImageDecodeError, center_crop
from tools.training import cache as decoded

log = logging.getLogger(__name__)


def smooth_labels(labels, num_classes, smoothing):
    """One-hot rows with `smoothing` spread evenly over all classes."""
    y = np.zeros((len(labels), num_classes), dtype=np.float32)
    y[np.arange(len(labels)), labels] = 1.0
    if smoothing:
        y = y * (1.0 - smoothing) + smoothing / num_classes
    return y


def random_crop(arr, size, rng):
    """A `size`x`size` window of HxWx3 `arr` at a position drawn from `rng`."""
    h, w = arr.shape[:2]
    top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    return arr[top:top + size, left:left + size]


class GarbageClassifySequence(keras.utils.PyDataset):
    """Loads `paths` with `labels` (ints < num_classes) in batches.

    Args:
        paths, labels: the images and their label ids.
        num_classes: width of the one-hot targets.
        batch_size: images per batch (every batch, the last one filled up or padded).
        input_size: side of the square crop fed to the model; images are first resized so the
            shorter side is input_size * 256 / 224 and cropped to that square.
        training: random crops, label smoothing and shuffling; else centre crops, in order.
        label_smoothing: as in the original, 0.005 by default in train.py.
        seed: makes shuffling and the crops reproducible.
        cache: a tools.training.cache.DecodedCache over the same `paths` and `input_size`
            (open_cache), or None to decode every image on every use.
        steps: batches per epoch (default: enough for every image once); several workers of one run
            each load a share of the images and must all take the same number of steps.
        weight: the sample weight of a real validation image (default: steps x batch_size / images,
            so that averages over the padded epoch are the real images' means; workers sharing one
            validation set pass the one for the whole set).
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size` for keras.utils.PyDataset.

    Batches are (x, y) in training, (x, y, sample_weight) in validation: x uint8 (batch_size,
    input_size, input_size, 3) RGB, y float32 (batch_size, num_classes)
    one-hot, label-smoothed in training; every batch batch_size long (see the module's docstring).
    `count` images are real; `model.predict(seq)[:seq.count]` are their predictions, in `order`.
    """

    def __init__(self, paths, labels, num_classes, batch_size=32, input_size=224, training=False,
                 label_smoothing=0.0, seed=233, cache=None, steps=None, weight=None, **kwargs):
        super().__init__(**kwargs)
        if len(paths) != len(labels):
            raise ValueError("`paths` and `labels` must have the same length. "
                             f"Received: len(paths)={len(paths)}, len(labels)={len(labels)}")
        if len(paths) == 0:
            raise ValueError(f"`paths` must name at least one image. Received: paths={list(paths)!r}")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size!r}")
        if cache is not None and (len(cache) != len(paths) or cache.input_size != int(input_size)):
            raise ValueError("`cache` must hold the same images at the same input_size. Received: cache of "
                             f"{len(cache)} images at {cache.input_size}px for {len(paths)} paths at {input_size}px")
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_classes = int(num_classes)
        self.batch_size = int(batch_size)
        self.input_size = int(input_size)
        self.training = bool(training)
        self.label_smoothing = float(label_smoothing) if training else 0.0
        self.seed = int(seed)
        self.cache = cache
        self.steps = int(steps) if steps else math.ceil(len(self.paths) / self.batch_size)
        if self.steps * self.batch_size < len(self.paths) and not self.training:
            raise ValueError(f"`steps` x `batch_size` must hold every image in validation. Received: steps={steps!r} "
                             f"for {len(self.paths)} images in batches of {batch_size}")
        self.weight = float(weight) if weight else self.steps * self.batch_size / len(self.paths)
        self.epoch = 0
        self._bad = set()
        self._lock = threading.Lock()
        self.order = self._order_for(0)
        if cache is not None and self.use_multiprocessing:
            log.warning("the decoded-image cache is shared by worker threads: with use_multiprocessing each "
                        "worker process fills a copy of its own")

    def _order_for(self, epoch):
        n = len(self.paths)
        return np.random.default_rng([self.seed, epoch]).permutation(n) if self.training else np.arange(n)

    def __len__(self):
        return self.steps

    @property
    def count(self):
        """The real images of an epoch (validation pads the last batch beyond them)."""
        return len(self.paths)

    def batch_spec(self):
        """[(shape, numpy dtype)] of the parts of every batch: x, y, and in validation the sample weights."""
        n = self.batch_size
        spec = [((n, self.input_size, self.input_size, 3), np.uint8), ((n, self.num_classes), np.float32)]
        return spec if self.training else spec + [((n,), np.float32)]

    def _indices(self, idx):
        """Positions in `order` of batch `idx`: batch_size of them, wrapping round to the epoch's first in
        training; in validation the real ones, then the last repeated as padding."""
        start, stop = idx * self.batch_size, (idx + 1) * self.batch_size
        if self.training:
            return np.take(self.order, np.arange(start, stop), mode="wrap")
        real = self.order[start:stop]
        pad = real[-1] if len(real) else self.order[-1]
        return np.concatenate([real, np.full(self.batch_size - len(real), pad, dtype=self.order.dtype)])

    def on_epoch_end(self):
        if self.cache is not None:
            self.cache.flush()
        if self.training:
            self.epoch += 1
            self.order = self._order_for(self.epoch)

    def set_epoch(self, epoch):
        """Jump to the shuffle order of `epoch` (used when training resumes mid-run)."""
        self.epoch = int(epoch)
        self.order = self._order_for(self.epoch)

    def _square(self, i):
        if self.cache is not None:
            return self.cache.get(i)
        return decoded.decode_square(self.paths[i], self.input_size)

    def _load(self, index):
        """The uint8 R x R square of image `index` and its label; an unreadable image is replaced by
        the next readable one."""
        for step in range(len(self.paths)):
            i = (index + step) % len(self.paths)
            if i in self._bad:
                continue
            try:
                return self._square(i), self.labels[i]
            except (OSError, ImageDecodeError) as e:
                with self._lock:
                    first = i not in self._bad
                    self._bad.add(i)
                if first:
                    log.warning("unreadable image %s (%s): replaced by another image from now on", self.paths[i], e)
        raise RuntimeError("no readable image left in the data set")

    def __getitem__(self, idx):
        if not 0 <= idx < len(self):
            raise IndexError(f"`idx` must be a batch index in 0..{len(self) - 1}. Received: idx={idx!r}")
        rng = np.random.default_rng([self.seed, self.epoch, idx, int(self.training)])
        indices = self._indices(idx)
        images = np.empty((len(indices), self.input_size, self.input_size, 3), dtype=np.uint8)
        labels = np.empty(len(indices), dtype=np.int64)
        for k, i in enumerate(indices):
            square, labels[k] = self._load(int(i))
            images[k] = (random_crop(square, self.input_size, rng) if self.training
                         else center_crop(square, self.input_size))
        y = smooth_labels(labels, self.num_classes, self.label_smoothing)
        if self.training:
            return images, y
        real = max(0, min(self.batch_size, self.count - idx * self.batch_size))
        weights = np.zeros(self.batch_size, dtype=np.float32)
        weights[:real] = self.weight
        return images, y, weights
