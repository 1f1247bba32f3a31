"""sample.py: reproducible, hard-linked samples with their label files."""

import os

import numpy as np

from support.datagen import make_folder_dataset, make_txt_dataset
from tools.data.layout import load_dataset


def test_sample_copies_n_images_with_labels_hardlinked_and_reproducible(tmp_path, cli):
    src = make_txt_dataset(str(tmp_path / "src"), per_class=10, num_classes=4)
    r = cli("sample.py", src, tmp_path / "a", "12", "--seed", "3")
    assert r.returncode == 0, r.stderr
    ds = load_dataset(str(tmp_path / "a"))  # label files and rule file came along
    assert len(ds.paths) == 12 and ds.class_names == load_dataset(src).class_names
    img = ds.paths[0]
    assert os.stat(img).st_ino == os.stat(os.path.join(src, os.path.basename(img))).st_ino
    cli("sample.py", src, tmp_path / "b", "12", "--seed", "3")
    assert sorted(os.listdir(tmp_path / "a")) == sorted(os.listdir(tmp_path / "b"))
    cli("sample.py", src, tmp_path / "c", "12", "--seed", "4")
    assert sorted(os.listdir(tmp_path / "a")) != sorted(os.listdir(tmp_path / "c"))


def test_stratified_sample_keeps_class_shares(tmp_path, cli):
    src = make_txt_dataset(str(tmp_path / "src"), per_class=10, num_classes=2)
    for i in range(100, 130):  # make class 0 three times larger
        os.link(os.path.join(src, "img_0.jpg"), os.path.join(src, f"img_{i}.jpg"))
        with open(os.path.join(src, f"img_{i}.txt"), "w") as f:
            f.write(f"img_{i}.jpg, 0")
    r = cli("sample.py", src, tmp_path / "s", "20", "--stratified")
    assert r.returncode == 0, r.stderr
    assert np.bincount(load_dataset(str(tmp_path / "s")).labels).tolist() == [16, 4]  # 40:10 -> 16:4


def test_sample_class_folders(tmp_path, cli):
    src = make_folder_dataset(str(tmp_path / "src"), per_class=5)
    r = cli("sample.py", src, tmp_path / "s", "6", "--copy")
    assert r.returncode == 0, r.stderr
    ds = load_dataset(str(tmp_path / "s"))
    assert len(ds.paths) == 6 and "0 hard-linked" in r.stdout


def test_sample_errors_are_one_line(tmp_path, cli):
    src = make_txt_dataset(str(tmp_path / "src"), per_class=2, num_classes=2)
    for args, msg in (([src, tmp_path / "x", "5"], "only 4"), ([tmp_path / "nope", tmp_path / "y", "1"], "no data folder"),
                      ([src, tmp_path / "z", "0"], "N must be")):
        r = cli("sample.py", *args)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
