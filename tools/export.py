"""Export a trained model for TF Serving, phones/Raspberry Pi (TFLite) or ONNX runtimes, with a parity check.

    python -m tools.export --model output/best.h5 --format savedmodel --out export/
    python -m tools.export --model output/best.h5 --format tflite --out export/ --int8 --data_dir DIR
    python -m tools.export --model output/best.h5 --format onnx --out export/ --samples photos/

The exported model takes uint8 RGB pixels N x S x S x 3, 0-255, resized and centre-cropped, and does
the ImageNet "caffe" preprocessing (RGB -> BGR, minus the means) inside: the model as
tools.model_loading opens it (an older best.h5, whose labels.json has no "input", with the pixel
layers put in front). It returns class probabilities; `preprocessing.json` beside it states the
contract (dtype, where preprocessing happens) together with the class list. After exporting, the
tool runs the exported model and the Keras model on the same sample photos and reports the largest
absolute difference and the top-1 agreement; a float32 export that disagrees on any photo fails
(exit 1). An --int8 TFLite model keeps the uint8
pixel input (quantised inside) and is calibrated on uint8 crops of --data_dir.
TensorFlow is imported here, and only here: exporting is what it is for.

The functions are the library (export, parity, ...); main() is `python -m tools.export`.
"""

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile

import numpy as np

from models.preprocess import CONTRACT
from tools.contract import (DEFAULT_MODEL, INPUT_DTYPES, PIXELS, calibration_of, load_labels, resize_size,
                            write_exported_labels)
from tools.data.layout import load_dataset
from tools.errors import GarbageError, UsageError, guarded
from tools.images import is_image_file, load_image_file
from tools.model_loading import TFLiteModel, open_model
from tools.quiet import import_keras_quietly

FORMATS = ("savedmodel", "tflite", "onnx")


class ExportError(GarbageError):
    """Export or parity failure (the message says which)."""


