"""Pictures of how sure the model is and where it goes wrong: reliability.png and top_losses.png.

Why: report.json's figures say how often the model is right, not when to trust it nor which photos
it gets wrong. reliability.png shows the calibration (tools/calibration.py) before and after the
temperature, and what each "not sure" threshold would leave answered; top_losses.png shows the
photos with the highest loss, the first thing to look at (mislabelled photos, a confusing class).
Drawn through tools.plots: Agg backend, Chinese names in a CJK font when one is installed.
"""

import numpy as np

from tools.calibration import apply_temperature, reliability_bins, threshold_curve
from tools.images import ImageDecodeError, decode_image
from tools.plots import class_ticks, pyplot

#: Photos top_losses.png shows, and the side of each thumbnail in pixels.
TOP_LOSSES = 16
THUMBNAIL = 192


def _reliability_panel(ax, probs, labels, bins, title):
    count, confidence, accuracy = reliability_bins(probs, labels, bins)
    left = np.linspace(0, 1, bins + 1)[:-1][count > 0]
    count, confidence, accuracy = count[count > 0], confidence[count > 0], accuracy[count > 0]
    ax.bar(left, accuracy, width=1 / bins, align="edge", color="tab:blue", alpha=0.8, edgecolor="white",
           label="share right")
    ax.bar(left, np.abs(confidence - accuracy), bottom=np.minimum(confidence, accuracy), width=1 / bins,
           align="edge", color="tab:red", alpha=0.3, label="gap to the mean probability")
    for x, y, n in zip(left, np.maximum(confidence, accuracy), count):
        ax.text(x + 0.5 / bins, min(y, 0.93) + 0.01, str(n), ha="center", va="bottom", fontsize=6, color="dimgrey")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("top-1 probability")
    ax.set_ylabel("share right")
    ax.set_title(title + " (photos per bin above the bars)", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)


def plot_reliability(probs, labels, calibration, path):
    """Reliability diagrams before (T 1) and after calibration["temperature"], then the share
    answered and their accuracy against the threshold, calibration["threshold"] marked."""
    plt = pyplot()
    c = calibration
    fig, (before, after, curve) = plt.subplots(1, 3, figsize=(15, 4.6))
    _reliability_panel(before, probs, labels, c["bins"], f"before: temperature 1, ECE {c['ece_before']:.3f}")
    calibrated = apply_temperature(probs, c["temperature"])
    _reliability_panel(after, calibrated, labels, c["bins"],
                       f"after: temperature {c['temperature']:.3f}, ECE {c['ece_after']:.3f}")
    grid = np.linspace(0, 1, 401)
    _, coverage, accuracy = threshold_curve(calibrated.max(axis=1), calibrated.argmax(axis=1) == np.asarray(labels),
                                            grid)
    curve.plot(grid, accuracy, color="tab:blue", label="accuracy of the answered photos")
    curve.plot(grid, coverage, color="tab:green", label="share of photos answered")
    if c["target_accuracy"] is not None:
        curve.axhline(c["target_accuracy"], color="tab:blue", ls=":", lw=1, label=f"target {c['target_accuracy']:g}")
    curve.axvline(c["threshold"], color="black", ls="--", lw=1,
                  label=f"threshold {c['threshold']:.3f}: {c['coverage']:.0%} answered")
    curve.set_xlim(0, 1.01)
    curve.set_ylim(0, 1.02)
    curve.set_xlabel("threshold ('not sure' below it, calibrated)")
    curve.set_title("what a threshold leaves answered", fontsize=10)
    curve.legend(loc="lower left", fontsize=8)
    for ax in (before, after, curve):
        ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.12, top=0.92, wspace=0.22)  # tight_layout costs a second
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _thumbnail(path):
    """The photo, upright and at most THUMBNAIL pixels a side; None if it cannot be read."""
    try:
        img = decode_image(path, min_side=THUMBNAIL)
    except (OSError, ImageDecodeError):
        return None
    img.thumbnail((THUMBNAIL, THUMBNAIL))
    return np.asarray(img)


def plot_top_losses(probs, labels, paths, class_names, path, count=TOP_LOSSES):
    """The `count` photos of `paths` with the highest loss -log p(true class) under `probs`, each
    with its true and predicted item and their probabilities."""
    plt = pyplot()
    probs, labels = np.asarray(probs), np.asarray(labels)
    p_true = probs[np.arange(len(labels)), labels]
    worst = np.argsort(p_true, kind="stable")[:count]  # the highest loss is the lowest p(true)
    names, font = class_ticks([n.split("/", 1)[-1] for n in class_names])
    cols = max(1, min(4, len(worst)))
    rows = max(1, -(-len(worst) // cols))
    with plt.rc_context({"font.family": [font] if font else ["sans-serif"], "font.size": 8}):
        height = 3 * rows + 0.4  # a cell: a 4:3 photo under three lines of text; the title on top
        fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, height), squeeze=False)
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.9 / height, hspace=0.3, wspace=0.06)
        for ax in axes.flat:
            ax.axis("off")
        for ax, i in zip(axes.flat, worst):
            image = _thumbnail(paths[i])
            if image is None:
                ax.text(0.5, 0.5, "unreadable", ha="center", va="center")
            else:
                ax.imshow(image)
            pred = int(probs[i].argmax())
            ax.set_title(f"true: {names[labels[i]]} ({p_true[i]:.2f})\npredicted: {names[pred]} ({probs[i, pred]:.2f})"
                         f"\nloss {-np.log(max(p_true[i], 1e-12)):.2f}",
                         color="black" if pred == labels[i] else "darkred")
        title = f"The {len(worst)} photos with the highest loss (calibrated probabilities)"
        fig.suptitle(title + ("" if font else "; no CJK font installed: class ids"), fontsize=11)
        fig.savefig(path, dpi=90)
    plt.close(fig)
