"""One prediction core for predict.py and server.py: image bytes in, a result dict out.

The model is loaded once (with labels.json beside it) and every photo is judged on deterministic
crops — centre, centre + 4 corners, or those 5 and their mirror images — predicted in ONE batched
call and averaged. The original made 5 separate `model.predict` calls on random crops: random
answers for the same photo, and several times slower.

Result fields: label, name ("bin/item"), category (the bin), probability, top_k, bins (probability
summed per bin: a reliable bin even when the exact item is uncertain), unsure, time_ms.

Probabilities are calibrated: the crops' average goes through the temperature train.py fitted
(labels.json "temperature", tools/calibration.py), and `unsure` is true below the threshold it chose
for its target accuracy (labels.json "threshold") unless the caller gives one. A labels.json
without them means T 1 and a threshold of 0.5: such models answer exactly as before.

The model takes uint8 RGB crops and preprocesses them inside: tools.model_loading opens the model
folder, and adapts a best.h5 of the older contract to take pixels too.
"""

import os
import threading
import time

import numpy as np

from tools.calibration import apply_temperature, threshold_in_use
from tools.contract import CROP_CHOICES, DEFAULT_CROPS, LABELS_FILE, ModelFilesError, bin_of, calibration_of
from tools.images import MAX_PIXELS, load_resized
from tools.model_loading import open_model

#: Alternatives listed in a result.
DEFAULT_TOP_K = 5


def _check_crops(crops):
    if crops not in CROP_CHOICES:
        raise ValueError(f"`crops` must be one of {CROP_CHOICES}. Received: crops={crops!r}")


def crop_batch(arr, size, crops):
    """Deterministic crops of an HxWx3 array: (crops, size, size, 3) uint8."""
    _check_crops(crops)
    h, w = arr.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    boxes = [(top, left)]
    if crops >= 5:
        boxes += [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size)]
    out = [arr[y:y + size, x:x + size] for y, x in boxes]
    if crops == 10:
        out += [c[:, ::-1] for c in out]
    return np.stack(out)


class Classifier:
    """A loaded model + labels; `predict_bytes` is thread-safe.

    Args:
        model_path: a `.h5`/`.keras` model written by train.py, or a `.tflite` file from tools.export
            (labels.json beside either).
        crops: 1, 5 or 10 deterministic crops per photo, averaged.
        top_k: alternatives listed in each result.
        unsure_threshold: `unsure` is true when the top (calibrated) probability is below it; None: the
            model's labels.json "threshold", else tools.calibration.DEFAULT_THRESHOLD (0.5).
        max_pixels: pixel budget of one photo (tools.images.MAX_PIXELS): larger ones raise
            ImageTooLarge before they are decoded.
    """

    def __init__(self, model_path, crops=DEFAULT_CROPS, top_k=DEFAULT_TOP_K, unsure_threshold=None,
                 max_pixels=MAX_PIXELS):
        _check_crops(crops)
        if not os.path.isfile(model_path):
            raise ModelFilesError(f"no model at {model_path}; train one with train.py or pass --model")
        loaded = open_model(model_path)
        self.model, self.labels, self.meta = loaded.model, loaded.labels, loaded.meta
        n_out = int(self.model.output_shape[-1])
        if n_out != len(self.labels):
            raise ModelFilesError(f"{model_path} has {n_out} outputs but {LABELS_FILE} lists {len(self.labels)} "
                                  "classes")
        #: The input contract labels.json states (tools.model_loading.LoadedModel): which version wrote the
        #: files; the model takes uint8 crops either way.
        self.input = loaded.contract
        self.model_path = model_path
        self.input_size = int(self.model.input_shape[1])
        self.crops, self.top_k = crops, min(top_k, len(self.labels))
        calibration = calibration_of(self.meta)
        #: labels.json "temperature" (1.0 without one) applied to the crops' average.
        self.temperature = calibration["temperature"]
        self.unsure_threshold = threshold_in_use(unsure_threshold, calibration["threshold"])
        self.max_pixels = int(max_pixels)
        self.bins = sorted({bin_of(n) for n in self.labels})
        self._bin_index = np.array([self.bins.index(bin_of(n)) for n in self.labels])
        self._lock = threading.Lock()
        self.warm_up()

    def warm_up(self):
        """One call at the serving batch shape, so the first user does not pay for tracing."""
        self.forward(np.zeros((self.crops, self.input_size, self.input_size, 3), np.uint8))

    def forward(self, crops_uint8):
        """Probabilities for a stack of uint8 crops, one model call."""
        x = np.asarray(crops_uint8, dtype=np.uint8)
        with self._lock:
            return np.asarray(self.model.predict_on_batch(x), dtype=np.float64)

    def prepare(self, data):
        """Image bytes -> (crops, size, size, 3) uint8. Raises ImageDecodeError for bad input."""
        return crop_batch(load_resized(data, self.input_size, self.max_pixels), self.input_size, self.crops)

    def predict_prepared(self, batches):
        """Results for several prepared photos in one model call (used for folders and micro-batching)."""
        start = time.perf_counter()
        probs = self.forward(np.concatenate(batches))
        ms = (time.perf_counter() - start) * 1000
        out, i = [], 0
        for b in batches:
            out.append(self.result(apply_temperature(probs[i:i + len(b)].mean(axis=0), self.temperature), ms))
            i += len(b)
        return out

    def predict_bytes(self, data):
        """The whole job for one photo: bytes -> result dict (time_ms covers decoding too)."""
        start = time.perf_counter()
        result = self.predict_prepared([self.prepare(data)])[0]
        result["time_ms"] = round((time.perf_counter() - start) * 1000, 1)
        return result

    def result(self, probs, time_ms):
        order = np.argsort(-probs)
        top = [self._entry(int(i), probs[i]) for i in order[:self.top_k]]
        bins = np.bincount(self._bin_index, weights=probs, minlength=len(self.bins))
        return {**top[0], "top_k": top,
                "bins": {b: round(float(p), 6) for b, p in sorted(zip(self.bins, bins), key=lambda t: -t[1])},
                "unsure": bool(probs[order[0]] < self.unsure_threshold), "time_ms": round(time_ms, 1)}

    def _entry(self, label, p):
        name = self.labels[label]
        return {"label": label, "name": name, "category": bin_of(name), "probability": round(float(p), 6)}
