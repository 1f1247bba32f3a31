"""The feedback tests' classes: tiny_model's weights under labels with a 玻璃 ("glass") class, as the
page test picks it, and generated data folders whose rule file lists them."""

import json
import os
import shutil

from support.datagen import make_txt_dataset
from tools.data.layout import RULE_FILE_NAME

#: The test model's classes: tiny_model's weights with a 玻璃 ("glass") class, as the page test picks it.
GLASS_CLASSES = ["可回收物/易拉罐", "有害垃圾/干电池", "厨余垃圾/水果果皮", "可回收物/玻璃"]
GLASS = 3


def save_glass_model(tiny_model, folder):
    """tiny_model (4 outputs, 32 px) copied into `folder` with labels.json listing GLASS_CLASSES; its best.h5."""
    shutil.copy(tiny_model, folder / "best.h5")
    with open(os.path.join(os.path.dirname(tiny_model), "labels.json"), encoding="utf-8") as f:
        meta = json.load(f)
    meta["labels"] = GLASS_CLASSES
    with open(folder / "labels.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False)
    return str(folder / "best.h5")


def make_glass_data(root, per_class=3):
    """A generated garbage_classify_v2 folder whose rule file lists GLASS_CLASSES (the data dir path)."""
    data = make_txt_dataset(str(root), per_class=per_class, num_classes=4)
    with open(os.path.join(str(root), RULE_FILE_NAME), "w", encoding="utf-8") as f:
        json.dump({str(i): n for i, n in enumerate(GLASS_CLASSES)}, f, ensure_ascii=False)
    return data
