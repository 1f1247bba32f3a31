"""Find the labelled images of a data folder and split them for training.

Two layouts are accepted:
- garbage_classify_v2: `DIR/img_N.jpg` + `DIR/img_N.txt` holding "img_N.jpg, LABEL", with a rule
  file `garbage_classify_rule.json` ({"0": "其他垃圾/一次性快餐盒", ...}) in DIR or beside it;
- class per folder: `DIR/<class name>/*.jpg` (most Kaggle sets), classes sorted by folder name.

Bad entries (unparsable label files, labels outside the rule file, missing images) are skipped
with one warning each naming the file; they never stop training.

Several folders that share one class list (the Huawei set and a folder collected by
`server.py --collect`, which carries the rule file of the model that served) load together with
load_datasets().
"""

import dataclasses
import json
import logging
import math
import os
import typing
import unicodedata

import numpy as np

from tools.errors import GarbageError
from tools.images import is_image_file

log = logging.getLogger(__name__)

RULE_FILE_NAME = "garbage_classify_rule.json"


class DataError(GarbageError, ValueError):
    """The data folder or rule file cannot be used (the message says what to fix)."""


@dataclasses.dataclass
class Dataset:
    paths: list  # image paths
    labels: np.ndarray  # int labels, same order
    class_names: list  # index = label id; "category/name"
    layout: str  # "txt" or "folders"
    skipped: list = dataclasses.field(default_factory=list)  # (file, reason)
    sources: list = dataclasses.field(default_factory=list)  # (data dir, images) for load_datasets

    def subset(self, index):
        return Dataset([self.paths[i] for i in index], self.labels[index], self.class_names, self.layout)


def data_name(data_dir):
    """A data folder's name for what is written about it: its parent's when it is the layout's train_data_v2."""
    parts = os.path.normpath(os.path.abspath(data_dir)).split(os.sep)
    return parts[-2] if parts[-1] == "train_data_v2" and len(parts) > 1 else parts[-1]


def find_rule_file(data_dir):
    """The rule file in `data_dir` or its parent (the garbage_classify_v2 layout), else None."""
    for folder in (data_dir, os.path.dirname(os.path.abspath(data_dir))):
        path = os.path.join(folder, RULE_FILE_NAME)
        if os.path.isfile(path):
            return path
    return None


def load_rule_file(path):
    """Class names indexed by id from a rule file; ids must be 0..N-1."""
    try:
        with open(path, encoding="utf-8") as f:
            rules = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read rule file {path}: {e}") from None
    if not isinstance(rules, dict) or not rules:
        raise DataError(f"rule file {path} must map ids to names, e.g. {{\"0\": \"其他垃圾/烟蒂\"}}")
    try:
        ids = sorted(int(k) for k in rules)
    except ValueError:
        raise DataError(f"rule file {path} has a non-integer id: {sorted(rules)[:5]}") from None
    if ids != list(range(len(ids))):
        raise DataError(f"rule file {path}: ids must be 0..{len(ids) - 1} without gaps, got {ids[:10]}...")
    return [str(rules[str(i)]) for i in ids]


def detect_layout(data_dir):
    """"txt" (img_N.txt label files), "folders" (one folder per class) or None."""
    entries = os.listdir(data_dir)
    if any(e.endswith(".txt") for e in entries):
        return "txt"
    for e in entries:
        sub = os.path.join(data_dir, e)
        if os.path.isdir(sub) and any(is_image_file(f) for f in os.listdir(sub)):
            return "folders"
    return None


def parse_label_file(path):
    """(image file name, label) from one "img_N.jpg, LABEL" file; raises ValueError with the reason."""
    with open(path, encoding="utf-8-sig") as f:
        text = f.read().strip()
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not parts[0]:
        raise ValueError(f"A label file holds 'img_N.jpg, LABEL'. Received: text={text[:60]!r}")
    try:
        return parts[0], int(parts[1])
    except ValueError:
        raise ValueError(f"The label must be an integer. Received: label={parts[1][:20]!r}") from None


