"""report.json figures on a case worked out by hand, and the plots."""

import glob
import json
import os

import numpy as np
import pytest

from tools.plots import find_cjk_font
from tools.training.report import classification_report, format_report, plot_history, write_report

NAMES = ["可回收物/易拉罐", "可回收物/纸板箱", "有害垃圾/干电池", "厨余垃圾/蛋壳", "其他垃圾/烟蒂", "其他垃圾/竹筷"]


def _probs(pred, n=6, second=None):
    p = np.full((len(pred), n), 0.01)
    p[np.arange(len(pred)), pred] = 0.9
    if second is not None:
        p[np.arange(len(pred)), second] = 0.05
    return p / p.sum(axis=1, keepdims=True)


def test_figures_of_a_hand_worked_case():
    y = np.array([0, 0, 1, 2, 3, 4, 5, 5])
    pred = np.array([0, 1, 1, 2, 4, 4, 4, 5])  # 5 of 8 right; 0->1 stays in its bin, 3->4 and 5->4 ...
    r = classification_report(y, _probs(pred, second=y), NAMES)
    assert r["top1"] == pytest.approx(5 / 8)
    assert r["top5"] == pytest.approx(1.0)  # the true class is always second
    # per class: 0:1/2, 1:1, 2:1, 3:0, 4:1, 5:1/2 -> mean 4/6
    assert r["per_class_mean_accuracy"] == pytest.approx(4 / 6)
    # bins: the 0->1 mistake and 5->4 mistake stay in the right bin; only 3 (厨余) -> 4 (其他) is a wrong bin
    assert r["bin_accuracy"] == pytest.approx(7 / 8)
    assert r["per_bin"]["厨余垃圾"] == {"images": 1, "accuracy": 0.0}
    assert r["per_bin"]["其他垃圾"]["accuracy"] == pytest.approx(1.0)
    c4 = r["per_class"][4]
    assert c4["precision"] == pytest.approx(1 / 3) and c4["recall"] == pytest.approx(1.0)
    assert np.asarray(r["confusion_matrix"])[3, 4] == 1


def test_report_files_and_history_plot(tmp_path):
    y = np.arange(6).repeat(3)
    r = classification_report(y, _probs(y), NAMES)
    paths = write_report(r, str(tmp_path), NAMES)
    assert "top-1 accuracy           1.0000" in open(paths["txt"], encoding="utf-8").read()
    assert os.path.getsize(paths["png"]) > 10_000
    rows = [{"epoch": i, "loss": 2 - i / 5, "val_loss": 2.1 - i / 5, "accuracy": i / 10, "val_accuracy": i / 11}
            for i in range(6)]
    plot_history(rows, str(tmp_path / "h.png"), phase_boundary=3)
    assert os.path.getsize(tmp_path / "h.png") > 10_000


def test_chinese_labels_use_an_installed_cjk_font():
    system_cjk = [p for p in glob.glob("/usr/share/fonts/**/*", recursive=True)
                  if any(k in os.path.basename(p).lower() for k in ("wqy", "notosanscjk", "droidsansfallback"))]
    if not system_cjk:
        pytest.skip("no CJK font installed (.ci/run installs fonts-wqy-microhei)")
    from matplotlib import font_manager

    name = find_cjk_font()
    path = font_manager.findfont(font_manager.FontProperties(family=name), fallback_to_default=False)
    assert os.path.realpath(path) in {os.path.realpath(p) for p in system_cjk}, (name, path)  # one of them


def test_the_majority_bin_baseline_and_the_most_confused_pairs():
    y = np.array([0, 0, 1, 2, 3, 4, 5, 5])
    pred = np.array([0, 1, 1, 2, 4, 4, 4, 5])
    r = classification_report(y, _probs(pred), NAMES)
    assert r["bin_majority_baseline"] == pytest.approx(3 / 8)  # 可回收物 and 其他垃圾 hold 3 of 8 each
    assert r["most_confused"] == [{"true": NAMES[0], "predicted": NAMES[1], "images": 1},
                                  {"true": NAMES[3], "predicted": NAMES[4], "images": 1},
                                  {"true": NAMES[5], "predicted": NAMES[4], "images": 1}]
    y = np.array([0] * 5 + [1] * 3)  # TrashNet-like: nearly everything is recyclable
    assert classification_report(y, _probs(np.zeros(8, int)), NAMES)["bin_majority_baseline"] == 1.0


