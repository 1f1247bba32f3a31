"""The prediction core: deterministic crops, one batched call, the result fields; both input contracts
(uint8 pixels now, caffe-preprocessed float32 in best.h5 files from before)."""

import json
import os
import shutil

import numpy as np
import pytest

from tools.contract import ModelFilesError
from tools.images import ImageDecodeError
from tools.inference import Classifier, crop_batch


def test_crops_are_deterministic_centre_and_corners():
    arr = np.arange(40 * 50 * 3, dtype=np.uint32).reshape(40, 50, 3).astype(np.uint8)
    one, five, ten = crop_batch(arr, 32, 1), crop_batch(arr, 32, 5), crop_batch(arr, 32, 10)
    assert one.shape == (1, 32, 32, 3) and five.shape == (5, 32, 32, 3) and ten.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(one[0], arr[4:36, 9:41])
    np.testing.assert_array_equal(five[1], arr[:32, :32])
    np.testing.assert_array_equal(five[4], arr[8:, 18:])
    np.testing.assert_array_equal(ten[5], five[0][:, ::-1])
    with pytest.raises(ValueError, match="crops=3"):
        crop_batch(arr, 32, 3)


def test_result_fields_and_determinism(tiny_model, photo_bytes):
    clf = Classifier(tiny_model, crops=5, top_k=3, unsure_threshold=0.99)
    a, b = clf.predict_bytes(photo_bytes), clf.predict_bytes(photo_bytes)
    assert a["label"] == 2  # photo_bytes is a photo of class 2
    assert set(a) == {"label", "name", "category", "probability", "top_k", "bins", "unsure", "time_ms"}
    assert a["label"] == b["label"] and a["probability"] == b["probability"]  # same photo, same answer
    assert a["name"] == clf.labels[a["label"]] and a["category"] == a["name"].split("/")[0]
    assert len(a["top_k"]) == 3 and a["top_k"][0]["label"] == a["label"]
    probs = [t["probability"] for t in a["top_k"]]
    assert probs == sorted(probs, reverse=True)
    assert abs(sum(a["bins"].values()) - 1) < 1e-4 and set(a["bins"]) <= {"可回收物", "有害垃圾", "厨余垃圾", "其他垃圾"}
    assert a["unsure"] is True and a["time_ms"] > 0


def test_one_batched_call_equals_the_average_of_single_crops(tiny_model, photo_bytes):
    clf = Classifier(tiny_model, crops=5)
    crops = clf.prepare(photo_bytes)
    separate = np.mean([clf.forward(c[None])[0] for c in crops], axis=0)
    batched = clf.forward(crops).mean(axis=0)
    np.testing.assert_allclose(batched, separate, atol=1e-5)
    result = clf.predict_prepared([crops])[0]
    assert result["label"] == int(np.argmax(separate)) == 2
    assert abs(result["probability"] - separate.max()) < 1e-5


def test_several_photos_in_one_call_match_one_by_one(tiny_model, photo_bytes):
    from support.datagen import make_image
    import io

    buf = io.BytesIO()
    make_image(0, np.random.default_rng(1), (300, 200)).save(buf, "PNG")
    clf = Classifier(tiny_model, crops=1)
    together = clf.predict_prepared([clf.prepare(photo_bytes), clf.prepare(buf.getvalue())])
    alone = [clf.predict_bytes(photo_bytes), clf.predict_bytes(buf.getvalue())]
    assert [x["label"] for x in together] == [2, 0]  # the photos' classes
    for x, y in zip(together, alone):
        assert x["label"] == y["label"] and abs(x["probability"] - y["probability"]) < 1e-5


def test_bad_bytes_and_missing_files(tiny_model, tmp_path):
    clf = Classifier(tiny_model, crops=1)
    with pytest.raises(ImageDecodeError):
        clf.predict_bytes(b"definitely not an image")
    with pytest.raises(ModelFilesError, match="no model"):
        Classifier(str(tmp_path / "missing.h5"))
    (tmp_path / "best.h5").write_bytes(b"x")
    with pytest.raises(ModelFilesError, match="labels.json"):
        Classifier(str(tmp_path / "best.h5"))


