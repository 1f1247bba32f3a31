"""Find the labelled images of one data folder.

Two layouts are accepted:
- garbage_classify_v2: `DIR/img_N.jpg` + `DIR/img_N.txt` holding "img_N.jpg, LABEL", with a rule
  file (tools/data/rules.py) in DIR or beside it;
- class per folder: `DIR/<class name>/*.jpg` (most Kaggle sets), classes sorted by folder name.

Bad entries (unparsable label files, labels outside the rule file, missing images) are skipped
with one warning each naming the file; they never stop training. Several folders load together
with tools/data/merge.py.
"""

import dataclasses
import logging
import os

import numpy as np

from tools.data import DataError
from tools.data.rules import RULE_FILE_NAME, find_rule_file, load_rule_file
from tools.images import is_image_file

log = logging.getLogger(__name__)


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