def sample_inputs(model_input_size, samples=None, count=16, seed=0):
    """Model input for the photos in `samples` (a folder), or for generated photos: uint8 crops."""
    images = []
    if samples:
        paths = sorted(os.path.join(r, f) for r, _, fs in os.walk(samples) for f in fs if is_image_file(f))[:count]
        if not paths:
            raise ExportError(f"no images in {samples}")
        images = [load_image_file(p, model_input_size) for p in paths]
    else:
        rng = np.random.default_rng(seed)
        for _ in range(count):  # smooth colour fields + texture: photo-like, not uniform noise
            base = rng.uniform(0, 255, size=(4, 4, 3))
            big = np.kron(base, np.ones((model_input_size // 4 + 1, model_input_size // 4 + 1, 1)))
            noise = rng.normal(0, 20, big.shape)
            images.append(np.clip(big + noise, 0, 255)[:model_input_size, :model_input_size].astype(np.uint8))
    return np.stack(images)


def representative_data(data_dir, input_size, count=64, seed=0):
    """Calibration batches for int8 quantisation, taken from the training folder: uint8 crops."""
    ds = load_dataset(data_dir)
    chosen = np.random.default_rng(seed).choice(len(ds.paths), size=min(count, len(ds.paths)), replace=False)

    def gen():
        for i in chosen:
            yield [load_image_file(ds.paths[i], input_size)[None]]
    return gen


def export_savedmodel(model, out):
    path = os.path.join(out, "saved_model")
    if os.path.exists(path):
        shutil.rmtree(path)
    model.export(path, format="tf_saved_model", verbose=False)
    return path


def export_tflite(model, out, int8=False, data_dir=None):
    import tensorflow as tf  # the TFLite converter; heavy, and only exporting needs it

    with tempfile.TemporaryDirectory() as tmp:
        saved = export_savedmodel(model, tmp)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        if int8:
            if not data_dir:
                raise ExportError("--int8 needs --data_dir (the training folder) for calibration images")
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative_data(data_dir, int(model.input_shape[1]))
        blob = converter.convert()
    path = os.path.join(out, "model_int8.tflite" if int8 else "model.tflite")
    with open(path, "wb") as f:
        f.write(blob)
    return path


def export_onnx(model, out):
    path = os.path.join(out, "model.onnx")
    size = int(model.input_shape[1])
    model(np.zeros((1, size, size, 3), model.inputs[0].dtype))  # Keras exports to ONNX only a model that has run
    model.export(path, format="onnx", verbose=False)
    return path


def run_exported(fmt, path, x):
    """The exported model's outputs for the batch `x` (uint8 crops), run by its own runtime."""
    if fmt == "savedmodel":
        import tensorflow as tf  # heavy: only a SavedModel needs it here

        loaded = tf.saved_model.load(path)
        return np.asarray(loaded.serve(tf.constant(x)))
    if fmt == "tflite":
        return TFLiteModel(path).predict_on_batch(x)
    import onnxruntime as ort  # optional (requirements-export.txt)

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    return np.asarray(session.run(None, {feed.name: np.asarray(x, np.uint8)})[0])


def input_description(input_size):
    """preprocessing.json "input": what an exported model takes."""
    return {"contract": PIXELS, "shape": [None, input_size, input_size, 3], "dtype": INPUT_DTYPES[PIXELS],
            "resize_shorter_side": resize_size(input_size), "crop": "centre", "channel_order": "RGB",
            "value_range": [0, 255],
            "preprocessing": {**CONTRACT, "where": "inside the model: feed the RGB pixels as they are"}}


def write_contract(model_path, out, input_size, artifact, fmt):
    """labels.json (the model's, stating pixel input) and preprocessing.json (what the exported model takes and
    returns) into `out`."""
    labels, meta = load_labels(model_path)
    write_exported_labels(out, meta)
    contract = {"artifact": os.path.basename(artifact), "format": fmt,
                "input": input_description(input_size),
                "output": {"shape": [None, len(labels)], "meaning": "class probabilities (softmax)",
                           # labels.json's; what the Classifier does to the crops' average
                           "calibration": "softmax(log(p) / temperature)",
                           "temperature": calibration_of(meta)["temperature"]},
                "labels": labels}
    with open(os.path.join(out, "preprocessing.json"), "w", encoding="utf-8") as f:
        json.dump(contract, f, ensure_ascii=False, indent=1)


#: What each format needs beyond requirements.txt (requirements-export.txt installs them).
EXPORT_PACKAGES = {"onnx": ("tf2onnx", "onnxruntime")}


def missing_packages(fmt):
    """The optional packages --format `fmt` needs that cannot be imported here."""
    missing = []
    for name in EXPORT_PACKAGES.get(fmt, ()):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def export(model, model_path, fmt, out, int8=False, data_dir=None):
    """Write `model` (tools.model_loading.open_model(`model_path`)'s: it takes uint8 pixels) as `fmt` into the
    folder `out`, with labels.json and preprocessing.json beside it; returns the artifact's path. Raises
    ExportError."""
    if fmt == "savedmodel":
        artifact = export_savedmodel(model, out)
    elif fmt == "tflite":
        artifact = export_tflite(model, out, int8, data_dir)
    else:
        artifact = export_onnx(model, out)
    write_contract(model_path, out, int(model.input_shape[1]), artifact, fmt)
    return artifact


def parity(model, fmt, artifact, x):
    """(largest absolute difference, top-1 agreement) of the exported model against `model` on `x`."""
    reference = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    exported = np.asarray(run_exported(fmt, artifact, x), dtype=np.float64)
    return float(np.abs(exported - reference).max()), float(np.mean(exported.argmax(1) == reference.argmax(1)))


def size_mb(artifact):
    """Megabytes of an exported file, or of a folder (a SavedModel) with everything in it."""
    if not os.path.isdir(artifact):
        return os.path.getsize(artifact) / 1e6
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(artifact) for f in fs) / 1e6


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="model from train.py (default: %(default)s)")
    p.add_argument("--format", choices=FORMATS, required=True, help="what to export")
    p.add_argument("--out", default="export", help="output folder (default: %(default)s)")
    p.add_argument("--samples", help="folder of photos for the parity check (default: 16 generated photos)")
    p.add_argument("--int8", action="store_true", help="tflite: full-integer weights, calibrated on --data_dir")
    p.add_argument("--data_dir", help="training folder for --int8 calibration")
    return p


@guarded
def main(argv=None):
    args = get_args_parser().parse_args(argv)
    if args.int8 and args.format != "tflite":
        raise UsageError("--int8 applies to --format tflite only")
    if not os.path.isfile(args.model):
        raise UsageError(f"no model at {args.model}")
    missing = missing_packages(args.format)
    if missing:
        raise UsageError(f"--format {args.format} needs {' and '.join(missing)}: pip install -r requirements-export.txt")
    load_labels(args.model)  # the class list travels with the export: check before the slow part
    import_keras_quietly()
    model = open_model(args.model).model  # ModelFilesError, as load_labels: exit 2
    os.makedirs(args.out, exist_ok=True)
    artifact = export(model, args.model, args.format, args.out, args.int8, args.data_dir)  # ExportError
    x = sample_inputs(int(model.input_shape[1]), args.samples)
    diff, agree = parity(model, args.format, artifact, x)
    print(f"exported {artifact} ({size_mb(artifact):.1f} MB); parity on {len(x)} photos: max abs diff {diff:.2e}, "
          f"top-1 agreement {agree * 100:.1f}%")
    if agree < 1.0 and not args.int8:
        print("error: the float32 export disagrees with the Keras model on some photos", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
