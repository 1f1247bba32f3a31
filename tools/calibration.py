"""Calibrated probabilities: temperature scaling, the expected calibration error, and the "not sure"
threshold chosen for a target accuracy.

Why: a network trained with label smoothing and dropout is seldom calibrated (its 0.8 may be right
60 % or 95 % of the time), so a fixed "not sure below 0.5" meant something else for every model.
Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks") fits one scalar T
on the validation predictions: p' = softmax(log p / T) keeps every ranking (the answer and the
top-k stay) and only makes the probabilities honest. The threshold is then the lowest calibrated
top-1 probability at which the answered photos reach the target accuracy.

train.py fits both (tools/training/report.evaluate) and stores them in labels.json
(tools.contract.write_calibration); tools/inference.Classifier applies them to every photo, after
averaging its crops. numpy only at import: the Classifier runs without TensorFlow or scipy's import
cost; fitting imports scipy (a dependency of scikit-learn).
"""

import numpy as np

from tools.errors import UsageError

#: Equal-width confidence bins of the expected calibration error (Guo et al.'s 15).
ECE_BINS = 15
#: train.py --target_accuracy: the share of answered photos that should be right.
DEFAULT_TARGET_ACCURACY = 0.9
#: "Not sure" below this top probability for a model whose labels.json has no threshold.
DEFAULT_THRESHOLD = 0.5
#: predict.py's and server.py's --threshold.
THRESHOLD_HELP = ("the calibrated top probability, 0..1, below which an answer is marked 'not sure' (default: the "
                  "one train.py chose for its --target_accuracy, kept in labels.json; "
                  f"{DEFAULT_THRESHOLD} for a model without one)")
#: Range searched for T: far beyond what a trained network needs either way.
TEMPERATURE_RANGE = (0.01, 100.0)
#: Softmax outputs of float32 models that underflowed to 0 count as this before the log.
_TINY = float(np.finfo(np.float32).tiny)


def apply_temperature(probs, temperature):
    """softmax(log p / T) along the last axis of probabilities `probs`; `probs` itself for T 1 (a
    model without a temperature predicts exactly as before)."""
    if temperature <= 0 or not np.isfinite(temperature):
        raise ValueError(f"`temperature` must be a finite number > 0. Received: temperature={temperature!r}")
    probs = np.asarray(probs, dtype=np.float64)
    if temperature == 1:
        return probs
    z = np.log(np.maximum(probs, _TINY)) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def negative_log_likelihood(probs, labels):
    """Mean -log p[true class] over the rows of `probs`."""
    probs = np.asarray(probs, dtype=np.float64)
    return float(-np.mean(np.log(np.maximum(probs[np.arange(len(probs)), np.asarray(labels)], _TINY))))


def fit_temperature(probs, labels):
    """The T that minimises the negative log-likelihood of softmax(log p / T) for true `labels`.

    The NLL is convex in 1/T, so a bounded scalar search over log T finds its one minimum. T stays 1
    when no T does better (e.g. every row the same distribution: T changes nothing there).
    """
    from scipy.optimize import minimize_scalar  # scipy comes with scikit-learn; only fitting needs it

    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    if len(probs) == 0:
        raise ValueError(f"`probs` must hold at least one prediction. Received: probs.shape={probs.shape}")

    def nll(log_t):
        return negative_log_likelihood(apply_temperature(probs, float(np.exp(log_t))), labels)

    low, high = np.log(TEMPERATURE_RANGE)
    best = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    temperature = float(np.exp(best.x))
    return temperature if nll(best.x) < nll(0.0) - 1e-12 else 1.0


