"""Getting the Huawei data set and checking a labelled folder before training on it.

`download` goes through `keras.utils.get_file` (the Keras cache, an optional hash, extraction) and
links the extracted images into the project's layout. `check` looks at every file: the layout,
label files, labels against the rule file, images missing / unreadable / truncated, identical
images filed under different labels, images per class (a bar chart), and writes a manifest whose
hash identifies this exact copy of the data.
"""

import concurrent.futures
import csv
import hashlib
import io
import json
import os
import shutil

import numpy as np

from tools.data.layout import RULE_FILE_NAME, DataError, detect_layout, find_rule_file, load_rule_file, parse_label_file
from tools.images import ImageDecodeError, decode_image, is_image_file

HUAWEI_URL = ("https://modelarts-competitions.obs.cn-north-1.myhuaweicloud.com/"
              "garbage_classify/dataset/garbage_classify_v2.zip")
ZIP_NAME = "garbage_classify_v2.zip"


class DownloadError(OSError):
    """The data set could not be fetched or unpacked (the message gives the manual steps)."""


def manual_steps(url, dest):
    return (f"Manual steps: download {url} in a browser, unzip it, and put the img_N.jpg + img_N.txt files "
            f"in {os.path.join(dest, 'train_data_v2')} (the rule file {RULE_FILE_NAME} goes in {dest}).")


def _find_image_folder(root):
    """The folder under `root` that holds the most img_N.txt label files."""
    best, count = None, 0
    for folder, _, files in os.walk(root):
        n = sum(1 for f in files if f.endswith(".txt"))
        if n > count:
            best, count = folder, n
    return best


def download(url=HUAWEI_URL, dest="./garbage_classify_v2", file_hash=None, cache_dir=None):
    """Fetch and unpack the zip via the Keras cache, then hard-link its images into DEST/train_data_v2.

    Returns (data_dir, number of files placed). Raises DownloadError with the manual steps.
    """
    import keras

    from models.weights import keras_cache_dir

    cache_dir = cache_dir or keras_cache_dir()
    os.makedirs(os.path.join(cache_dir, "datasets"), exist_ok=True)
    try:
        extracted = keras.utils.get_file(ZIP_NAME, url, cache_subdir="datasets", cache_dir=cache_dir,
                                         file_hash=file_hash, extract=True)
    except Exception as e:  # network errors are bare Exceptions; a wrong hash is a ValueError
        archive = os.path.join(cache_dir, "datasets", ZIP_NAME)
        if os.path.exists(archive):  # get_file keeps a file that failed its hash: never reuse it
            os.remove(archive)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DownloadError(f"could not download {url} ({reason}). {manual_steps(url, dest)}") from None
    source = _find_image_folder(extracted) if os.path.isdir(extracted) else None
    if source is None:
        archive = os.path.join(cache_dir, "datasets", ZIP_NAME)
        if os.path.exists(archive):
            os.remove(archive)  # a broken download must not be reused from the cache next time
        raise DownloadError(f"{url} did not unpack into labelled images (broken download or not the "
                            f"garbage_classify_v2 zip); the cached copy was removed, try again. "
                            f"{manual_steps(url, dest)}")
    target = os.path.join(dest, "train_data_v2")
    os.makedirs(target, exist_ok=True)
    placed = 0
    for name in os.listdir(source):
        src, dst = os.path.join(source, name), os.path.join(target, name)
        if not os.path.isfile(src) or os.path.exists(dst):
            continue
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        placed += 1
    for folder in (source, os.path.dirname(source)):
        rule = os.path.join(folder, RULE_FILE_NAME)
        if os.path.isfile(rule):
            shutil.copy2(rule, os.path.join(dest, RULE_FILE_NAME))
            break
    return target, placed


def _inspect_image(path):
    """(sha256, size, error or None) — the file is fully decoded (at reduced scale for JPEGs)."""
    with open(path, "rb") as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    try:
        decode_image(io.BytesIO(data), min_side=64)
        error = None
    except ImageDecodeError as e:
        error = str(e)
    return digest, len(data), error


