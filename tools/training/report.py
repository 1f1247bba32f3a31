"""Scoring a trained model (evaluate): report.json / report.txt, confusion_matrix.png, and the
calibration (tools/calibration.py) with its pictures (tools/training/diagnostics.py); and history.png.

Metrics come from scikit-learn; plots from matplotlib through tools.plots (no display; Chinese
class names in a CJK font when one is installed, else class ids). report.txt's tables count a
Chinese character as two columns, so they stay aligned in a terminal.
"""

import csv
import json
import os

import numpy as np

from tools.calibration import (DEFAULT_TARGET_ACCURACY, apply_temperature, calibration_figures, fit_calibration,
                               threshold_in_use)
from tools.contract import bin_of
from tools.data.tables import display_width, pad
from tools.plots import class_ticks, pyplot
from tools.training.diagnostics import plot_reliability, plot_top_losses

#: Pairs of classes report.txt lists as the most confused.
MOST_CONFUSED = 10


def classification_report(y_true, probs, class_names):
    """All the figures of report.json from true labels and predicted probabilities (n, classes)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support  # heavy: only when scoring

    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    n_classes = len(class_names)
    labels = np.arange(n_classes)
    y_pred = probs.argmax(axis=1)
    k = min(5, n_classes)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    support = cm.sum(axis=1)
    per_class_acc = np.divide(np.diag(cm), support, out=np.zeros(n_classes), where=support > 0)
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    bins = sorted({bin_of(n) for n in class_names})
    bin_ids = np.array([bins.index(bin_of(n)) for n in class_names])
    true_bin, pred_bin = bin_ids[y_true], bin_ids[y_pred]
    off_diagonal = cm * (1 - np.eye(n_classes, dtype=cm.dtype))
    pairs = [divmod(int(i), n_classes) for i in np.argsort(-off_diagonal, axis=None, kind="stable")[:MOST_CONFUSED]]
    return {
        "images": int(len(y_true)),
        "top1": float(np.mean(y_pred == y_true)),
        f"top{k}": float(np.mean(np.any(np.argsort(-probs, axis=1)[:, :k] == y_true[:, None], axis=1))),
        "per_class_mean_accuracy": float(per_class_acc[support > 0].mean()) if support.any() else 0.0,
        "bin_accuracy": float(np.mean(true_bin == pred_bin)),
        # what always answering the most common bin would score: on TrashNet 5 of 6 classes share one bin
        "bin_majority_baseline": float(np.bincount(true_bin).max() / len(true_bin)) if len(true_bin) else 0.0,
        "per_bin": {b: {"images": int(np.sum(true_bin == i)),
                        "accuracy": float(np.mean(pred_bin[true_bin == i] == i)) if np.any(true_bin == i) else None}
                    for i, b in enumerate(bins)},
        "per_class": [{"id": i, "name": class_names[i], "support": int(support[i]), "accuracy": float(per_class_acc[i]),
                       "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i])}
                      for i in range(n_classes)],
        "confusion_matrix": cm.tolist(),
        "most_confused": [{"true": class_names[t], "predicted": class_names[p], "images": int(cm[t, p])}
                          for t, p in pairs if off_diagonal[t, p] > 0],
    }


def _figure(value, digits=4):
    return "-" if value is None else f"{value:.{digits}f}"


def format_calibration(c):
    """report.txt's calibration lines (report.json "calibration")."""
    source = "fitted on these photos" if c.get("fitted") else "the model's, from labels.json"
    target = "" if c["target_accuracy"] is None else f"; chosen for accuracy {c['target_accuracy']:g}"
    if c.get("fitted") and c["target_reached"] is False:
        target += ", which no threshold reaches here"
    return [f"calibration (temperature and threshold {source})",
            f"temperature              {c['temperature']:.4f}",
            f"ECE before               {c['ece_before']:.4f}  (expected calibration error, {c['bins']} bins, top-1; "
            "before = temperature 1)",
            f"ECE after                {c['ece_after']:.4f}",
            f"threshold                {c['threshold']:.4f}  (below it an answer is 'not sure'{target})",
            f"coverage                 {c['coverage']:.4f}  (share of photos answered)",
            f"accuracy answered        {_figure(c['accuracy_answered'])}"]


def calibration_summary(c):
    """One line on the console for report.json's "calibration"."""
    answered = ("no photo answered" if c["accuracy_answered"] is None else
                f"{c['coverage']:.0%} of the photos answered, {c['accuracy_answered']:.3f} of them right")
    line = (f"calibration: temperature {c['temperature']:.3f}, ECE {c['ece_before']:.3f} -> {c['ece_after']:.3f}; "
            f"'not sure' below {c['threshold']:.3f}: {answered}")
    if c.get("fitted") and c["target_reached"] is False:
        line += (f" (no threshold reaches the target accuracy {c['target_accuracy']:g} on these photos: lower "
                 "--target_accuracy or train longer)")
    return line


