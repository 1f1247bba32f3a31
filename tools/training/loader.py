"""GarbageClassifySequence: batches of (preprocessed images, one-hot labels) for Model.fit.

A Keras 3 PyDataset (the successor of keras.utils.Sequence), so the same loader feeds TensorFlow
and JAX; `workers` threads decode in parallel. Training batches go through the augmentation of
tools/training/augment.py (random crops, affine, cutout); validation batches are centre crops,
unshuffled. Every random choice comes from numpy Generators seeded by (seed, epoch, batch): the same
seed gives the same batches whatever the number of workers.
"""

import logging
import math
import threading

import keras
import numpy as np

from models.preprocess import preprocess_input
from tools.images import ImageDecodeError, center_crop, load_resized
from tools.training.augment import Augmentation

log = logging.getLogger(__name__)


def smooth_labels(labels, num_classes, smoothing):
    """One-hot rows with `smoothing` spread evenly over all classes."""
    y = np.zeros((len(labels), num_classes), dtype=np.float32)
    y[np.arange(len(labels)), labels] = 1.0
    if smoothing:
        y = y * (1.0 - smoothing) + smoothing / num_classes
    return y


class GarbageClassifySequence(keras.utils.PyDataset):
    """Loads `paths` with `labels` (ints < num_classes) in batches.

    Args:
        paths, labels: the images and their label ids.
        num_classes: width of the one-hot targets.
        batch_size: images per batch (the last batch may be smaller).
        input_size: side of the square crop fed to the model; images are first resized so the
            shorter side is input_size * 256 / 224.
        training: random crops, augmentation, label smoothing and shuffling; else centre crops.
        label_smoothing: as in the original, 0.005 by default in train.py.
        seed: makes shuffling and augmentation reproducible.
        augmentation: what training batches go through (default: augment.Augmentation(input_size)).
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size` for keras.utils.PyDataset.
    """

    def __init__(self, paths, labels, num_classes, batch_size=32, input_size=224, training=False,
                 label_smoothing=0.0, seed=233, augmentation=None, **kwargs):
        super().__init__(**kwargs)
        if len(paths) != len(labels):
            raise ValueError("`paths` and `labels` must have the same length. "
                             f"Received: len(paths)={len(paths)}, len(labels)={len(labels)}")
        if len(paths) == 0:
            raise ValueError(f"`paths` must name at least one image. Received: paths={list(paths)!r}")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size!r}")
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_classes = int(num_classes)
        self.batch_size = int(batch_size)
        self.input_size = int(input_size)
        self.training = bool(training)
        self.label_smoothing = float(label_smoothing) if training else 0.0
        self.seed = int(seed)
        self.augmentation = augmentation or Augmentation(self.input_size)
        self.epoch = 0
        self._bad = set()
        self._lock = threading.Lock()
        self.order = self._order_for(0)

    def _order_for(self, epoch):
        n = len(self.paths)
        return np.random.default_rng([self.seed, epoch]).permutation(n) if self.training else np.arange(n)

    def __len__(self):
        return math.ceil(len(self.paths) / self.batch_size)

    def on_epoch_end(self):
        if self.training:
            self.epoch += 1
            self.order = self._order_for(self.epoch)

    def set_epoch(self, epoch):
        """Jump to the shuffle order of `epoch` (used when training resumes mid-run)."""
        self.epoch = int(epoch)
        self.order = self._order_for(self.epoch)

    def _load(self, index, rng):
        """Decoded, resized, cropped uint8 image; an unreadable one is replaced by the next readable one."""
        for step in range(len(self.paths)):
            i = (index + step) % len(self.paths)
            path = self.paths[i]
            if path in self._bad:
                continue
            try:
                img = load_resized(path, self.input_size)
            except (OSError, ImageDecodeError) as e:
                with self._lock:
                    first = path not in self._bad
                    self._bad.add(path)
                if first:
                    log.warning("unreadable image %s (%s): replaced by another image from now on", path, e)
                continue
            crop = self.augmentation.crop(img, rng) if self.training else center_crop(img, self.input_size)
            return crop, self.labels[i]
        raise RuntimeError("no readable image left in the data set")

    def __getitem__(self, idx):
        if not 0 <= idx < len(self):
            raise IndexError(f"`idx` must be a batch index in 0..{len(self) - 1}. Received: idx={idx!r}")
        rng = np.random.default_rng([self.seed, self.epoch, idx, int(self.training)])
        indices = self.order[idx * self.batch_size:(idx + 1) * self.batch_size]
        images = np.empty((len(indices), self.input_size, self.input_size, 3), dtype=np.uint8)
        labels = np.empty(len(indices), dtype=np.int64)
        for k, i in enumerate(indices):
            images[k], labels[k] = self._load(int(i), rng)
        x = self.augmentation.batch(images, rng) if self.training else preprocess_input(images)
        return x, smooth_labels(labels, self.num_classes, self.label_smoothing)
