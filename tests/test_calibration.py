"""Calibration: temperature scaling, ECE and the threshold for a target accuracy on synthetic predictions
whose true calibration is known; labels.json's calibration keys; every consumer applying them alike
(Classifier for predict.py and server.py, evaluate for train.py and --test_only); older labels.json
files answering exactly as before."""

import json
import os
import shutil

import numpy as np
import pytest

from tools.calibration import (apply_temperature, choose_threshold, expected_calibration_error, fit_calibration,
                               fit_temperature, threshold_curve, threshold_in_use)
from tools.contract import ModelFilesError, calibration_of, load_labels, write_calibration, write_labels


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _synthetic(true_temperature, n=20000, k=6, seed=0):
    """(the model's probabilities softmax(z), labels drawn from softmax(z / true_temperature), those true
    probabilities): a model off by exactly that temperature."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, (n, k))
    truth = _softmax(z / true_temperature)
    labels = (truth.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return _softmax(z), labels, truth


@pytest.mark.parametrize("true_temperature", [2.5, 0.5])  # over-confident, under-confident
def test_temperature_fitted_on_synthetic_logits_recovers_the_known_one(true_temperature):
    probs, labels, _ = _synthetic(true_temperature)
    fitted = fit_temperature(probs, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    before, after = expected_calibration_error(probs, labels), expected_calibration_error(
        apply_temperature(probs, fitted), labels)
    assert before > 0.1 and after < 0.02, (before, after)


def test_ece_of_a_perfectly_calibrated_set_is_about_zero():
    _, labels, truth = _synthetic(1.7, seed=3)  # the labels are drawn from exactly these probabilities
    assert expected_calibration_error(truth, labels) < 0.015
    # hand-worked: 4 photos in two bins, 0.95 (right), 0.95 (wrong) -> |0.5 - 0.95| x 2/4; 0.35, 0.35 (both wrong) -> 0.35 x 2/4
    probs = np.array([[0.95, 0.05, 0.0], [0.95, 0.05, 0.0], [0.35, 0.33, 0.32], [0.35, 0.33, 0.32]])
    assert expected_calibration_error(probs, np.array([0, 1, 1, 2])) == pytest.approx(0.45 * 0.5 + 0.35 * 0.5)


def test_temperature_keeps_every_ranking_and_1_changes_nothing():
    probs, _, _ = _synthetic(2.0, n=200)
    for t in (0.3, 3.0):
        out = apply_temperature(probs, t)
        np.testing.assert_allclose(out.sum(axis=1), 1)
        assert (np.argsort(out, axis=1) == np.argsort(probs, axis=1)).all()
    assert apply_temperature(probs, 1.0) is not None and (apply_temperature(probs, 1.0) == probs).all()
    with pytest.raises(ValueError, match="temperature=0"):
        apply_temperature(probs, 0)
    same = np.full((10, 4), 0.25)  # no temperature can do better on identical rows: it stays 1
    assert fit_temperature(same, np.arange(10) % 4) == 1.0


def test_threshold_is_the_lowest_that_meets_the_target_on_its_data():
    confidence, correct = np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 1, 0, 1])
    assert choose_threshold(confidence, correct, 0.75) == 0.6  # all 4 answered: 3 right
    assert choose_threshold(confidence, correct, 0.8) == 0.8  # at 0.7: 2 of 3; at 0.8: 2 of 2
    assert choose_threshold(confidence, np.zeros(4), 0.5) == 1.0  # never reached: only certain answers
    probs, labels, _ = _synthetic(2.0, n=3000, seed=5)
    c = fit_calibration(probs, labels, target_accuracy=0.7)  # 0.53 right in all
    calibrated = apply_temperature(probs, c["temperature"])
    conf, right = calibrated.max(axis=1), calibrated.argmax(axis=1) == labels
    answered = conf >= c["threshold"]
    assert c["accuracy_answered"] == pytest.approx(right[answered].mean()) and right[answered].mean() >= 0.7
    assert c["coverage"] == pytest.approx(answered.mean()) and 0.2 < c["coverage"] < 0.9 and c["target_reached"]
    thresholds, _, accuracy = threshold_curve(conf, right)
    assert (accuracy[thresholds < c["threshold"]] < 0.7).all()  # no lower threshold gets there
    with pytest.raises(ValueError, match="target_accuracy=1.5"):
        choose_threshold(conf, right, 1.5)


def test_labels_json_calibration_keys(tmp_path):
    write_labels(str(tmp_path), ["a/b", "c/d"], 32)
    meta = json.loads((tmp_path / "labels.json").read_text(encoding="utf-8"))
    assert calibration_of(meta) == {"temperature": 1.0, "threshold": None, "target_accuracy": None}  # older files
    write_calibration(str(tmp_path), 1.7, 0.62, 0.9)
    labels, meta = load_labels(str(tmp_path / "best.h5"))
    assert labels == ["a/b", "c/d"] and meta["input"] == "rgb_uint8"
    assert calibration_of(meta) == {"temperature": 1.7, "threshold": 0.62, "target_accuracy": 0.9}
    assert not [p for p in os.listdir(tmp_path) if p != "labels.json"], "no temporary file left"
    for key, bad in (("temperature", 0), ("temperature", "2"), ("threshold", 1.5), ("threshold", True),
                     ("target_accuracy", 0)):
        with pytest.raises(ModelFilesError, match=f"{key}={bad!r}") as e:
            calibration_of({**meta, key: bad})
        assert "\n" not in str(e.value)


# ------------------------------------------------------------- the consumers: Classifier (predict.py, server.py)
def _calibrated_copy(model_path, folder, **calibration):
    folder.mkdir()
    shutil.copy(model_path, folder / "best.h5")
    meta = json.load(open(os.path.join(os.path.dirname(model_path), "labels.json"), encoding="utf-8"))
    (folder / "labels.json").write_text(json.dumps({**meta, **calibration}, ensure_ascii=False), encoding="utf-8")
    return str(folder / "best.h5")


def test_an_older_labels_json_answers_exactly_as_before(tiny_model, photo_bytes):
    from tools.inference import Classifier

    clf = Classifier(tiny_model, crops=5)
    assert clf.temperature == 1.0 and clf.unsure_threshold == 0.5
    mean = clf.forward(clf.prepare(photo_bytes)).mean(axis=0)  # what the Classifier returned before calibration
    result = clf.predict_prepared([clf.prepare(photo_bytes)])[0]
    assert [t["probability"] for t in result["top_k"]] == [round(float(p), 6) for p in np.sort(mean)[::-1]]
    assert result["unsure"] == bool(mean.max() < 0.5)


def test_the_server_and_its_classifier_apply_the_stored_temperature_and_threshold(tiny_model, photo_bytes, tmp_path):
    """server.py's app (and the Classifier it shares with predict.py) on a model folder whose labels.json
    holds a calibration: /predict answers with the calibrated probabilities and the model's threshold."""
    from tools.serving.app import create_app, settings_from_env
    from tools.serving.model import _number_or_none

    path = _calibrated_copy(tiny_model, tmp_path / "m", temperature=3.0, threshold=0.3, target_accuracy=0.9)
    app = create_app({"MODEL": path, "CROPS": 5})
    holder = app.extensions["garbage_model"]
    assert holder.wait(), holder.detail
    clf = holder.classifier
    assert clf.temperature == 3.0 and clf.unsure_threshold == 0.3
    raw = clf.forward(clf.prepare(photo_bytes)).mean(axis=0)
    want = apply_temperature(raw, 3.0)  # the crops averaged first, then the temperature
    got = app.test_client().post("/predict", data=photo_bytes, content_type="image/jpeg").json
    assert got["label"] == int(raw.argmax()) and not np.allclose(want, raw, atol=1e-3)
    assert [t["probability"] for t in got["top_k"]] == pytest.approx(np.sort(want)[::-1], abs=1e-6)
    assert sum(got["bins"].values()) == pytest.approx(1, abs=1e-4)
    assert got["unsure"] == bool(want.max() < 0.3)
    # --threshold (predict.py, server.py) / GARBAGE_UNSURE_THRESHOLD reach the Classifier as unsure_threshold, and win
    assert _number_or_none(settings_from_env({"GARBAGE_UNSURE_THRESHOLD": "0.6"})["UNSURE_THRESHOLD"]) == 0.6
    assert _number_or_none(None) is None and _number_or_none("") is None
    assert threshold_in_use(0.6, 0.3) == 0.6 and threshold_in_use(None, 0.3) == 0.3 and threshold_in_use() == 0.5
    bad = _calibrated_copy(tiny_model, tmp_path / "bad", temperature=-1)
    with pytest.raises(ModelFilesError, match="temperature=-1"):
        load_labels(bad)  # before any model is loaded: the Classifier and --test_only refuse it in one line


def test_server_refuses_a_threshold_outside_0_to_1(cli, tiny_model):
    r = cli("server.py", "--model", tiny_model, "--threshold", "5")
    assert r.returncode == 2 and r.stderr.strip() == "error: --threshold is a probability, from 0 to 1, not 5"


def test_train_refuses_a_target_accuracy_outside_0_to_1(cli, tiny_data, tmp_path):
    r = cli("train.py", "--data_dir", tiny_data, "--output_dir", tmp_path, "--target_accuracy", "0")
    assert r.returncode == 2 and "--target_accuracy must be in (0, 1], got 0.0" in r.stderr
    assert "Traceback" not in r.stderr