# ---------------------------------------------------------------- input contracts: pixels now, caffe float32 before
def _crops_of_files(paths, size, crops=5):
    from tools.images import load_resized

    return np.concatenate([crop_batch(load_resized(p, size), size, crops) for p in paths])


def _assert_same_function(new_path, old_path, pixels, classes=None):
    """The uint8 model on pixels == the old float path (preprocess_input on the host) with the same weights;
    both give each crop its class where `classes` are known."""
    from models.preprocess import preprocess_input
    from models.saving import load_model

    new, old = load_model(new_path), load_model(old_path)
    assert new.inputs[0].dtype == "uint8" and old.inputs[0].dtype == "float32"
    a = np.asarray(new.predict(pixels, verbose=0))
    b = np.asarray(old.predict(preprocess_input(pixels), verbose=0))
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert (a.argmax(1) == b.argmax(1)).all()
    if classes is not None:
        assert a.argmax(1).tolist() == list(classes)


def test_uint8_model_equals_the_float_path_on_generated_photos(tiny_model, old_model, tmp_path):
    from support.datagen import make_image

    rng, paths = np.random.default_rng(7), []
    for i, size in enumerate([(80, 60), (640, 480), (50, 90), (300, 300)] * 2):
        paths.append(str(tmp_path / f"{i}.jpg"))
        make_image(i % 4, rng, size).save(paths[-1], quality=90)
    pixels = _crops_of_files(paths, 32)
    assert pixels.dtype == np.uint8 and pixels.shape == (40, 32, 32, 3)
    _assert_same_function(tiny_model, old_model, pixels, classes=np.arange(8).repeat(5) % 4)


