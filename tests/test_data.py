"""Decoding, preprocessing, augmentation, label files, splitting and the PyDataset loader."""

import io
import logging
import os

import keras
import numpy as np
import pytest
from PIL import Image

from support.datagen import make_folder_dataset, make_image, make_txt_dataset
from tools.training.augment import RandomAffine
from tools.training.augment import Cutout
from tools.data.layout import DataError, data_flow, load_dataset, parse_label_file, stratified_split
from tools.training.loader import GarbageClassifySequence, smooth_labels
from tools.images import ImageDecodeError, decode_image, load_image_file, load_resized
from models.preprocess import preprocess_input


def _bytes(img, fmt="JPEG", **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# ----------------------------------------------------------------- preprocessing and decoding
def test_preprocessing_equals_keras_resnet50_preprocess_input():
    x = np.random.default_rng(0).integers(0, 256, size=(3, 8, 9, 3)).astype("float32")
    expected = keras.applications.resnet50.preprocess_input(x.copy())
    np.testing.assert_allclose(preprocess_input(x.astype(np.uint8)), np.asarray(expected), atol=1e-4)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))  # blue on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    out = decode_image(_bytes(img, exif=exif))
    assert out.size == (20, 40)
    arr = np.asarray(out)
    assert arr[2, 10, 2] > 200 and arr[-2, 10, 0] > 200  # blue now on top


@pytest.mark.parametrize("make", [
    lambda: Image.new("L", (30, 20), 128),
    lambda: Image.new("CMYK", (30, 20), (0, 255, 255, 0)),
    lambda: Image.new("P", (30, 20), 3),
    lambda: Image.new("RGBA", (30, 20), (255, 0, 0, 0)),
    lambda: Image.fromarray(np.full((20, 30), 40000, np.uint16)),
], ids=["L", "CMYK", "P", "RGBA", "I16"])
def test_any_mode_becomes_rgb_uint8(make):
    img = make()
    fmt = "JPEG" if img.mode in ("L", "CMYK") else "PNG"
    out = decode_image(_bytes(img, fmt))
    assert out.mode == "RGB" and out.size == (30, 20)
    arr = np.asarray(out)
    if img.mode == "RGBA":  # fully transparent -> white background, not black or red
        assert arr.min() == 255
    if img.mode.startswith("I"):  # 16-bit 40000 ~ 61% grey, not clipped to white
        assert 150 < arr.mean() < 165


@pytest.mark.parametrize("data,reason", [(b"", "empty"), (b"hello, not an image", "not an image"),
                                         ("truncated", "truncated")])
def test_unreadable_inputs_raise_a_clear_error(data, reason):
    if data == "truncated":
        data = _bytes(make_image(0, np.random.default_rng(0), (200, 150)))[:600]
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(data)


def test_large_jpeg_is_decoded_at_reduced_scale():
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
    data = _bytes(big, quality=70)
    small = decode_image(data, min_side=256)
    assert 256 <= min(small.size) < 3000 // 2  # draft picked 1/8 scale (375x500)
    assert load_resized(data, 224).shape[0] == 256
    assert load_image_file(data, 224).shape == (224, 224, 3)


# ----------------------------------------------------------------- augmentation
def test_cutout_holes_stay_in_bounds_and_leave_the_rest():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 32, 32, 3)).astype(np.float32) + 5
    out = Cutout(n_holes=2, length=8)(x, np.random.default_rng(1))
    holes = np.all(out == 0, axis=-1)
    assert out.shape == x.shape
    assert np.array_equal(out[~holes], x[~holes])
    per_image = holes.reshape(16, -1).sum(axis=1)
    assert per_image.min() > 0 and per_image.max() <= 2 * 8 * 8
    again = Cutout(n_holes=2, length=8)(x, np.random.default_rng(1))
    np.testing.assert_array_equal(out, again)


@pytest.mark.parametrize("kwargs", [dict(n_holes=0), dict(length=-3), dict(length=2.5)])
def test_cutout_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        Cutout(**kwargs)


