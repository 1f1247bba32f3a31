"""Checking a labelled folder before training on it.

`check` reads the folder as training does (tools.data.layout.scan) and then looks at every file:
label files and labels against the rule file (what training would skip), images missing /
unreadable / truncated, identical images filed under different labels, files training ignores,
images per class (a bar chart), and writes a manifest whose hash identifies this exact copy of the data.
What it writes goes to a folder of its own (default_out_dir), never into the data folder, where the
next check would take the chart for an image without a label.
"""

import concurrent.futures
import csv
import hashlib
import io
import json
import os

import numpy as np
from tqdm import tqdm

from tools.data.layout import data_name, scan
from tools.images import ImageDecodeError, decode_image, is_image_file
from tools.plots import class_ticks, pyplot


#: Where `sample.py --check DIR` writes by default: a folder named after DIR in here.
CHECK_ROOT = "data_check"


def default_out_dir(data_dir):
    """data_check/<data folder's name>: data_check/garbage_classify_v2 for garbage_classify_v2/train_data_v2."""
    return os.path.join(CHECK_ROOT, data_name(data_dir))


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
    """Check `data_dir` and write manifest.csv, check_report.json and class_counts.png into `out_dir`
    (default: default_out_dir).

    Returns the report dict; report["errors"] non-empty means the data should not be trained on as is.
    """
    ds = scan(data_dir, rule_file)
    class_names = ds.class_names
    errors = [f"{os.path.relpath(file, data_dir)}: {reason}" for file, reason in ds.skipped]
    entries = [(os.path.relpath(path, data_dir), int(label)) for path, label in zip(ds.paths, ds.labels)]
    used = {rel for rel, _ in entries}
    if ds.layout == "txt":
        warnings = [f"{name}: image without a label file (not used)" for name in sorted(os.listdir(data_dir))
                    if is_image_file(name) and name not in used]
    else:
        folders = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
        warnings = [f"{d}: folder without images (not a class)" for d in folders if d not in class_names]
        warnings += [f"{os.path.join(cls, name)}: not an image file (not used)" for cls in class_names
                     for name in sorted(os.listdir(os.path.join(data_dir, cls))) if not is_image_file(name)]
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
    out_dir = out_dir or default_out_dir(data_dir)
    os.makedirs(out_dir, exist_ok=True)
    manifest = os.path.join(out_dir, "manifest.csv")
    digest = hashlib.sha256()
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "size", "sha256", "label"])
        for row in sorted(rows):
            writer.writerow(row)
            digest.update(f"{row[0]}\t{row[1]}\t{row[2]}\t{row[3]}\n".encode("utf-8"))
    report = {"data_dir": os.path.abspath(data_dir), "layout": ds.layout, "images": len(entries),
              "classes": len(class_names), "counts": {class_names[i]: int(c) for i, c in enumerate(counts)},
              "manifest": manifest, "manifest_sha256": digest.hexdigest(), "errors": errors, "warnings": warnings}
    with open(os.path.join(out_dir, "check_report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False, indent=1)
    plot_counts(class_names, counts, os.path.join(out_dir, "class_counts.png"))
    return report


def plot_counts(class_names, counts, path):
    """Horizontal bar chart of images per class (Chinese names when a CJK font is installed)."""
    plt = pyplot()
    names, font = class_ticks(class_names)
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
