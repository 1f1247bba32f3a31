"""sample.py --download against a local HTTP server, and sample.py --check on good and broken data."""

import csv
import hashlib
import json
import os
import shutil
import zipfile

import numpy as np

from support.datagen import make_image, make_txt_dataset
from support.scripts import ROOT


def _zip_of(data_dir, path):
    """A zip shaped like the competition's: garbage_classify_v2/train_data_v2/... + the rule file."""
    root = os.path.dirname(data_dir)
    with zipfile.ZipFile(path, "w") as z:
        z.write(os.path.join(root, "garbage_classify_rule.json"), "garbage_classify_v2/garbage_classify_rule.json")
        for name in sorted(os.listdir(data_dir)):
            z.write(os.path.join(data_dir, name), f"garbage_classify_v2/train_data_v2/{name}")
    return path


def test_download_unpacks_into_the_project_layout_then_checks_clean(tmp_path, http_dir, cli):
    base, www = http_dir
    data = make_txt_dataset(str(tmp_path / "src"), per_class=3, num_classes=3)
    archive = _zip_of(data, str(www / "garbage_classify_v2.zip"))
    sha = hashlib.sha256(open(archive, "rb").read()).hexdigest()
    env = {"KERAS_HOME": str(tmp_path / "keras_home")}
    dest = tmp_path / "garbage_classify_v2"
    r = cli("sample.py", "--download", "--url", base + "garbage_classify_v2.zip", "--dest", dest, "--sha256", sha,
            env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "keras_home" / "datasets" / "garbage_classify_v2.zip").exists()  # the Keras cache
    assert len(os.listdir(dest / "train_data_v2")) == 18 and (dest / "garbage_classify_rule.json").exists()
    r = cli("sample.py", "--check", dest / "train_data_v2", "--out", tmp_path / "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "9 images, 3 classes" in r.stdout and "0 errors" in r.stdout
    os.remove(www / "garbage_classify_v2.zip")  # a second download comes from the cache
    r = cli("sample.py", "--download", "--url", base + "garbage_classify_v2.zip", "--dest", tmp_path / "again",
            env=env)
    assert r.returncode == 0, r.stderr


def test_wrong_hash_broken_zip_and_no_server_give_the_manual_steps(tmp_path, http_dir, cli):
    base, www = http_dir
    data = make_txt_dataset(str(tmp_path / "src"), per_class=2, num_classes=2)
    archive = _zip_of(data, str(www / "garbage_classify_v2.zip"))
    env = {"KERAS_HOME": str(tmp_path / "kh")}
    r = cli("sample.py", "--download", "--url", base + "garbage_classify_v2.zip", "--dest", tmp_path / "d1",
            "--sha256", "0" * 64, env=env)
    assert r.returncode == 1 and "could not download" in r.stderr and "Manual steps" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "d1" / "train_data_v2").exists()
    assert not (tmp_path / "kh" / "datasets" / "garbage_classify_v2.zip").exists(), "a bad file is not kept"
    with open(archive, "rb") as f:
        broken = f.read()[: os.path.getsize(archive) // 2]
    (www / "broken.zip").write_bytes(broken)
    r = cli("sample.py", "--download", "--url", base + "broken.zip", "--dest", tmp_path / "d2",
            env={"KERAS_HOME": str(tmp_path / "kh2")})
    assert r.returncode == 1 and "did not unpack" in r.stderr and "Manual steps" in r.stderr
    assert not (tmp_path / "kh2" / "datasets" / "garbage_classify_v2.zip").exists()
    r = cli("sample.py", "--download", "--url", "http://127.0.0.1:9/garbage_classify_v2.zip", "--dest", tmp_path / "d3",
            env={"KERAS_HOME": str(tmp_path / "kh3")})
    assert r.returncode == 1 and "127.0.0.1:9" in r.stderr and "Manual steps" in r.stderr


def test_check_reports_every_kind_of_problem(tmp_path, cli):
    data = make_txt_dataset(str(tmp_path), per_class=4, num_classes=3)
    d = tmp_path / "train_data_v2"
    (d / "img_90.txt").write_text("img_90.jpg 1")  # does not parse
    (d / "img_91.txt").write_text("img_0.jpg, 12")  # label outside the rule file
    (d / "img_92.txt").write_text("img_92.jpg, 0")  # image missing
    raw = (d / "img_1.jpg").read_bytes()
    (d / "img_1.jpg").write_bytes(raw[: len(raw) // 3])  # truncated
    shutil.copy(d / "img_2.jpg", d / "img_93.jpg")  # the same photo under another label
    (d / "img_93.txt").write_text("img_93.jpg, 2")
    make_image(0, np.random.default_rng(1), (50, 40)).save(d / "stray.jpg")  # no label file
    out = tmp_path / "check"
    r = cli("sample.py", "--check", data, "--out", out)
    assert r.returncode == 1
    text = r.stdout
    for expected in ("img_90.txt: label file does not parse", "img_91.txt: label 12 is not in the rule file",
                     "img_92.txt: image img_92.jpg is missing", "img_1.jpg: unreadable image",
                     "identical images with different labels: img_2.jpg", "warning: stray.jpg: image without a label"):
        assert expected in text, expected
    report = json.load(open(out / "check_report.json", encoding="utf-8"))
    assert report["images"] == 13 and len(report["errors"]) == 5
    rows = list(csv.DictReader(open(out / "manifest.csv", encoding="utf-8")))
    assert len(rows) == 13 and all(len(row["sha256"]) == 64 for row in rows)
    assert os.path.getsize(out / "class_counts.png") > 5000


def test_manifest_hash_identifies_the_copy_and_the_check_writes_beside_not_into_the_data(tmp_path, cli):
    data = make_txt_dataset(str(tmp_path / "my_set"), per_class=3, num_classes=2)
    before = sorted(os.listdir(data))
    here = tmp_path / "here"
    here.mkdir()
    sample = os.path.join(ROOT, "sample.py")
    first = cli(sample, "--check", data, cwd=here)  # by default: ./data_check/<the data set's name>
    default = here / "data_check" / "my_set"
    assert f"in {os.path.join('data_check', 'my_set')}" in first.stdout, first.stdout
    assert sorted(os.listdir(default)) == ["check_report.json", "class_counts.png", "manifest.csv"]
    assert sorted(os.listdir(data)) == before  # nothing written into the data folder
    second = cli("sample.py", "--check", data, "--out", tmp_path / "b")
    h = lambda out: json.load(open(out / "check_report.json"))["manifest_sha256"]
    assert first.returncode == second.returncode == 0 and h(default) == h(tmp_path / "b")
    make_image(1, np.random.default_rng(9), (80, 60)).save(os.path.join(data, "img_0.jpg"))
    third = cli(sample, "--check", data, cwd=here)
    assert h(default) != h(tmp_path / "b")
    assert "0 warnings" in third.stdout, third.stdout  # the first check left nothing for it to warn about


def test_check_on_real_photos(trashnet_dir, tmp_path, cli):
    r = cli("sample.py", "--check", trashnet_dir, "--out", tmp_path)
    assert "1769 images, 6 classes" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert json.load(open(tmp_path / "check_report.json"))["counts"]["其他垃圾/其他"] == 96