def check(data_dir, rule_file=None, out_dir=None, workers=None, progress=True):
    """Check `data_dir` and write manifest.csv, check_report.json and class_counts.png into `out_dir`.

    Returns the report dict; report["errors"] non-empty means the data should not be trained on as is.
    """
    from tqdm import tqdm

    if not os.path.isdir(data_dir):
        raise DataError(f"no data folder at {data_dir}")
    layout = detect_layout(data_dir)
    if layout is None:
        raise DataError(f"no labelled images in {data_dir} (neither img_N.txt files nor class folders)")
    errors, warnings, entries = [], [], []  # entries: (relative path, label)
    if layout == "txt":
        rule_file = rule_file or find_rule_file(data_dir)
        if rule_file is None:
            raise DataError(f"no {RULE_FILE_NAME} in {data_dir} or its parent; pass --rule_file")
        class_names = load_rule_file(rule_file)
        labelled = set()
        for name in sorted(os.listdir(data_dir)):
            if not name.endswith(".txt"):
                continue
            try:
                image_name, label = parse_label_file(os.path.join(data_dir, name))
            except (ValueError, UnicodeDecodeError) as e:
                errors.append(f"{name}: label file does not parse ({e})")
                continue
            if not 0 <= label < len(class_names):
                errors.append(f"{name}: label {label} is not in the rule file (0..{len(class_names) - 1})")
                continue
            if not os.path.isfile(os.path.join(data_dir, image_name)):
                errors.append(f"{name}: image {image_name} is missing")
                continue
            labelled.add(image_name)
            entries.append((image_name, label))
        for name in sorted(os.listdir(data_dir)):
            if is_image_file(name) and name not in labelled:
                warnings.append(f"{name}: image without a label file (not used)")
    else:
        class_names = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
        for label, cls in enumerate(class_names):
            for name in sorted(os.listdir(os.path.join(data_dir, cls))):
                if is_image_file(name):
                    entries.append((os.path.join(cls, name), label))
                else:
                    warnings.append(f"{os.path.join(cls, name)}: not an image file (not used)")
    with concurrent.futures.ThreadPoolExecutor(workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        inspected = list(tqdm(pool.map(_inspect_image, (os.path.join(data_dir, e[0]) for e in entries)),
                              total=len(entries), desc="checking images", unit="img", disable=not progress or None))
    by_hash = {}
    rows = []
    for (rel, label), (digest, size, error) in zip(entries, inspected):
        if error:
            errors.append(f"{rel}: unreadable image ({error})")
        by_hash.setdefault(digest, []).append((rel, label))
        rows.append((rel, size, digest, label))
    for digest, files in by_hash.items():
        labels = {label for _, label in files}
        if len(labels) > 1:
            errors.append("identical images with different labels: " +
                          ", ".join(f"{rel} ({class_names[label]})" for rel, label in files))
        elif len(files) > 1:
            warnings.append("identical images (same label): " + ", ".join(rel for rel, _ in files))
    counts = np.bincount([label for _, label in entries], minlength=len(class_names))
    for i in np.flatnonzero(counts == 0):
        warnings.append(f"class {i} {class_names[i]} has no images")
    out_dir = out_dir or data_dir
    os.makedirs(out_dir, exist_ok=True)
    manifest = os.path.join(out_dir, "manifest.csv")
    digest = hashlib.sha256()
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "size", "sha256", "label"])
        for row in sorted(rows):
            writer.writerow(row)
            digest.update(f"{row[0]}\t{row[1]}\t{row[2]}\t{row[3]}\n".encode("utf-8"))
    report = {"data_dir": os.path.abspath(data_dir), "layout": layout, "images": len(entries),
              "classes": len(class_names), "counts": {class_names[i]: int(c) for i, c in enumerate(counts)},
              "manifest": manifest, "manifest_sha256": digest.hexdigest(), "errors": errors, "warnings": warnings}
    with open(os.path.join(out_dir, "check_report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False, indent=1)
    plot_counts(class_names, counts, os.path.join(out_dir, "class_counts.png"))
    return report


def plot_counts(class_names, counts, path):
    """Horizontal bar chart of images per class (Chinese names when a CJK font is installed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tools.training.report import find_cjk_font

    font = find_cjk_font()
    names = [f"{i} {n}" for i, n in enumerate(class_names)] if font else [str(i) for i in range(len(class_names))]
    fig, ax = plt.subplots(figsize=(8, max(3, 0.28 * len(class_names) + 1.5)))
    ax.barh(range(len(counts)), counts, color="#1565c0")
    ax.set_yticks(range(len(counts)), labels=names, fontfamily=font or "sans-serif", fontsize=8)
    ax.invert_yaxis()
    for i, c in enumerate(counts):
        ax.text(c, i, f" {int(c)}", va="center", fontsize=7)
    ax.set_xlabel("images")
    ax.set_title(f"Images per class ({int(np.sum(counts))} in all)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
