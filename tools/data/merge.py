"""Several data folders that share one class list as one Dataset: the Huawei set and a folder collected
by `server.py --collect` (which carries the rule file of the model that served) train together."""

import os

import numpy as np

from tools.data import DataError
from tools.data.layout import Dataset, detect_layout, load_dataset
from tools.data.rules import find_rule_file


def _class_source(data_dir, rule_file):
    """Where the class list of `data_dir` comes from: its rule file's path, or its class folders."""
    if detect_layout(data_dir) == "txt":
        return rule_file or find_rule_file(data_dir)
    return None


def load_datasets(data_dirs, rule_file=None, num_classes=None):
    """Scan several data folders into one Dataset (paths and labels concatenated in the given order).

    The folders must share one class list: the same rule file (`rule_file` for all of them, else
    each one's own, in it or beside it, and those must list the same classes) or, for the class per
    folder layout, the same class folders. A single folder (a string) is load_dataset(). Raises
    DataError naming both files when two rule files differ, and for a folder given twice.
    """
    if isinstance(data_dirs, (str, os.PathLike)):
        data_dirs = [data_dirs]
    data_dirs = [os.fspath(d) for d in data_dirs]
    if not data_dirs:
        raise DataError("no data folder given")
    seen = {}
    for d in data_dirs:
        real = os.path.realpath(d)
        if real in seen:
            raise DataError(f"data folder {d} is given twice ({seen[real]})")
        seen[real] = d
    if len(data_dirs) == 1:
        ds = load_dataset(data_dirs[0], rule_file, num_classes)
        ds.sources = [(data_dirs[0], len(ds.paths))]
        return ds
    parts, first = [], None
    for d in data_dirs:
        if not os.path.isdir(d):
            raise DataError(f"no data folder at {d}")
        source = _class_source(d, rule_file)
        ds = load_dataset(d, source, num_classes)
        what = f"{d}'s rule file {source}" if source else f"the class folders of {d}"
        if first is None:
            first = (what, ds.class_names)
        elif ds.class_names != first[1]:
            a, b = first[1], ds.class_names
            diff = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
            detail = (f"{len(a)} vs {len(b)} classes" if diff == min(len(a), len(b))
                      else f"class {diff} is {a[diff]!r} vs {b[diff]!r}")
            raise DataError(f"the data folders do not share one class list: {first[0]} and {what} differ ({detail}); "
                            "train on folders with the same rule file, or pass --rule_file")
        parts.append(ds)
    layouts = {ds.layout for ds in parts}
    return Dataset([p for ds in parts for p in ds.paths], np.concatenate([ds.labels for ds in parts]),
                   first[1], layouts.pop() if len(layouts) == 1 else "mixed",
                   [s for ds in parts for s in ds.skipped], [(d, len(ds.paths)) for d, ds in zip(data_dirs, parts)])
