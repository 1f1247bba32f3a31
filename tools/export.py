"""Export a trained model for TF Serving, phones/Raspberry Pi (TFLite) or ONNX runtimes, with a parity check.

    python -m tools.export --model output/best.h5 --format savedmodel --out export/
    python -m tools.export --model output/best.h5 --format tflite --out export/ --int8 --data_dir DIR
    python -m tools.export --model output/best.h5 --format onnx --out export/ --samples photos/

The exported model takes the PREPROCESSED input (float32, N x S x S x 3, BGR minus the ImageNet
means: Keras' "caffe" mode) and returns class probabilities; `preprocessing.json` beside it states
that contract together with the class list. After exporting, the tool runs the exported model and
the Keras model on the same sample photos and reports the largest absolute difference and the
top-1 agreement; a float32 export that disagrees on any photo fails (exit 1).
TensorFlow is imported here, and only here: exporting is what it is for.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

from tools.quiet import import_keras_quietly

FORMATS = ("savedmodel", "tflite", "onnx")


class ExportError(Exception):
    """Export or parity failure (the message says which)."""


def sample_inputs(model_input_size, samples=None, count=16, seed=0):
    """Preprocessed crops of the photos in `samples` (a folder), or of generated photos."""
    from tools.images import is_image_file, load_image_file
    from models.preprocess import preprocess_input

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
    return preprocess_input(np.stack(images))


def representative_data(data_dir, input_size, count=64, seed=0):
    """Calibration batches for int8 quantisation, taken from the training folder."""
    from tools.data.layout import load_dataset
    from tools.images import load_image_file
    from models.preprocess import preprocess_input

    ds = load_dataset(data_dir)
    chosen = np.random.default_rng(seed).choice(len(ds.paths), size=min(count, len(ds.paths)), replace=False)

    def gen():
        for i in chosen:
            yield [preprocess_input(load_image_file(ds.paths[i], input_size)[None])]
    return gen


def export_savedmodel(model, out):
    path = os.path.join(out, "saved_model")
    if os.path.exists(path):
        shutil.rmtree(path)
    model.export(path, format="tf_saved_model", verbose=False)
    return path


def export_tflite(model, out, int8=False, data_dir=None):
    import tensorflow as tf

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
    model(np.zeros((1, size, size, 3), np.float32))  # Keras exports to ONNX only a model that has run
    model.export(path, format="onnx", verbose=False)
    return path


def run_tflite(path, x):
    from tools.export_runtime import tflite_interpreter

    interpreter = tflite_interpreter(path)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for row in x:  # the converted graph has batch size 1
        interpreter.resize_tensor_input(inp["index"], (1, *row.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], row[None].astype(np.float32))
        interpreter.invoke()
        results.append(interpreter.get_tensor(out["index"])[0])
    return np.stack(results)


def run_exported(fmt, path, x):
    if fmt == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(path)
        return np.asarray(loaded.serve(tf.constant(x)))
    if fmt == "tflite":
        return run_tflite(path, x)
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0])


def write_contract(model_path, out, input_size, artifact, fmt):
    from tools.inference import load_labels
    from models.preprocess import CONTRACT

    labels, meta = load_labels(model_path)
    shutil.copy(os.path.join(os.path.dirname(os.path.abspath(model_path)), "labels.json"),
                os.path.join(out, "labels.json"))
    contract = {"artifact": os.path.basename(artifact), "format": fmt,
                "input": {"shape": [None, input_size, input_size, 3], "dtype": "float32",
                          "resize_shorter_side": int(round(input_size * 256 / 224)), "crop": "centre",
                          "preprocessing": CONTRACT},
                "output": {"shape": [None, len(labels)], "meaning": "class probabilities (softmax)"},
                "labels": labels}
    with open(os.path.join(out, "preprocessing.json"), "w", encoding="utf-8") as f:
        json.dump(contract, f, ensure_ascii=False, indent=1)


#: What each format needs beyond requirements.txt (requirements-export.txt installs them).
EXPORT_PACKAGES = {"onnx": ("tf2onnx", "onnxruntime")}


def missing_packages(fmt):
    """The optional packages --format `fmt` needs that cannot be imported here."""
    import importlib

    missing = []
    for name in EXPORT_PACKAGES.get(fmt, ()):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="output/best.h5", help="model from train.py (default: %(default)s)")
    p.add_argument("--format", choices=FORMATS, required=True, help="what to export")
    p.add_argument("--out", default="export", help="output folder (default: %(default)s)")
    p.add_argument("--samples", help="folder of photos for the parity check (default: 16 generated photos)")
    p.add_argument("--int8", action="store_true", help="tflite: full-integer weights, calibrated on --data_dir")
    p.add_argument("--data_dir", help="training folder for --int8 calibration")
    args = p.parse_args(argv)
    if args.int8 and args.format != "tflite":
        print("error: --int8 applies to --format tflite only", file=sys.stderr)
        return 2
    if not os.path.isfile(args.model):
        print(f"error: no model at {args.model}", file=sys.stderr)
        return 2
    missing = missing_packages(args.format)
    if missing:
        print(f"error: --format {args.format} needs {' and '.join(missing)}: "
              f"pip install -r requirements-export.txt", file=sys.stderr)
        return 2
    import_keras_quietly()
    from tools.inference import ModelFilesError, load_labels
    from models.saving import load_model

    try:
        load_labels(args.model)  # the class list travels with the export: check before the slow part
    except ModelFilesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model = load_model(args.model)
    size = int(model.input_shape[1])
    os.makedirs(args.out, exist_ok=True)
    try:
        if args.format == "savedmodel":
            artifact = export_savedmodel(model, args.out)
        elif args.format == "tflite":
            artifact = export_tflite(model, args.out, args.int8, args.data_dir)
        else:
            artifact = export_onnx(model, args.out)
        write_contract(args.model, args.out, size, artifact, args.format)
        x = sample_inputs(size, args.samples)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    reference = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    exported = np.asarray(run_exported(args.format, artifact, x), dtype=np.float64)
    diff = float(np.abs(exported - reference).max())
    agree = float(np.mean(exported.argmax(1) == reference.argmax(1)))
    size_mb = (sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(artifact) for f in fs)
               if os.path.isdir(artifact) else os.path.getsize(artifact)) / 1e6
    print(f"exported {artifact} ({size_mb:.1f} MB); parity on {len(x)} photos: max abs diff {diff:.2e}, "
          f"top-1 agreement {agree * 100:.1f}%")
    if agree < 1.0 and not args.int8:
        print("error: the float32 export disagrees with the Keras model on some photos", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
