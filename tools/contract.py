"""The model's contract with everything that uses it, in one place.

train.py writes a model folder (best.h5 + labels.json); predict.py, server.py, tools/export.py and
train.py --test_only read it. What a model folder holds, where it is by default, how a photo is
sized and cropped for it and how a class name maps to its bin are decided here and nowhere else.
"""

import json
import os

from models.preprocess import CONTRACT

#: Where train.py writes and where predict.py / server.py / export look by default.
OUTPUT_DIR = "./output/"
MODEL_FILE = "best.h5"
LABELS_FILE = "labels.json"
DEFAULT_MODEL = os.path.join("output", MODEL_FILE)

#: Test-time crops a prediction may average over: the centre, + 4 corners, + their mirror images.
CROP_CHOICES = (1, 5, 10)
DEFAULT_CROPS = 5


class ModelFilesError(OSError):
    """A model folder is incomplete or holds something train.py did not write (message says which)."""


def resize_size(input_size):
    """Shorter side before cropping: 256 for 224, scaled alike for other sizes (the 256/224 rule)."""
    return int(round(input_size * 256 / 224))


def bin_of(name):
    """The bin ("可回收物", ...) of a "category/name" class name; the whole name when it has no "/"."""
    return name.split("/", 1)[0]


def labels_path(model_path):
    """labels.json beside a model file."""
    return os.path.join(os.path.dirname(os.path.abspath(model_path)), LABELS_FILE)


def write_labels(output_dir, class_names, input_size):
    """labels.json: the class list (index = model output), input size and preprocessing contract."""
    with open(os.path.join(output_dir, LABELS_FILE), "w", encoding="utf-8") as f:
        json.dump({"labels": list(class_names), "input_size": input_size, "preprocessing": CONTRACT}, f,
                  ensure_ascii=False, indent=1)


def load_labels(model_path):
    """(class names, the whole labels.json dict) of the model at model_path; ModelFilesError if absent or bad."""
    path = labels_path(model_path)
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        return meta["labels"], meta
    except FileNotFoundError:
        why = f"train.py writes it next to {MODEL_FILE}"
        raise ModelFilesError(f"no {LABELS_FILE} beside {model_path} ({why})") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ModelFilesError(f"{path} is not a labels file written by train.py ({e})") from None
