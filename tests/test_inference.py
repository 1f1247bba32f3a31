"""The prediction core: deterministic crops, one batched call, the result fields."""

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
    assert result["label"] == int(np.argmax(separate))
    assert abs(result["probability"] - separate.max()) < 1e-5


def test_several_photos_in_one_call_match_one_by_one(tiny_model, photo_bytes):
    from support.datagen import make_image
    import io

    buf = io.BytesIO()
    make_image(0, np.random.default_rng(1), (300, 200)).save(buf, "PNG")
    clf = Classifier(tiny_model, crops=1)
    together = clf.predict_prepared([clf.prepare(photo_bytes), clf.prepare(buf.getvalue())])
    alone = [clf.predict_bytes(photo_bytes), clf.predict_bytes(buf.getvalue())]
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
