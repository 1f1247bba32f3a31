"""The training loader (tools/training/loader.py, a PyDataset of uint8 crops), its decoded-image cache and
data_flow (tools/training/data.py), which builds both from the flags."""

import logging
import os

import keras
import numpy as np
import pytest

from support.datagen import make_image, make_txt_dataset
from tools.data.layout import load_dataset
from tools.training.data import data_flow
from tools.contract import resize_size
from tools.training import cache as decoded
from tools.training.cache import decode_square, open_cache
from tools.training.loader import GarbageClassifySequence, random_crop, smooth_labels
from tools.images import center_crop, load_image_file, load_resized



def test_sequence_batches_shapes_dtypes_and_labels(tiny_data):
    ds = load_dataset(tiny_data)
    seq = GarbageClassifySequence(ds.paths, ds.labels, 4, batch_size=10, input_size=32, training=True,
                                  label_smoothing=0.005)
    assert isinstance(seq, keras.utils.PyDataset) and len(seq) == 5
    x, y = seq[0]
    assert x.shape == (10, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (10, 4) and y.dtype == np.float32 and np.allclose(y.sum(axis=1), 1)
    assert np.isclose(y.max(), 1 - 0.005 + 0.005 / 4) and np.isclose(y.min(), 0.005 / 4)
    assert np.array_equal(y.argmax(axis=1), ds.labels[seq.order[:10]])
    x, y = seq[4]  # the last batch is filled up with the epoch's first images: one shape, one compiled step
    assert x.shape == (10, 32, 32, 3)
    assert np.array_equal(y.argmax(axis=1), ds.labels[np.concatenate([seq.order[40:], seq.order[:2]])])
    assert np.array_equal(smooth_labels([1], 3, 0.0), [[0, 1, 0]])
    with pytest.raises(IndexError, match="0..4"):
        seq[5]
    few = GarbageClassifySequence(ds.paths[:3], ds.labels[:3], 4, batch_size=8, input_size=32, training=True)
    assert len(few) == 1 and few[0][0].shape[0] == 8  # fewer images than a batch: each seen two or three times


def test_validation_pads_its_last_batch_and_weighs_the_padding_zero(tiny_data):
    """48 images in batches of 20: 20, 20, 8 real + 12 padding of weight 0; the real ones weigh 60/48, so Keras'
    averages over the padded epoch (loss, accuracy) are the real images' means, exactly."""
    import keras

    ds = load_dataset(tiny_data)
    v = GarbageClassifySequence(ds.paths, ds.labels, 4, batch_size=20, input_size=32, training=False)
    assert len(v) == 3 and v.count == 48
    x, y, w = v[2]
    assert x.shape == (20, 32, 32, 3) and y.shape == (20, 4) and w.shape == (20,)
    np.testing.assert_array_equal(w, [60 / 48] * 8 + [0] * 12)
    assert (v[0][2] == 60 / 48).all()
    np.testing.assert_array_equal(x[8:], np.repeat(x[7:8], 12, axis=0))
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((32, 32, 3), dtype="uint8"), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(4, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", weighted_metrics=["accuracy"])
    padded = model.evaluate(v, return_dict=True, verbose=0)
    xs, ys = np.concatenate([v[i][0] for i in range(3)])[:48], np.concatenate([v[i][1] for i in range(3)])[:48]
    exact = model.evaluate(xs, ys, batch_size=48, return_dict=True, verbose=0)
    assert padded["loss"] == pytest.approx(exact["loss"], rel=1e-5)
    assert padded["accuracy"] == pytest.approx(exact["accuracy"], abs=1e-6)
    assert model.predict(v, verbose=0)[:v.count].shape == (48, 4)


def test_same_seed_same_batches_whatever_the_workers_and_the_cache(tiny_data):
    ds = load_dataset(tiny_data)
    kw = dict(batch_size=8, input_size=32, training=True)
    a = GarbageClassifySequence(ds.paths, ds.labels, 4, seed=5, **kw)
    b = GarbageClassifySequence(ds.paths, ds.labels, 4, seed=5, workers=4, **kw)
    cached = GarbageClassifySequence(ds.paths, ds.labels, 4, seed=5, cache=open_cache(ds.paths, 32, "ram"), **kw)
    c = GarbageClassifySequence(ds.paths, ds.labels, 4, seed=6, **kw)
    for i in (3, 0, 5):
        np.testing.assert_array_equal(a[i][0], b[i][0])
        np.testing.assert_array_equal(a[i][0], cached[i][0])  # cold: decoded into the cache
        np.testing.assert_array_equal(a[i][0], cached[i][0])  # warm: from it
    assert cached.cache.hits == 24 and cached.cache.misses == 24
    assert not np.array_equal(a[0][0], c[0][0])
    order0 = a.order.copy()
    a.on_epoch_end()
    assert not np.array_equal(order0, a.order) and sorted(order0) == sorted(a.order)
    assert not np.array_equal(a[0][0], b[0][0])  # another epoch, other crops


def test_training_crops_are_random_windows_of_the_square(tiny_data):
    ds = load_dataset(tiny_data)
    seq = GarbageClassifySequence(ds.paths, ds.labels, 4, batch_size=4, input_size=32, training=True, seed=1)
    x, _ = seq[2]
    rng = np.random.default_rng([1, 0, 2, 1])
    for k, i in enumerate(seq.order[8:12]):
        square = decode_square(ds.paths[i], 32)
        assert square.shape == (resize_size(32),) * 2 + (3,)
        np.testing.assert_array_equal(x[k], random_crop(square, 32, rng))


@pytest.mark.parametrize("input_size", [32, 33, 64, 128, 224])
def test_square_centre_crop_is_the_centre_crop_of_the_whole_photo(tmp_path, input_size):
    rng = np.random.default_rng(input_size)
    # portrait and landscape, odd and even overhangs after resizing (R - S is odd for 32, 33 and 64)
    for k, size in enumerate([(80, 60), (81, 60), (83, 61), (60, 95), (61, 80), (100, 100), (300, 29)]):
        path = str(tmp_path / f"{k}.png")
        make_image(k, rng, size).save(path)
        square = decode_square(path, input_size)
        assert square.shape == (resize_size(input_size), resize_size(input_size), 3)
        np.testing.assert_array_equal(center_crop(square, input_size),
                                      center_crop(load_resized(path, input_size), input_size))


def test_square_offset_arithmetic_for_every_overhang():
    for over in range(0, 40):  # W - R
        for extra in range(0, 40):  # R - S
            start = (over + extra) // 2 - extra // 2
            assert 0 <= start <= over and start + extra // 2 == (over + extra) // 2


def test_validation_is_centre_crop_unshuffled_and_stable(tiny_data):
    ds = load_dataset(tiny_data)
    v = GarbageClassifySequence(ds.paths, ds.labels, 4, batch_size=8, input_size=32, training=False)
    first = v[1][0].copy()
    assert first.dtype == np.uint8
    v.on_epoch_end()
    assert np.array_equal(v.order, np.arange(len(ds.paths)))
    np.testing.assert_array_equal(v[1][0], first)
    for k in range(8):
        np.testing.assert_array_equal(first[k], center_crop(load_resized(ds.paths[8 + k], 32), 32))
        np.testing.assert_array_equal(first[k], load_image_file(ds.paths[8 + k], 32))
    assert np.array_equal(v[0][1].argmax(axis=1), ds.labels[:8])
    assert np.array_equal(v[0][1], np.eye(4, dtype=np.float32)[ds.labels[:8]])  # no smoothing
    cached = GarbageClassifySequence(ds.paths, ds.labels, 4, batch_size=8, input_size=32,
                                     cache=open_cache(ds.paths, 32, "ram"))
    np.testing.assert_array_equal(cached[1][0], first)


@pytest.mark.parametrize("use_cache", [False, True], ids=["no cache", "cache"])
def test_unreadable_image_is_replaced_and_warned_once(tmp_path, caplog, monkeypatch, use_cache):
    data = make_txt_dataset(str(tmp_path), per_class=4, num_classes=2)
    bad = os.path.join(data, "img_0.jpg")
    with open(bad, "wb") as f:
        f.write(b"\xff\xd8\xff garbage")
    ds = load_dataset(data)
    cache = open_cache(ds.paths, 32, "ram") if use_cache else None
    seq = GarbageClassifySequence(ds.paths, ds.labels, 2, batch_size=8, input_size=32, training=False, cache=cache)
    calls = []
    real = decoded.decode_square
    monkeypatch.setattr(decoded, "decode_square", lambda p, s: calls.append(p) or real(p, s))
    with caplog.at_level(logging.WARNING):
        x1, y1, _ = seq[0]
        x2, _, _ = seq[0]
    assert x1.shape == (8, 32, 32, 3) and x1.dtype == np.uint8
    np.testing.assert_array_equal(x1[0], x1[1])  # img_0 replaced by the next readable image, img_1
    assert y1[0].argmax() == ds.labels[1]
    np.testing.assert_array_equal(x1, x2)
    assert caplog.text.count("img_0.jpg") == 1 and "unreadable" in caplog.text
    assert calls.count(bad) == 1  # tried once, then known bad
    assert len(calls) == (8 if use_cache else 17)  # with a cache: each image once


def test_cache_must_match_the_sequence(tiny_data):
    ds = load_dataset(tiny_data)
    with pytest.raises(ValueError, match="same images"):
        GarbageClassifySequence(ds.paths, ds.labels, 4, input_size=32, cache=open_cache(ds.paths, 64, "ram"))
    with pytest.raises(ValueError, match="same images"):
        GarbageClassifySequence(ds.paths[:5], ds.labels[:5], 4, input_size=32, cache=open_cache(ds.paths, 32, "ram"))


def test_data_flow_prints_counts_and_splits(tiny_data):
    lines = []
    train, val, ds, report = data_flow(tiny_data, batch_size=4, input_size=32, val_split=0.25, print_fn=lines.append)
    assert len(train.paths) == 36 and len(val.paths) == 12
    assert train.training and not val.training
    assert "48 images in 4 classes" in lines[0] and "可回收物/易拉罐" in lines[0]
    assert train.cache.kind == "ram" and val.cache.kind == "ram"  # "auto": 48 small squares fit in memory
    assert len(train.cache) == 36 and len(val.cache) == 12
    assert any(line.startswith("train cache: RAM") for line in lines)


def test_data_flow_cache_choices(tiny_data, tmp_path):
    lines = []
    train, val, _, _ = data_flow(tiny_data, batch_size=4, input_size=32, val_split=0.25, print_fn=lines.append,
                              cache="disk", cache_dir=str(tmp_path / "cache"))
    assert train.cache.kind == "disk" and val.cache.kind == "disk" and train.cache.file != val.cache.file
    assert sorted(os.path.basename(p).split("_")[0] for p in (train.cache.file, val.cache.file)) == ["train", "val"]
    x, _ = train[0]
    assert x.dtype == np.uint8 and train.cache.misses == 4
    train, val, _, _ = data_flow(tiny_data, batch_size=4, input_size=32, val_split=0.25, print_fn=lines.append,
                              cache="none")
    assert train.cache is None and val.cache is None
    with pytest.raises(ValueError, match="cache"):
        data_flow(tiny_data, input_size=32, print_fn=lines.append, cache="gpu")


def test_workers_of_a_multi_machine_run_each_load_their_share_in_equal_steps(tiny_data):
    """--strategy multiworker: worker i of n takes every n-th photo of the split, all in the same number of
    batches, and the validation weights are those of the whole set, so the metrics the workers sum are exact."""
    lines = []
    whole = data_flow(tiny_data, batch_size=5, input_size=32, val_split=0.25, print_fn=lines.append)
    shards = [data_flow(tiny_data, batch_size=5, input_size=32, val_split=0.25, print_fn=lines.append, shard=(i, 3))
              for i in range(3)]
    assert sorted(p for s in shards for p in s.train.paths) == sorted(whole.train.paths)  # 36 = 12 + 12 + 12
    assert sorted(p for s in shards for p in s.val.paths) == sorted(whole.val.paths)  # 12 = 4 + 4 + 4
    assert {len(s.train) for s in shards} == {3} and {len(s.val) for s in shards} == {1}
    assert any("worker 1 of 3: 12 of 36 training photos and 4 of 12 validation photos" in line for line in lines)
    real = sum(float(s.val[0][2].sum()) for s in shards)
    assert real == pytest.approx(3 * 5)  # 12 real images weigh 15/12 each: the padded total
    assert shards[0].report.count == 12 and whole.report is whole.val
    odd = [data_flow(tiny_data, batch_size=4, input_size=32, val_split=0.25, print_fn=lines.append, shard=(i, 5))
           for i in range(5)]  # 36 photos over 5 workers: 8, 7, 7, 7, 7, yet 2 batches each
    assert [len(s.train.paths) for s in odd] == [8, 7, 7, 7, 7] and {len(s.train) for s in odd} == {2}
