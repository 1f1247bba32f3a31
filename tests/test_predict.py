"""predict.py on files, folders, URLs from a local HTTP server, the prompt, and bad inputs."""

import csv
import json
import os

import numpy as np

from support.datagen import CLASS_NAMES, make_image


def _photos(folder, n=3):
    """p0.jpg, p1.jpg, ...: photos of the classes 0, 1, 2, 3, 0, ..."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        p = os.path.join(folder, f"p{i}.jpg")
        make_image(i % 4, np.random.default_rng(i), (160, 120)).save(p)
        paths.append(p)
    return paths


def test_file_prints_class_name_bin_probability_and_top_k(cli, tiny_model, tmp_path):
    photo = _photos(str(tmp_path))[0]
    r = cli("predict.py", photo, "--model", tiny_model, "--top_k", "3")
    assert r.returncode == 0, r.stderr[-2000:]
    labels = json.load(open(os.path.join(os.path.dirname(tiny_model), "labels.json"), encoding="utf-8"))["labels"]
    first, second = r.stdout.splitlines()[:2]
    assert first.startswith(photo) and "| bin " in first and "%" in first
    assert [name for name in labels if name in first] == [labels[0]]  # the photo's class, p0 is of class 0
    assert second.strip().startswith("top-3:") and second.count("%") == 3


def test_folder_recursive_json_and_csv(cli, tiny_model, tmp_path):
    folder = tmp_path / "photos"
    _photos(str(folder), 3)
    _photos(str(folder / "sub"), 2)
    from tools.images import _register_heif

    _register_heif()  # an iPhone photo among them
    make_image(1, np.random.default_rng(9), (160, 120)).save(folder / "sub" / "IMG_0001.HEIC", "HEIF")
    (folder / "notes.txt").write_text("not a photo")
    out_csv = tmp_path / "out.csv"
    r = cli("predict.py", folder, "--model", tiny_model, "--json", "--csv", out_csv, "--batch_size", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert len(rows) == 6 and all("label" in row and "bins" in row for row in rows)
    for row in rows:  # each photo's class: pN.jpg is of class N % 4, the HEIC photo of class 1
        name = os.path.basename(row["input"])
        assert row["label"] == (1 if name == "IMG_0001.HEIC" else int(name[1:-4]) % 4), row
    assert any(row["input"].endswith("IMG_0001.HEIC") for row in rows)
    assert any(os.sep + "sub" + os.sep in row["input"] for row in rows)
    table = list(csv.DictReader(open(out_csv, encoding="utf-8")))
    assert len(table) == 6 and all(row["name"] and not row["error"] for row in table)
    assert {row["input"]: int(row["label"]) for row in table} == {row["input"]: row["label"] for row in rows}


def test_same_answer_for_a_url_and_the_file(cli, tiny_model, tmp_path, http_dir):
    base, www = http_dir
    photo = _photos(str(www))[1]
    by_file = cli("predict.py", photo, "--model", tiny_model, "--json")
    by_url = cli("predict.py", base + "p1.jpg", "--model", tiny_model, "--json")
    assert by_url.returncode == 0, by_url.stderr
    a, b = json.loads(by_file.stdout), json.loads(by_url.stdout)
    assert a["label"] == b["label"] == 1 and a["probability"] == b["probability"]


def test_bad_inputs_each_get_one_line_and_the_rest_still_run(cli, tiny_model, tmp_path, http_dir):
    base, www = http_dir
    good = _photos(str(tmp_path))[0]
    (www / "page.html").write_text("<html>hello</html>")
    (www / "big.jpg").write_bytes(b"\xff\xd8\xff" + os.urandom(2 * 1024 * 1024))
    (tmp_path / "fake.jpg").write_text("just text")
    r = cli("predict.py", tmp_path / "missing.jpg", tmp_path / "fake.jpg", base + "nothing.jpg", base + "page.html",
            base + "big.jpg", good, "--model", tiny_model, "--max_mb", "1")
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 5, r.stderr
    joined = "\n".join(errors)
    for expected in ("missing.jpg: no such file", "fake.jpg: not an image", "nothing.jpg: HTTP 404",
                     "page.html: not an image (Content-Type text/html)", "big.jpg: too large"):
        assert expected in joined
    assert "Traceback" not in r.stderr
    assert r.stdout.startswith(good)  # the good photo was still predicted


def test_interactive_prompt_until_eof(tiny_model, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    photo = _photos(str(tmp_path))[0]
    r = subprocess.run([sys.executable, "predict.py", "--model", tiny_model], cwd=ROOT, input=f"{photo}\n\n",
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "请输入图片的绝对路径或 URL:" in r.stdout and f"{photo}:" in r.stdout
    answer = r.stdout.split(f"{photo}:", 1)[1].splitlines()[0]
    assert [name for name in CLASS_NAMES[:4] if name in answer] == [CLASS_NAMES[0]]  # p0 is of class 0


def test_missing_model_is_one_line_exit_2(cli, tmp_path):
    r = cli("predict.py", "x.jpg", "--model", tmp_path / "none.h5")
    assert r.returncode == 2 and r.stderr.startswith("error: no model") and "Traceback" not in r.stderr