def format_report(report):
    """report.txt: the headline figures, the calibration, then tables per bin, per class and of the
    most confused pairs."""
    topk = next(k for k in report if k.startswith("top") and k != "top1")
    lines = [f"images                   {report['images']}",
             f"top-1 accuracy           {report['top1']:.4f}",
             f"{topk[:3]}-{topk[3:]} accuracy           {report[topk]:.4f}",
             f"per-class mean accuracy  {report['per_class_mean_accuracy']:.4f}",
             f"bin accuracy             {report['bin_accuracy']:.4f}  (always the most common bin: "
             f"{report['bin_majority_baseline']:.4f})"]
    if "calibration" in report:
        lines += [""] + format_calibration(report["calibration"])
    width = max(display_width(b) for b in [*report["per_bin"], "bin"])
    lines += ["", f"{pad('bin', width)}  {'images':>6}  {'accuracy':>8}"]
    for b, v in report["per_bin"].items():
        lines.append(f"{pad(b, width)}  {v['images']:>6}  {_figure(v['accuracy']):>8}")
    lines += ["", f"{'id':>3}  {'precision':>9} {'recall':>7} {'f1':>6} {'support':>7}  class"]
    for c in report["per_class"]:
        lines.append(f"{c['id']:>3}  {c['precision']:>9.4f} {c['recall']:>7.4f} {c['f1']:>6.4f} {c['support']:>7}  {c['name']}")
    confused = report.get("most_confused", [])
    lines += ["", f"most confused pairs (true -> predicted), {len(confused)}:" if confused else
              "most confused pairs: none (no mistakes)"]
    if confused:
        width = max(display_width(p["true"]) for p in confused + [{"true": "true"}])
        lines.append(f"{'images':>6}  {pad('true', width)}  predicted")
        for p in confused:
            lines.append(f"{p['images']:>6}  {pad(p['true'], width)}  {p['predicted']}")
    return "\n".join(lines) + "\n"


def plot_confusion_matrix(cm, class_names, path):
    """Row-normalised confusion matrix, sized so 40 classes stay readable; ids if no CJK font."""
    plt = pyplot()
    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(class_names)
    names, font = class_ticks(class_names)
    side = max(6.0, 0.32 * n + 4)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="colour: share of the true class's photos (row)")
    size = 9 if n <= 12 else 7
    ax.set_xticks(range(n), labels=names, rotation=90, fontsize=size, fontfamily=font or "sans-serif")
    ax.set_yticks(range(n), labels=names, fontsize=size, fontfamily=font or "sans-serif")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=size,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    title = ("Confusion matrix: numbers are photos, colour is their share of the row" if n <= 20 else
             "Confusion matrix: colour is the share of each true class (row)")
    title += "" if font else "\n(no CJK font installed: class ids)"
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report, out_dir, class_names, prefix=""):
    """report.json, report.txt and confusion_matrix.png into `out_dir`; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, prefix + name) for k, name in
             (("json", "report.json"), ("txt", "report.txt"), ("png", "confusion_matrix.png"))}
    with open(paths["json"], "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False, indent=1)
    with open(paths["txt"], "w", encoding="utf-8") as f:
        f.write(format_report(report))
    plot_confusion_matrix(report["confusion_matrix"], class_names, paths["png"])
    return paths


def read_history(path):
    """Rows of history.csv as dicts of floats (epoch as int)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(float(v)) if k == "epoch" else float(v)) for k, v in row.items() if v not in ("", None)}
            for row in rows]


def plot_history(rows, path, phase_boundary=None):
    """Loss and accuracy per epoch (train and validation) with the fine-tuning start marked; epochs
    are numbered 1.. in row order, ticks on whole epochs."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    epochs = [r["epoch"] for r in rows]  # history.csv numbers them from 1
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "top-1 accuracy")):
        for prefix, style in (("", "-o"), ("val_", "-s")):
            values = [r.get(prefix + key) for r in rows]
            if any(v is not None for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], style, ms=3,
                        label="validation" if prefix else "train")
        if phase_boundary is not None and 0 < phase_boundary < len(rows):
            ax.axvline(phase_boundary + 0.5, color="grey", ls="--", lw=1)
            ax.text(phase_boundary + 0.6, ax.get_ylim()[1], " fine-tune", va="top", fontsize=8, color="grey")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(model, sequence, class_names, output_dir, target_accuracy=DEFAULT_TARGET_ACCURACY, calibration=None):
    """Predict every batch of `sequence` (an unshuffled loader) and write report.json/txt,
    confusion_matrix.png, reliability.png and top_losses.png into `output_dir`; returns the report.

    calibration None (training: `sequence` is the validation photos): the temperature is fitted on
    these predictions and the threshold chosen for `target_accuracy`; report["calibration"] holds
    them for labels.json (tools.contract.write_calibration). Else (--test_only): the model's own
    {"temperature", "threshold", "target_accuracy"} (tools.contract.calibration_of) are applied and
    scored on these photos, which they were not fitted on.
    """
    # the padding of the last batch left out
    probs = np.asarray(model.predict(sequence, verbose=0)[:sequence.count], dtype=np.float64)
    order = np.asarray(sequence.order)
    y_true = np.asarray(sequence.labels)[order]
    if calibration is None:
        figures = {**fit_calibration(probs, y_true, target_accuracy), "fitted": True}
    else:
        figures = {**calibration_figures(probs, y_true, calibration["temperature"],
                                         threshold_in_use(None, calibration["threshold"]),
                                         calibration["target_accuracy"]), "fitted": False}
    calibrated = apply_temperature(probs, figures["temperature"])
    report = {**classification_report(y_true, calibrated, class_names), "calibration": figures}
    write_report(report, output_dir, class_names)
    plot_reliability(probs, y_true, figures, os.path.join(output_dir, "reliability.png"))
    plot_top_losses(calibrated, y_true, [sequence.paths[i] for i in order], class_names,
                    os.path.join(output_dir, "top_losses.png"))
    return report
