"""A data folder made ready for fit: scanned, split, and wrapped in the training loaders with their decode
caches (data_flow, what tools/training/run.py and bench/host_path.py train on).

It lives beside the loader (tools/training/loader.py, a keras.utils.PyDataset) and the cache it feeds, so
that tools/data reads folders without Keras and without importing training code. Importing this loads Keras.
"""

import math
import typing

import numpy as np

from tools.data import DataError
from tools.data.layout import Dataset
from tools.data.merge import load_datasets
from tools.data.split import stratified_split
from tools.data.tables import format_counts
from tools.training.cache import CACHE_MODES, open_cache
from tools.training.loader import GarbageClassifySequence


class Flow(typing.NamedTuple):
    """data_flow's loaders: `train` and `val` (None when val_split is 0) for fit, `dataset` (everything
    scanned), `report` (the whole validation set, for the report: `val` itself unless sharded)."""
    train: object
    val: object
    dataset: Dataset
    report: object


def data_flow(data_dir, rule_file=None, num_classes=None, batch_size=32, input_size=224, val_split=0.1,
              seed=233, label_smoothing=0.005, workers=1, use_multiprocessing=False, max_queue_size=10,
              print_fn=print, cache="auto", cache_dir=None, shard=(0, 1)):
    """The original's entry point: scan, split (stratified, seeded) and wrap in two Sequences.

    `data_dir` is one folder or a list of folders sharing one class list (load_datasets).
    `cache` ("auto", "ram", "disk" or "none") and `cache_dir` (where a disk cache lives; train.py:
    <output_dir>/cache) choose where the decoded images are kept (tools/training/cache.py): the
    training and the validation sequence each get a cache of their own, named "train" and "val".
    `shard` = (i, n): worker i of n in a multi-machine run loads only its share of the split, every
    n-th image from the i-th, in as many batches of `batch_size` (its own) as every other worker.
    Returns a Flow. Raises DataError for a data set of fewer than 2 classes: nothing to tell apart.
    """
    if cache not in CACHE_MODES:
        raise ValueError(f"`cache` must be one of {', '.join(CACHE_MODES)}. Received: cache={cache!r}")
    ds = load_datasets(data_dir, rule_file, num_classes)
    if len(ds.class_names) < 2:
        raise DataError(f"{len(ds.class_names)} class found in {', '.join(d for d, _ in ds.sources)} "
                        f"({', '.join(ds.class_names)}): training needs at least 2 classes (one sub-folder per "
                        "class, or a rule file listing them)")
    train_idx, val_idx = stratified_split(ds.labels, val_split, seed)
    counts = [("train", np.bincount(ds.labels[train_idx], minlength=len(ds.class_names))),
              ("val", np.bincount(ds.labels[val_idx], minlength=len(ds.class_names)))]
    print_fn(f"{len(ds.paths)} images in {len(ds.class_names)} classes ({ds.layout} layout), "
             f"{len(ds.skipped)} skipped"
             + ("".join(f"\n  {n} from {d}" for d, n in ds.sources) if len(ds.sources) > 1 else "")
             + "\n" + format_counts(ds.class_names, *counts))
    loader = dict(num_classes=len(ds.class_names), batch_size=batch_size, input_size=input_size, seed=seed,
                  workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
    index, count = shard

    def share(idx, what):
        """This worker's part of `idx` and the batches every worker takes for all of `idx`."""
        if len(idx) < count:
            raise DataError(f"{len(idx)} {what} photos cannot be shared by {count} workers: each needs at least one "
                            "(more photos, a larger --val_split, or fewer workers)")
        return idx[index::count], math.ceil(math.ceil(len(idx) / count) / batch_size)

    def cache_of(paths, name):
        try:
            return open_cache(paths, input_size, mode=cache, folder=cache_dir, name=name, log=print_fn)
        except OSError as e:  # a read-only or full disk, a file in the way: say so in one line
            raise DataError(f"cannot keep the decode cache in {cache_dir} ({e.strerror or e}); "
                            "pass --cache ram or --cache none") from None

    mine, steps = share(train_idx, "training")
    if count > 1:
        print_fn(f"worker {index} of {count}: {len(mine)} of {len(train_idx)} training photos and "
                 f"{len(val_idx[index::count])} of {len(val_idx)} validation photos are this worker's share")
    train = ds.subset(mine)
    train_seq = GarbageClassifySequence(train.paths, train.labels, training=True, label_smoothing=label_smoothing,
                                        cache=cache_of(train.paths, "train"), steps=steps, **loader)
    val_seq = report = None
    if len(val_idx):
        mine, steps = share(val_idx, "validation")
        val = ds.subset(mine)
        val_seq = GarbageClassifySequence(val.paths, val.labels, training=False, cache=cache_of(val.paths, "val"),
                                          steps=steps, weight=count * steps * batch_size / len(val_idx), **loader)
        report = val_seq
        if count > 1:  # the chief's report scores the whole validation set, alone
            whole = ds.subset(val_idx)
            report = GarbageClassifySequence(whole.paths, whole.labels, training=False, **loader)
    return Flow(train_seq, val_seq, ds, report)