def reliability_bins(probs, labels, bins=ECE_BINS):
    """Per equal-width bin of top-1 confidence, (0, 1/bins], ...: (photos, mean confidence, accuracy)
    arrays; mean and accuracy are NaN in an empty bin."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(which, weights=correct, minlength=bins) / count
    return count, mean_confidence, accuracy


def expected_calibration_error(probs, labels, bins=ECE_BINS):
    """ECE of the top-1 answer: sum over confidence bins of |accuracy - mean confidence| x share of photos."""
    count, mean_confidence, accuracy = reliability_bins(probs, labels, bins)
    used = count > 0
    return float(np.sum(np.abs(accuracy[used] - mean_confidence[used]) * count[used]) / max(1, count.sum()))


def threshold_curve(confidence, correct, thresholds=None):
    """For each threshold t (default: each distinct top-1 confidence, ascending): t, the share of
    photos answered (confidence >= t) and the accuracy of those answered (NaN where none is)."""
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    order = np.argsort(confidence, kind="stable")
    ranked, right = confidence[order], correct[order]
    thresholds = np.unique(ranked) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    first = np.searchsorted(ranked, thresholds, side="left")
    answered = len(ranked) - first
    right_from = np.concatenate([np.cumsum(right[::-1])[::-1], [0.0]])  # right answers from index i on
    with np.errstate(invalid="ignore", divide="ignore"):
        return thresholds, answered / len(ranked), right_from[first] / answered


def choose_threshold(confidence, correct, target_accuracy):
    """The lowest top-1 confidence at which the photos at or above it are right at least
    `target_accuracy` of the time; 1.0 (only certain answers) when no threshold gets there."""
    if not 0 < target_accuracy <= 1:
        raise ValueError(f"`target_accuracy` must be in (0, 1]. Received: target_accuracy={target_accuracy!r}")
    thresholds, _, accuracy = threshold_curve(confidence, correct)
    reached = np.flatnonzero(accuracy >= target_accuracy - 1e-12)
    return float(thresholds[reached[0]]) if len(reached) else 1.0


def answered_at(confidence, correct, threshold):
    """(coverage: the share of photos with confidence >= threshold, their accuracy or None if none)."""
    confidence, correct = np.asarray(confidence), np.asarray(correct)
    answered = confidence >= threshold
    accuracy = float(np.mean(correct[answered])) if answered.any() else None
    return float(np.mean(answered)) if len(answered) else 0.0, accuracy


def check_threshold(threshold):
    """UsageError unless `threshold` (--threshold) is None (the model's own) or a probability."""
    if threshold is not None and not 0 <= threshold <= 1:
        raise UsageError(f"--threshold is a probability, from 0 to 1, not {threshold:g}")


def threshold_in_use(override=None, stored=None):
    """The threshold in use: the user's (--threshold), else the model's (labels.json), else DEFAULT_THRESHOLD."""
    for value in (override, stored):
        if value is not None:
            return float(value)
    return DEFAULT_THRESHOLD


def calibration_figures(probs, labels, temperature, threshold, target_accuracy=None):
    """report.json's "calibration": the ECE before (T 1) and after `temperature`, and the coverage and
    accuracy of the answered photos at `threshold` (on the calibrated probabilities)."""
    calibrated = apply_temperature(probs, temperature)
    confidence, correct = calibrated.max(axis=1), calibrated.argmax(axis=1) == np.asarray(labels)
    coverage, accuracy = answered_at(confidence, correct, threshold)
    reached = None if target_accuracy is None else accuracy is not None and accuracy >= target_accuracy - 1e-12
    return {"temperature": float(temperature), "ece_before": expected_calibration_error(probs, labels),
            "ece_after": expected_calibration_error(calibrated, labels), "threshold": float(threshold),
            "target_accuracy": target_accuracy, "coverage": coverage, "accuracy_answered": accuracy,
            "target_reached": reached,
            "nll_before": negative_log_likelihood(probs, labels),
            "nll_after": negative_log_likelihood(calibrated, labels), "bins": ECE_BINS}


def fit_calibration(probs, labels, target_accuracy=DEFAULT_TARGET_ACCURACY):
    """T fitted on (probs, labels), the threshold chosen on the calibrated probabilities for
    `target_accuracy`, and calibration_figures for both."""
    temperature = fit_temperature(probs, labels)
    calibrated = apply_temperature(probs, temperature)
    threshold = choose_threshold(calibrated.max(axis=1), calibrated.argmax(axis=1) == np.asarray(labels),
                                 target_accuracy)
    return calibration_figures(probs, labels, temperature, threshold, target_accuracy)
