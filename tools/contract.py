"""The model's contract with everything that uses it, in one place.

train.py writes a model folder (best.h5 + labels.json); predict.py, server.py, tools/export.py and
train.py --test_only read it. What a model folder holds, where it is by default, how a photo is
sized and cropped for it, what it takes as input and how a class name maps to its bin are decided
here and nowhere else.

Input contracts (labels.json "input"), one per generation of best.h5:
- PIXELS ("rgb_uint8"), written since the model took pixels: uint8 RGB crops (N, S, S, 3), 0-255;
  the model does the "caffe" preprocessing ("preprocessing" in labels.json) in its first layers.
- CAFFE ("caffe_float32"), every labels.json written before (they have no "input" key): float32
  crops already preprocessed by the caller (`models.preprocess.preprocess_input`: RGB -> BGR, minus
  the ImageNet means). Such models keep loading and predicting: tools/model_loading.py, the one
  module that tells the two apart, puts the pixel preprocessing in front of them when they are
  loaded, so every consumer holds a model of pixels.

Calibration (labels.json "temperature", "threshold", "target_accuracy"), added by train.py once the
model is scored on its validation photos (tools/calibration.py): the temperature every consumer
applies to the averaged probabilities, the "not sure" threshold chosen for the target accuracy.
labels.json files without them mean T 1 and the default threshold: older models predict as before.
"""

import json
import os

from models.preprocess import CONTRACT
from tools.errors import GarbageError
from tools.files import write_json_atomic

#: Where train.py writes and where predict.py / server.py / export look by default.
OUTPUT_DIR = "./output/"
MODEL_FILE = "best.h5"
LABELS_FILE = "labels.json"
DEFAULT_MODEL = os.path.join("output", MODEL_FILE)

#: Test-time crops a prediction may average over: the centre, + 4 corners, + their mirror images.
CROP_CHOICES = (1, 5, 10)
DEFAULT_CROPS = 5

#: labels.json "input": what the model takes (see the module docstring).
PIXELS = "rgb_uint8"
CAFFE = "caffe_float32"
#: Input contract -> dtype of the model's input tensor.
INPUT_DTYPES = {PIXELS: "uint8", CAFFE: "float32"}
#: labels.json calibration keys (see the module docstring), each with what a valid value is; absent in older files.
CALIBRATION_RULES = {"temperature": ("a number > 0", lambda v: 0 < v < float("inf")),
                     "threshold": ("a number in 0..1", lambda v: 0 <= v <= 1),
                     "target_accuracy": ("a number in (0, 1]", lambda v: 0 < v <= 1)}


class ModelFilesError(GarbageError, OSError):
    """A model folder is incomplete or holds something train.py did not write (message says which)."""


def resize_size(input_size):
    """Shorter side before cropping: 256 for 224, scaled alike for other sizes (the 256/224 rule)."""
    return int(round(input_size * 256 / 224))


def bin_of(name):
    """The bin ("可回收物", ...) of a "category/name" class name; the whole name when it has no "/"."""
    return name.split("/", 1)[0]


def item_of(name):
    """The item ("易拉罐", ...) of a "category/name" class name; the whole name when it has no "/"."""
    return name.split("/", 1)[-1]


def model_file(path):
    """The model file `path` names: the path itself, or the MODEL_FILE inside when it is a model folder
    (the output folder train.py's last line names)."""
    return os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path


def labels_path(model_path):
    """labels.json beside a model file."""
    return os.path.join(os.path.dirname(os.path.abspath(model_path)), LABELS_FILE)


def _write_labels_file(output_dir, meta):
    """labels.json through a temporary file and an atomic rename: a kill never leaves half a file."""
    write_json_atomic(os.path.join(output_dir, LABELS_FILE), meta, indent=1)


def write_labels(output_dir, class_names, input_size):
    """labels.json: the class list (index = model output), input size, input contract (PIXELS: the
    model takes uint8 RGB pixels) and the preprocessing the model does inside (CONTRACT)."""
    _write_labels_file(output_dir, {"labels": list(class_names), "input_size": input_size, "input": PIXELS,
                                    "preprocessing": CONTRACT})


def write_exported_labels(output_dir, meta):
    """labels.json beside an exported model: `meta` (the model's labels.json dict) with input PIXELS,
    which every export takes (a model of the older contract is exported with the pixel layers in front)."""
    _write_labels_file(output_dir, {**meta, "input": PIXELS})


def write_calibration(output_dir, temperature, threshold, target_accuracy):
    """Add the calibration train.py fitted (see the module docstring) to the labels.json in `output_dir`."""
    with open(os.path.join(output_dir, LABELS_FILE), encoding="utf-8") as f:
        meta = json.load(f)
    meta.update(zip(CALIBRATION_RULES, map(float, (temperature, threshold, target_accuracy))))
    _write_labels_file(output_dir, meta)


def calibration_of(meta, source=LABELS_FILE):
    """{"temperature", "threshold", "target_accuracy"} of a labels.json dict: temperature 1.0 and None
    for the others where absent (files written before). ModelFilesError for a value out of range
    (`source` names the file in the message)."""
    out = {"temperature": 1.0, "threshold": None, "target_accuracy": None}
    for key, (rule, ok) in CALIBRATION_RULES.items():
        if key not in meta:
            continue
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            raise ModelFilesError(f"{source} says {key}={value!r}, which is not {rule}")
        out[key] = float(value)
    return out


def input_contract(meta, source=LABELS_FILE):
    """PIXELS or CAFFE: the "input" of a labels.json dict; CAFFE when the key is absent (written before
    models took pixels). ModelFilesError for any other value (`source` names the file in the message)."""
    value = meta.get("input", CAFFE)
    if not isinstance(value, str) or value not in INPUT_DTYPES:
        raise ModelFilesError(f"{source} says input={value!r}, which this version does not know (expected "
                              f"{PIXELS!r} or {CAFFE!r}; a newer train.py wrote it?)")
    return value


def load_labels(model_path):
    """(class names, the whole labels.json dict) of the model at model_path; ModelFilesError if absent or bad."""
    path = labels_path(model_path)
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        labels = meta["labels"]
    except FileNotFoundError:
        why = f"train.py writes it next to {MODEL_FILE}"
        raise ModelFilesError(f"no {LABELS_FILE} beside {model_path} ({why})") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ModelFilesError(f"{path} is not a labels file written by train.py ({e})") from None
    input_contract(meta, path)  # an unknown contract or a bad calibration is refused here, before any model is loaded
    calibration_of(meta, path)
    return labels, meta
