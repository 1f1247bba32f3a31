"""tools.export: SavedModel, TFLite (float and int8) and ONNX, each checked against the Keras model; uint8
pixel input, for today's models and for best.h5 files of the old contract (adapted when loaded)."""

import json
import os
import re
import shutil

import numpy as np
import pytest


FORMATS = [("savedmodel", "saved_model"), ("tflite", "model.tflite"), ("onnx", "model.onnx")]
PARITY = re.compile(r"max abs diff ([0-9.e+-]+), top-1 agreement ([0-9.]+)%")
#: The least top-1 agreement (%) of the int8 TFLite model with the Keras model on the 16 parity photos: 2
#: may differ (measured: 15 of 16 agree, 93.8 %).
INT8_AGREEMENT = 87.5
#: Photos of tiny_data of the classes 0, 1, 2, 3 (make_txt_dataset: 12 a class, in class order).
KNOWN = {0: 0, 13: 1, 26: 2, 39: 3}


@pytest.fixture(scope="module")
def parity_classes(tiny_model):
    """tiny_model's classes on the generated photos of the exports' parity check: they differ, so a top-1
    agreement of 100 % says the export answers as the model does, not only that both always answer alike."""
    from models.saving import load_model
    from tools.export import sample_inputs

    return np.asarray(load_model(tiny_model)(sample_inputs(32), training=False)).argmax(1)


def _known_crops(tiny_data):
    from tools.images import load_image_file

    return np.stack([load_image_file(os.path.join(tiny_data, f"img_{i}.jpg"), 32) for i in KNOWN])


@pytest.fixture(scope="module")
def exports(tiny_model, tmp_path_factory):
    """Each format exported once (each export is a process that loads TensorFlow): {fmt: (run, folder)}."""
    from support.scripts import run_cli

    done = {}

    def get(fmt):
        if fmt not in done:
            out = tmp_path_factory.mktemp(f"export_{fmt}")
            done[fmt] = run_cli("-m", "tools.export", "--model", tiny_model, "--format", fmt, "--out", out), out
        return done[fmt]
    return get


@pytest.mark.parametrize("fmt,artifact", FORMATS)
def test_export_matches_the_keras_model(exports, parity_classes, fmt, artifact):
    r, out = exports(fmt)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    m = PARITY.search(r.stdout)
    assert m and float(m.group(1)) < 1e-4 and float(m.group(2)) == 100.0, r.stdout
    assert len(set(parity_classes.tolist())) >= 3, parity_classes
    assert (out / artifact).exists()
    contract = json.load(open(out / "preprocessing.json", encoding="utf-8"))
    assert contract["input"]["shape"] == [None, 32, 32, 3] and contract["input"]["dtype"] == "uint8"
    assert contract["input"]["contract"] == "rgb_uint8" and contract["input"]["channel_order"] == "RGB"
    assert contract["input"]["preprocessing"]["mode"] == "caffe"
    assert contract["input"]["preprocessing"]["where"].startswith("inside the model")
    assert contract["labels"] == json.load(open(out / "labels.json", encoding="utf-8"))["labels"]
    assert contract["output"]["temperature"] == 1.0  # tiny_model's labels.json has none


def test_a_tflite_model_applies_the_temperature_of_its_labels_json(exports, photo_bytes, tmp_path):
    """The .tflite path of the Classifier (predict.py, server.py) calibrates as the Keras path does."""
    from tools.calibration import apply_temperature
    from tools.inference import Classifier

    r, out = exports("tflite")
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.load(open(out / "labels.json", encoding="utf-8"))
    (tmp_path / "labels.json").write_text(json.dumps({**meta, "temperature": 2.5, "threshold": 0.2}), encoding="utf-8")
    shutil.copy(out / "model.tflite", tmp_path / "model.tflite")
    lite = Classifier(str(tmp_path / "model.tflite"), crops=5)
    assert lite.temperature == 2.5 and lite.unsure_threshold == 0.2
    raw = lite.forward(lite.prepare(photo_bytes)).mean(axis=0)
    want = apply_temperature(raw, 2.5)  # the crops averaged, then the temperature
    assert not np.allclose(want, raw, atol=1e-4)
    got = lite.predict_bytes(photo_bytes)
    assert [t["probability"] for t in got["top_k"]] == pytest.approx(np.sort(want)[::-1], abs=1e-6)
    assert got["unsure"] == bool(want.max() < 0.2)


def test_an_old_contract_model_still_exports(cli, old_model, parity_classes, tmp_path):
    from models.preprocess import CONTRACT
    from tools.inference import Classifier
    from tools.model_loading import TFLiteModel

    out = tmp_path / "export"
    r = cli("-m", "tools.export", "--model", old_model, "--format", "tflite", "--out", out)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    m = PARITY.search(r.stdout)
    assert m and float(m.group(1)) < 1e-4 and float(m.group(2)) == 100.0, r.stdout
    assert len(set(parity_classes.tolist())) >= 3  # the same weights: the same differing classes
    contract = json.load(open(out / "preprocessing.json", encoding="utf-8"))
    assert contract["input"]["dtype"] == "uint8" and contract["input"]["contract"] == "rgb_uint8"
    assert contract["input"]["preprocessing"] == {**CONTRACT, "where": "inside the model: feed the RGB pixels as they are"}
    assert TFLiteModel(str(out / "model.tflite")).input_dtype == "uint8"  # the pixel layers were put in front
    assert json.load(open(out / "labels.json", encoding="utf-8"))["input"] == "rgb_uint8"  # so says its labels.json
    assert Classifier(str(out / "model.tflite")).input == "rgb_uint8"  # and the two files load together


