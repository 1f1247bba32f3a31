"""report.json figures on a case worked out by hand, and the plots."""

import glob
import os

import numpy as np
import pytest

from tools.plots import find_cjk_font
from tools.training.report import classification_report, plot_history, write_report

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
