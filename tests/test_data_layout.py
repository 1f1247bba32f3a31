"""Data folders (tools/data/): label files, the class-folder layout, rule files, the seeded stratified split,
and several folders joined as one training set (load_datasets)."""

import logging
import os

import numpy as np
import pytest

from support.datagen import make_folder_dataset, make_txt_dataset
from support.datasets import class_counts
from support.glass import GLASS_CLASSES, make_glass_data
from tools.data import DataError
from tools.data.layout import load_dataset, parse_label_file
from tools.data.merge import load_datasets
from tools.data.rules import RULE_FILE_NAME
from tools.data.split import stratified_split
from tools.training.data import data_flow



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
    assert class_counts(ds).tolist() == [4, 4, 4]
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


def test_load_datasets_joins_folders_that_share_one_rule_file(tmp_path):
    a = make_glass_data(tmp_path / "a", per_class=3)
    b = make_glass_data(tmp_path / "b", per_class=2)  # its own copy of the same rule file
    ds = load_datasets([a, b])
    assert len(ds.paths) == 20 and ds.class_names == GLASS_CLASSES and ds.layout == "txt"
    assert all(p.startswith(a) for p in ds.paths[:12])
    assert all(p.startswith(b) for p in ds.paths[12:]) and list(class_counts(ds)) == [5, 5, 5, 5]
    assert ds.sources == [(a, 12), (b, 8)]
    lines = []
    train, val, joined, _ = data_flow([a, b], batch_size=4, input_size=32, val_split=0.25, print_fn=lines.append)
    assert len(train.paths) + len(val.paths) == 20 and any(p.startswith(b) for p in train.paths)
    assert "20 images in 4 classes" in lines[0] and f"12 from {a}" in lines[0] and f"8 from {b}" in lines[0]
    assert load_datasets(a).sources == [(a, 12)]  # one folder, as load_dataset


def test_load_datasets_refuses_folders_with_different_rule_files(tmp_path):
    a = make_glass_data(tmp_path / "a", per_class=2)
    b = make_txt_dataset(str(tmp_path / "b"), per_class=2, num_classes=4)  # 烟蒂 where a has 玻璃
    with pytest.raises(DataError) as e:
        load_datasets([a, b])
    message = str(e.value)
    assert os.path.join(str(tmp_path / "a"), RULE_FILE_NAME) in message
    assert os.path.join(str(tmp_path / "b"), RULE_FILE_NAME) in message
    assert "'可回收物/玻璃' vs '其他垃圾/烟蒂'" in message
    c = make_txt_dataset(str(tmp_path / "c"), per_class=2, num_classes=3)
    with pytest.raises(DataError, match="4 vs 3 classes"):
        load_datasets([a, c])
    # one --rule_file for all of them: they share it
    assert len(load_datasets([a, b], rule_file=os.path.join(str(tmp_path / "a"), RULE_FILE_NAME)).paths) == 16
    with pytest.raises(DataError, match="given twice"):
        load_datasets([a, a + os.sep])
