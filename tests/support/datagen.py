"""Generated image data for tests and benches: learnable classes (a colour + stripe orientation each),
and phone-sized photos."""

import json
import os

import numpy as np
from PIL import Image

COLOURS = [(200, 40, 40), (40, 160, 40), (40, 60, 200), (200, 200, 40), (160, 40, 160), (40, 180, 180)]
CLASS_NAMES = ["可回收物/易拉罐", "有害垃圾/干电池", "厨余垃圾/水果果皮", "其他垃圾/烟蒂", "可回收物/纸板箱", "其他垃圾/竹筷"]


def make_image(label, rng, size=(80, 60)):
    w, h = size
    base = np.array(COLOURS[label % len(COLOURS)], dtype=np.float32)
    img = np.ones((h, w, 3), np.float32) * base
    period = 6 + 2 * (label % 3)
    stripes = (np.arange(w if label % 2 else h) // (period // 2)) % 2
    img *= (0.6 + 0.4 * (stripes[None, :, None] if label % 2 else stripes[:, None, None]))
    img += rng.normal(0, 12, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_txt_dataset(root, per_class=10, num_classes=4, seed=0, size=(80, 60), start=0):
    """garbage_classify_v2 layout: root/train_data_v2/img_N.jpg + .txt, rule file in root. Returns the data dir."""
    rng = np.random.default_rng(seed)
    data_dir = os.path.join(root, "train_data_v2")
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(root, "garbage_classify_rule.json"), "w", encoding="utf-8") as f:
        json.dump({str(i): CLASS_NAMES[i] for i in range(num_classes)}, f, ensure_ascii=False)
    n = start
    for label in range(num_classes):
        for _ in range(per_class):
            make_image(label, rng, size).save(os.path.join(data_dir, f"img_{n}.jpg"), quality=92)
            with open(os.path.join(data_dir, f"img_{n}.txt"), "w") as f:
                f.write(f"img_{n}.jpg, {label}")
            n += 1
    return data_dir


def make_folder_dataset(root, per_class=6, classes=("cans", "paper", "glass"), seed=0, size=(80, 60)):
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            make_image(label, rng, size).save(os.path.join(root, name, f"{i}.jpg"))
    return root


def make_big_jpegs(folder, count, seed=0):
    """Photo-like 3000x4000 JPEGs (smooth gradients + texture, ~2-3 MB each), as phones take; returns their paths."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:3000, 0:4000].astype(np.float32)
    paths = []
    for i in range(count):
        base = np.stack([(np.sin(xx / (200 + 50 * c) + i) + 1) * 100 + yy / 40 for c in range(3)], axis=-1)
        noise = rng.normal(0, 8, size=(750, 1000, 3)).repeat(4, axis=0).repeat(4, axis=1)
        img = np.clip(base + noise, 0, 255).astype(np.uint8)
        path = os.path.join(folder, f"big_{i}.jpg")
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths
