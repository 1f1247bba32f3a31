"""Data folders: what train.py, sample.py and the server read and write.

layout.py    the labelled images of one folder (either layout) as a Dataset
rules.py     the rule file: its name, where it lies, the class names it lists
merge.py     several folders sharing one class list as one Dataset
split.py     the seeded, stratified train/validation split
tables.py    terminal tables whose CJK class names line up (images per class)
check.py     `sample.py --check`: one folder checked, its report and plot
download.py  the Huawei set, link-or-copy

Loading a folder for training (the split wrapped in loaders and caches) is tools/training/data.py:
this package loads no Keras and imports nothing from tools/training.
"""

from tools.errors import GarbageError


class DataError(GarbageError, ValueError):
    """The data folder or rule file cannot be used (the message says what to fix)."""