def test_random_affine_keeps_shape_and_range_and_is_seeded():
    img = np.asarray(make_image(2, np.random.default_rng(0), (48, 48)))
    aff = RandomAffine()
    a, b = aff(img, np.random.default_rng(5)), aff(img, np.random.default_rng(5))
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, img)
    identity = RandomAffine(rotation=0, shift=0, shear=0, zoom=0, horizontal_flip=False, vertical_flip=False)
    np.testing.assert_array_equal(identity(img, np.random.default_rng(0)), img)


def test_random_affine_rotation_stays_within_30_degrees():
    aff = RandomAffine(shift=0, shear=0, zoom=0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        m = aff.matrix(50, 50, rng)
        angle = np.degrees(np.arctan2(m[1, 0], m[0, 0]))
        assert abs(angle) <= 30.0001


# ----------------------------------------------------------------- label files and layouts
def test_label_file_parsing(tmp_path):
    good = tmp_path / "img_1.txt"
    good.write_text("img_1.jpg, 7\n")
    assert parse_label_file(good) == ("img_1.jpg", 7)
    for text in ("img_1.jpg 7", "img_1.jpg, seven", ""):
        good.write_text(text)
        with pytest.raises(ValueError):
            parse_label_file(good)


def test_bad_entries_are_skipped_with_a_warning_naming_the_file(tmp_path, caplog):
    data = make_txt_dataset(str(tmp_path), per_class=3, num_classes=2)
    (tmp_path / "train_data_v2" / "img_90.txt").write_text("img_90.jpg; 1")
    (tmp_path / "train_data_v2" / "img_91.txt").write_text("img_0.jpg, 9")
    (tmp_path / "train_data_v2" / "img_92.txt").write_text("img_92.jpg, 1")  # image missing
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(data)
    assert len(ds.paths) == 6 and len(ds.skipped) == 3
    text = caplog.text
    assert "img_90.txt" in text and "img_91.txt" in text and "outside" in text and "img_92.jpg is missing" in text


def test_class_folder_layout(tmp_path):
    root = make_folder_dataset(str(tmp_path / "kaggle"), per_class=4, classes=("paper", "cans", "glass"))
    ds = load_dataset(root)
    assert ds.layout == "folders" and ds.class_names == ["cans", "glass", "paper"]
    assert ds.counts().tolist() == [4, 4, 4]
    assert all(os.path.basename(os.path.dirname(p)) == ds.class_names[l] for p, l in zip(ds.paths, ds.labels))


def test_missing_rule_file_and_num_classes_mismatch_are_clear(tmp_path):
    data = make_txt_dataset(str(tmp_path), per_class=2, num_classes=2)
    with pytest.raises(DataError, match="num_classes 40"):
        load_dataset(data, num_classes=40)
    os.remove(tmp_path / "garbage_classify_rule.json")
    with pytest.raises(DataError, match="garbage_classify_rule.json"):
        load_dataset(data)


def test_stratified_split_is_seeded_disjoint_and_proportional():
    labels = np.repeat(np.arange(4), [50, 30, 10, 2])
    tr, va = stratified_split(labels, 0.1, seed=233)
    tr2, va2 = stratified_split(labels, 0.1, seed=233)
    assert np.array_equal(va, va2) and np.array_equal(tr, tr2)
    assert not set(tr) & set(va) and len(tr) + len(va) == len(labels)
    assert np.bincount(labels[va], minlength=4).tolist() == [5, 3, 1, 1]
    assert not np.array_equal(stratified_split(labels, 0.1, seed=1)[1], va)


# ----------------------------------------------------------------- the PyDataset
def test_sequence_batches_shapes_dtypes_and_labels(tiny_data):
    ds = load_dataset(tiny_data)
    seq = GarbageClassifySequence(ds.paths, ds.labels, 4, batch_size=10, input_size=32, training=True,
                                  label_smoothing=0.005)
    assert isinstance(seq, keras.utils.PyDataset) and len(seq) == 5
    x, y = seq[0]
    assert x.shape == (10, 32, 32, 3) and x.dtype == np.float32
    assert y.shape == (10, 4) and np.allclose(y.sum(axis=1), 1)
    assert np.isclose(y.max(), 1 - 0.005 + 0.005 / 4) and np.isclose(y.min(), 0.005 / 4)
    assert seq[4][0].shape[0] == 48 - 40
    assert np.array_equal(smooth_labels([1], 3, 0.0), [[0, 1, 0]])


def test_same_seed_same_batches_whatever_the_workers(tiny_data):
    ds = load_dataset(tiny_data)
    a = GarbageClassifySequence(ds.paths, ds.labels, 4, batch_size=8, input_size=32, training=True, seed=5)
    b = GarbageClassifySequence(ds.paths, ds.labels, 4, batch_size=8, input_size=32, training=True, seed=5,
                                workers=4)
    c = GarbageClassifySequence(ds.paths, ds.labels, 4, batch_size=8, input_size=32, training=True, seed=6)
    for i in (3, 0, 5):
        np.testing.assert_array_equal(a[i][0], b[i][0])
    assert not np.array_equal(a[0][0], c[0][0])
    order0 = a.order.copy()
    a.on_epoch_end()
    assert not np.array_equal(order0, a.order) and sorted(order0) == sorted(a.order)


def test_validation_is_centre_crop_unshuffled_and_stable(tiny_data):
    ds = load_dataset(tiny_data)
    v = GarbageClassifySequence(ds.paths, ds.labels, 4, batch_size=8, input_size=32, training=False)
    first = v[1][0].copy()
    v.on_epoch_end()
    assert np.array_equal(v.order, np.arange(len(ds.paths)))
    np.testing.assert_array_equal(v[1][0], first)
    expected = preprocess_input(load_image_file(ds.paths[8], 32))
    np.testing.assert_allclose(first[0], expected)
    assert np.array_equal(v[0][1].argmax(axis=1), ds.labels[:8])


def test_unreadable_image_is_replaced_and_warned_once(tmp_path, caplog):
    data = make_txt_dataset(str(tmp_path), per_class=4, num_classes=2)
    bad = os.path.join(data, "img_0.jpg")
    with open(bad, "wb") as f:
        f.write(b"\xff\xd8\xff garbage")
    ds = load_dataset(data)
    seq = GarbageClassifySequence(ds.paths, ds.labels, 2, batch_size=8, input_size=32, training=False)
    with caplog.at_level(logging.WARNING):
        x1, _ = seq[0]
        x2, _ = seq[0]
    assert x1.shape == (8, 32, 32, 3) and np.isfinite(x1).all()
    assert caplog.text.count("img_0.jpg") == 1


def test_data_flow_prints_counts_and_splits(tiny_data):
    lines = []
    train, val, ds = data_flow(tiny_data, batch_size=4, input_size=32, val_split=0.25, print_fn=lines.append)
    assert len(train.paths) == 36 and len(val.paths) == 12
    assert train.training and not val.training
    assert "48 images in 4 classes" in lines[0] and "可回收物/易拉罐" in lines[0]


# ----------------------------------------------------------------- phone formats
@pytest.mark.parametrize("fmt,ext", [("HEIF", ".heic"), ("AVIF", ".avif")])
def test_heic_and_avif_photos_decode_like_the_original(fmt, ext, tmp_path):
    from tools.images import is_image_file
    from tools.images import ACCEPTED, sniff

    decode_image(_bytes(Image.new("RGB", (8, 8))))  # the HEIF opener is registered by the decoder
    photo = make_image(2, np.random.default_rng(0), (320, 240))
    data = _bytes(photo, fmt, quality=90)
    kind, accepted = sniff(data)
    assert accepted and kind == fmt and ACCEPTED[kind] == ext[1:]
    out = decode_image(data)
    assert out.mode == "RGB" and out.size == (320, 240)
    small = lambda img: np.asarray(img.resize((40, 30), Image.Resampling.BOX), np.int16)  # codec noise averaged out
    assert np.abs(small(out) - small(photo)).mean() < 6
    make_folder_dataset(str(tmp_path), per_class=2, classes=("cans", "paper"))
    with open(tmp_path / "cans" / f"phone{ext}", "wb") as f:
        f.write(data)
    assert is_image_file(f"x{ext.upper()}")
    ds = load_dataset(str(tmp_path))
    assert sum(p.endswith(ext) for p in ds.paths) == 1 and len(ds.paths) == 5