def _scan_txt(data_dir, num_classes):
    paths, labels, skipped = [], [], []
    for name in sorted(os.listdir(data_dir)):
        if not name.endswith(".txt"):
            continue
        txt = os.path.join(data_dir, name)
        try:
            image_name, label = parse_label_file(txt)
        except (ValueError, UnicodeDecodeError, OSError) as e:
            skipped.append((txt, f"label file does not parse ({e})"))
            continue
        if not 0 <= label < num_classes:
            skipped.append((txt, f"label {label} is not in the rule file: outside 0..{num_classes - 1}"))
            continue
        image = os.path.join(data_dir, os.path.basename(image_name))
        if not os.path.isfile(image):
            skipped.append((txt, f"image {image_name} is missing"))
            continue
        paths.append(image)
        labels.append(label)
    return paths, labels, skipped


def _scan_folders(data_dir):
    classes = sorted(e for e in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, e)))
    classes = [c for c in classes if any(is_image_file(f) for f in os.listdir(os.path.join(data_dir, c)))]
    paths, labels = [], []
    for label, cls in enumerate(classes):
        for name in sorted(os.listdir(os.path.join(data_dir, cls))):
            if is_image_file(name):
                paths.append(os.path.join(data_dir, cls, name))
                labels.append(label)
    return paths, labels, classes


def scan(data_dir, rule_file=None, num_classes=None):
    """Every labelled image of `data_dir` (either layout) as a Dataset, with the entries skipped and why.

    What train.py trains on and what `sample.py --check` checks are both read here. Raises DataError
    when the folder, its layout or its rule file cannot be used; logs nothing, and may find no image.
    """
    if not os.path.isdir(data_dir):
        raise DataError(f"no data folder at {data_dir}")
    layout = detect_layout(data_dir)
    if layout is None:
        raise DataError(f"no labelled images in {data_dir} (neither img_N.txt files nor class folders)")
    if layout == "txt":
        rule_file = rule_file or find_rule_file(data_dir)
        if rule_file is None:
            raise DataError(f"no {RULE_FILE_NAME} in {data_dir} or its parent; pass --rule_file")
        class_names = load_rule_file(rule_file)
        if num_classes is not None and num_classes != len(class_names):
            raise DataError(f"--num_classes {num_classes} disagrees with {rule_file} ({len(class_names)} classes)")
        paths, labels, skipped = _scan_txt(data_dir, len(class_names))
    else:
        paths, labels, class_names = _scan_folders(data_dir)
        skipped = []
        if num_classes is not None and num_classes != len(class_names):
            raise DataError(f"--num_classes {num_classes} disagrees with the {len(class_names)} class folders")
    return Dataset(paths, np.asarray(labels, dtype=np.int64), class_names, layout, skipped)


def load_dataset(data_dir, rule_file=None, num_classes=None):
    """Scan `data_dir` (either layout) into a Dataset; warnings for skipped entries go to the log."""
    ds = scan(data_dir, rule_file, num_classes)
    for file, reason in ds.skipped:
        log.warning("skipping %s: %s", file, reason)
    if not ds.paths:
        raise DataError(f"no usable labelled images in {data_dir} ({len(ds.skipped)} entries skipped)")
    return ds


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


def display_width(text):
    """Terminal columns of `text`: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text, width):
    return text + " " * max(0, width - display_width(text))


def format_counts(class_names, *columns):
    """A table of images per class; `columns` are (title, counts) pairs."""
    width = max(display_width(n) for n in class_names + ["class"])
    rows = [f"{'id':>3}  {pad('class', width)}" + "".join(f"  {t:>6}" for t, _ in columns)]
    for i, name in enumerate(class_names):
        rows.append(f"{i:>3}  {pad(name, width)}" + "".join(f"  {int(c[i]):>6}" for _, c in columns))
    rows.append(f"{'':>3}  {pad('total', width)}" + "".join(f"  {int(np.sum(c)):>6}" for _, c in columns))
    return "\n".join(rows)


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
    # The loader is a keras.utils.PyDataset: imported here so that scanning data loads no Keras.
    from tools.training.cache import CACHE_MODES, open_cache
    from tools.training.loader import GarbageClassifySequence

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