def test_uint8_model_equals_the_float_path_on_trashnet_photos(tiny_model, old_model, trashnet_dir):
    paths = sorted(os.path.join(trashnet_dir, f) for f in os.listdir(trashnet_dir) if f.endswith(".jpg"))
    _assert_same_function(tiny_model, old_model, _crops_of_files(paths[::len(paths) // 12][:12], 32))


def test_an_old_contract_best_h5_predicts_as_the_new_one(tiny_model, old_model, photo_bytes):
    from tools.contract import CAFFE, PIXELS

    new, old = Classifier(tiny_model, crops=10), Classifier(old_model, crops=10)
    assert new.input == PIXELS and old.input == CAFFE
    for label, data in ((2, photo_bytes), (0, _png(0, (300, 200))), (3, _png(3, (64, 64)))):
        a, b = new.predict_bytes(data), old.predict_bytes(data)
        assert a["label"] == b["label"] == label and [t["label"] for t in a["top_k"]] == [t["label"] for t in b["top_k"]]
        for x, y in zip(a["top_k"], b["top_k"]):
            assert abs(x["probability"] - y["probability"]) < 1e-4


def _png(label, size):
    import io

    from support.datagen import make_image

    buf = io.BytesIO()
    make_image(label, np.random.default_rng(label), size).save(buf, "PNG")
    return buf.getvalue()


def test_predict_cli_runs_an_old_contract_model(cli, tiny_model, old_model, photo_bytes, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(photo_bytes)
    r = cli("predict.py", photo, "--model", old_model, "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    got = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    want = Classifier(tiny_model).predict_bytes(photo_bytes)
    assert len(got) == 1 and got[0]["label"] == want["label"] == 2
    assert abs(got[0]["probability"] - want["probability"]) < 1e-4


def test_an_old_float32_tflite_export_still_predicts_preprocessed_on_the_host(tmp_path):
    """A .tflite file exported before exports took pixels (float32 input the caller preprocessed, beside a
    labels.json without "input") keeps predicting: the Classifier feeds it its uint8 crops preprocessed on
    the host (tools.model_loading), as before. A small float-input model stands for the old classifier:
    its answers change with any other preprocessing (raw pixels, RGB order), as checked here first."""
    import keras

    from models.preprocess import preprocess_input
    from support.old_contract import write_old_labels
    from tools.export import export_tflite
    from tools.model_loading import TFLiteModel

    keras.utils.set_random_seed(0)
    floats = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(floats)
    old = keras.Model(floats, keras.layers.Dense(4, activation="softmax")(pooled * 0.05))
    lite_path = export_tflite(old, str(tmp_path))
    write_old_labels(str(tmp_path), ["a/b", "c/d", "e/f", "g/h"], 32)
    assert TFLiteModel(lite_path).input_dtype == np.float32
    clf = Classifier(lite_path, crops=5)
    assert clf.input == "caffe_float32" and clf.model.input_dtype == np.uint8
    crops = clf.prepare(_png(1, (90, 70)))
    want = np.asarray(old.predict_on_batch(preprocess_input(crops)))
    for wrong in (crops.astype(np.float32), preprocess_input(crops[..., ::-1])):
        assert np.abs(np.asarray(old.predict_on_batch(wrong)) - want).max() > 1e-3
    np.testing.assert_allclose(clf.forward(crops), want, atol=1e-5)


def test_labels_json_states_the_input_contract(tmp_path):
    from tools.contract import CAFFE, PIXELS, input_contract, write_labels

    write_labels(str(tmp_path), ["a/b", "c/d"], 32)
    meta = json.loads((tmp_path / "labels.json").read_text(encoding="utf-8"))
    assert meta["input"] == PIXELS == "rgb_uint8" and input_contract(meta) == PIXELS
    assert meta["preprocessing"]["mode"] == "caffe"  # what the model does inside
    del meta["input"]  # every labels.json written before models took pixels
    assert input_contract(meta) == CAFFE == "caffe_float32"
    for bad in ("bgr_float16", None, ["rgb_uint8"]):
        with pytest.raises(ModelFilesError) as e:
            input_contract({**meta, "input": bad})
        assert "\n" not in str(e.value) and repr(bad) in str(e.value) and "rgb_uint8" in str(e.value)


def test_unknown_or_mismatched_contracts_are_one_line_errors(tiny_model, old_model, tmp_path):
    from support.old_contract import write_old_labels

    unknown = tmp_path / "unknown"
    unknown.mkdir()
    shutil.copy(tiny_model, unknown / "best.h5")
    meta = json.loads(open(os.path.join(os.path.dirname(tiny_model), "labels.json"), encoding="utf-8").read())
    (unknown / "labels.json").write_text(json.dumps({**meta, "input": "rgb_float16"}), encoding="utf-8")
    with pytest.raises(ModelFilesError, match="input='rgb_float16'") as e:
        Classifier(str(unknown / "best.h5"))
    assert "\n" not in str(e.value)

    new_h5_old_labels = tmp_path / "a"  # a pixels model beside a labels.json of the old contract
    new_h5_old_labels.mkdir()
    shutil.copy(tiny_model, new_h5_old_labels / "best.h5")
    write_old_labels(str(new_h5_old_labels), meta["labels"], 32)
    old_h5_new_labels = tmp_path / "b"  # and the reverse
    old_h5_new_labels.mkdir()
    shutil.copy(old_model, old_h5_new_labels / "best.h5")
    shutil.copy(os.path.join(os.path.dirname(tiny_model), "labels.json"), old_h5_new_labels / "labels.json")
    for folder, dtype in ((new_h5_old_labels, "uint8"), (old_h5_new_labels, "float32")):
        with pytest.raises(ModelFilesError, match=f"takes {dtype} input.*different models") as e:
            Classifier(str(folder / "best.h5"))
        assert "\n" not in str(e.value)
