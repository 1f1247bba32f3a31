"""The train/validation split: seeded and stratified, so that every class is in both parts."""

import numpy as np


def stratified_split(labels, val_split, seed):
    """Seeded per-class split: indices (train, val); each class with >= 2 images gives >= 1 to val."""
    if not 0 <= val_split < 1:
        raise ValueError(f"`val_split` must be in [0, 1). Received: val_split={val_split!r}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(len(idx) * val_split))
        if val_split > 0 and len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(val, dtype=np.int64))