def test_int8_tflite_is_smaller_and_reports_agreement(cli, tiny_model, tiny_data, tmp_path):
    from tools.model_loading import TFLiteModel

    out = tmp_path / "export"
    r = cli("-m", "tools.export", "--model", tiny_model, "--format", "tflite", "--int8", "--data_dir", tiny_data,
            "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    m = PARITY.search(r.stdout)
    assert m and float(m.group(2)) >= INT8_AGREEMENT, r.stdout
    size = os.path.getsize(out / "model_int8.tflite")
    assert size < os.path.getsize(tiny_model) / 2.5  # ~4x smaller than float32 weights
    lite = TFLiteModel(str(out / "model_int8.tflite"))  # quantised inside; still takes uint8 pixels
    assert lite.input_dtype == np.uint8
    probs = lite.predict_on_batch(_known_crops(tiny_data))
    assert probs.shape == (4, 4) and np.allclose(probs.sum(1), 1, atol=0.05)
    assert probs.argmax(1).tolist() == list(KNOWN.values())  # each photo's class, quantised too
    with pytest.raises(ValueError, match="takes uint8 pixels"):
        lite.predict_on_batch(np.zeros((1, 32, 32, 3), np.float32))  # never silently truncated
    r = cli("-m", "tools.export", "--model", tiny_model, "--format", "onnx", "--int8", "--out", out)
    assert r.returncode == 2 and "--int8 applies to --format tflite" in r.stderr


def test_predict_runs_a_tflite_model_without_tensorflow_or_keras(cli, exports, tiny_model, tiny_data, tmp_path):
    r, out = exports("tflite")
    assert r.returncode == 0, r.stderr[-3000:]
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    for name in ("tensorflow", "keras"):
        (blocker / f"{name}.py").write_text(f'raise ImportError("{name} is blocked in this test")\n')
    photos = [os.path.join(tiny_data, f"img_{i}.jpg") for i in KNOWN]
    lite = cli("predict.py", *photos, "--model", out / "model.tflite", "--json", env={"PYTHONPATH": str(blocker)})
    assert lite.returncode == 0, lite.stderr[-3000:]
    full = cli("predict.py", *photos, "--model", tiny_model, "--json")
    a = [json.loads(l) for l in lite.stdout.splitlines() if l.startswith("{")]
    b = [json.loads(l) for l in full.stdout.splitlines() if l.startswith("{")]
    assert len(a) == len(b) == 4 and [x["label"] for x in a] == list(KNOWN.values())
    for x, y in zip(a, b):
        assert x["label"] == y["label"] and abs(x["probability"] - y["probability"]) < 1e-4


def test_an_export_that_disagrees_with_the_model_is_exit_1(exports, tiny_model, tmp_path, monkeypatch, capsys):
    """The parity check's guard, on an export that really answers otherwise: tiny_model's TFLite export
    (made by the `exports` fixture) checked against tiny_model with its classes moved by one (the last
    layer's columns rolled): the two give every parity photo different classes. A float32 export that
    disagrees with the Keras model is exit 1, with one error line."""
    from models.saving import load_model, save_model_atomic
    from tools import export

    r, out = exports("tflite")
    assert r.returncode == 0, r.stderr[-3000:]
    model = load_model(tiny_model)
    kernel, bias = model.get_layer("head_logits").get_weights()
    model.get_layer("head_logits").set_weights([np.roll(kernel, 1, axis=1), np.roll(bias, 1)])
    moved = tmp_path / "moved"
    save_model_atomic(model, str(moved / "best.h5"))
    shutil.copy(os.path.join(os.path.dirname(tiny_model), "labels.json"), moved / "labels.json")
    monkeypatch.setattr(export, "export", lambda *args, **kwargs: str(out / "model.tflite"))
    assert export.main(["--model", str(moved / "best.h5"), "--format", "tflite", "--out", str(tmp_path / "x")]) == 1
    printed = capsys.readouterr()
    m = PARITY.search(printed.out)
    assert m and float(m.group(2)) == 0.0, printed.out
    assert printed.err.strip() == "error: the float32 export disagrees with the Keras model on some photos"


def test_export_errors_are_one_line(cli, tmp_path, tiny_model):
    r = cli("-m", "tools.export", "--model", tmp_path / "none.h5", "--format", "onnx")
    assert r.returncode == 2 and "no model" in r.stderr and "Traceback" not in r.stderr
    bare = tmp_path / "m"
    bare.mkdir()
    shutil.copy(tiny_model, bare / "best.h5")  # no labels.json beside it
    r = cli("-m", "tools.export", "--model", bare / "best.h5", "--format", "tflite", "--out", tmp_path / "o")
    assert r.returncode == 2 and "labels.json" in r.stderr and "Traceback" not in r.stderr
    from support.old_contract import write_old_labels

    write_old_labels(str(bare), ["a/b", "c/d", "e/f", "g/h"], 32)  # a pixels model beside an old labels.json
    r = cli("-m", "tools.export", "--model", bare / "best.h5", "--format", "tflite", "--out", tmp_path / "o")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]  # (TensorFlow logs aside)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(errors) == 1 and "takes uint8 input" in errors[0] and "different models" in errors[0], r.stderr


def test_onnx_without_the_export_packages_names_the_file_to_install(tiny_model, tmp_path, monkeypatch, capsys):
    from tools import export

    monkeypatch.setitem(__import__("sys").modules, "tf2onnx", None)  # as in a lean install
    assert export.main(["--model", tiny_model, "--format", "onnx", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --format onnx needs tf2onnx: pip install -r requirements-export.txt"
    assert not (tmp_path / "x").exists()