def test_report_txt_tables_stay_aligned_with_chinese_names():
    from tools.data.tables import display_width

    y = np.array([0, 0, 1, 2, 3, 4, 5, 5, 5])
    text = format_report(classification_report(y, _probs(np.array([1, 1, 1, 2, 4, 4, 4, 3, 5])), NAMES))
    assert "bin accuracy             0.7778  (always the most common bin: 0.4444)" in text
    lines = text.splitlines()
    bins = lines[lines.index(next(l for l in lines if l.startswith("bin  "))):][:5]
    confused = lines[lines.index(next(l for l in lines if l.startswith("most confused"))) + 1:]
    assert len(confused) == 5 and confused[1].split()[1:] == [NAMES[0], NAMES[1]]  # 2 photos: the top pair
    # in terminal columns (a Chinese character is two wide): the bin table's right-aligned rows end together,
    # the confused pairs' last column (left-aligned) starts at one column
    assert len({display_width(line) for line in bins}) == 1, bins
    assert len({display_width(line[:line.rindex(" ") + 1]) for line in confused}) == 1, confused


class _Predicts:
    """What evaluate() calls on a model: predict(sequence) -> fixed probabilities."""

    def __init__(self, probs):
        self.probs = probs

    def predict(self, sequence, verbose=0):
        return self.probs


def _photos(folder, labels):
    from support.datagen import make_image

    paths = []
    for i, label in enumerate(labels):
        paths.append(str(folder / f"{i}.jpg"))
        make_image(int(label), np.random.default_rng(i), (120, 90)).save(paths[-1])
    return paths


def test_evaluate_fits_the_calibration(tmp_path):
    """evaluate() as train.py calls it (the temperature fitted on the validation photos): the figures,
    report.txt and both pictures. (--test_only's, with the model's calibration: tests/test_train.py.)"""
    from types import SimpleNamespace

    from tools.calibration import expected_calibration_error
    from tools.training.report import evaluate

    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (60, 6))
    logits[np.arange(60), np.arange(60) % 6] += 2
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = (truth.cumsum(axis=1) > rng.random((60, 1))).argmax(axis=1)
    probs = np.exp(3 * logits) / np.exp(3 * logits).sum(axis=1, keepdims=True)  # over-confident: 3 x the logits
    seq = SimpleNamespace(labels=labels, order=np.arange(60), paths=_photos(tmp_path, labels), count=60)
    r = evaluate(_Predicts(probs), seq, NAMES, str(tmp_path / "val"), target_accuracy=0.8)
    c = r["calibration"]
    assert c["fitted"] and c["temperature"] > 1.5 and c["ece_after"] < c["ece_before"]
    assert c["target_accuracy"] == 0.8 and c["target_reached"] and c["accuracy_answered"] >= 0.8
    assert c["ece_before"] == pytest.approx(expected_calibration_error(probs, labels))
    for name in ("report.json", "report.txt", "confusion_matrix.png", "reliability.png", "top_losses.png"):
        assert os.path.getsize(tmp_path / "val" / name) > 10_000 or name.startswith("report"), name
    text = (tmp_path / "val" / "report.txt").read_text(encoding="utf-8")
    assert "calibration (temperature and threshold fitted on these photos)" in text and f"ECE after                {c['ece_after']:.4f}" in text
    assert f"threshold                {c['threshold']:.4f}" in text and "coverage" in text
    assert np.asarray(json.load(open(tmp_path / "val" / "report.json"))["confusion_matrix"]).sum() == 60


def test_history_ticks_are_whole_epochs_and_the_confusion_matrix_says_what_it_shows(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from tools.training.report import plot_confusion_matrix

    saved = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (saved.append(fig), original(fig, *a, **k))[1])
    rows = [{"epoch": i, "loss": 2 - i / 5, "val_loss": 2.1 - i / 5, "accuracy": i / 4} for i in range(1, 4)]
    plot_history(rows, str(tmp_path / "h.png"))
    for ax in saved[0].axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert [line.get_xdata()[0] for line in saved[0].axes[0].lines[:1]] == [1]  # epochs count from 1
    plot_confusion_matrix(np.eye(6, dtype=int) * 3, NAMES, str(tmp_path / "cm.png"))
    ax = saved[1].axes[0]
    assert "numbers are photos" in ax.get_title() and "colour" in ax.get_title()
    assert "share" in saved[1].axes[1].get_ylabel()
