"""predict.py on files, folders, URLs from a local HTTP server, the prompt, and bad inputs."""

import csv
import json
import os
import pathlib

import numpy as np

from support.datagen import make_image
from support.scripts import lean_blocker
from support.servers import free_port


def _photos(folder, n=3):
    """p0.jpg, p1.jpg, ...: photos of the classes 0, 1, 2, 3, 0, ..."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        p = os.path.join(folder, f"p{i}.jpg")
        make_image(i % 4, np.random.default_rng(i), (160, 120)).save(p)
        paths.append(p)
    return paths


def test_file_prints_class_name_bin_probability_and_top_k_in_the_locales_language(cli, tiny_model, tmp_path):
    from tools.names import bin_name, item_name

    photo = _photos(str(tmp_path))[0]
    # --model names the folder, as train.py's last line does; an English locale prints English names
    r = cli("predict.py", photo, "--model", os.path.dirname(tiny_model), "--top_k", "3", "--threshold", "1",
            env={"LANG": "en_US.UTF-8", "LC_ALL": "", "LANGUAGE": ""})
    assert r.returncode == 0, r.stderr[-2000:]
    first, bins, top = r.stdout.splitlines()[:3]
    labels = json.load(open(os.path.join(os.path.dirname(tiny_model), "labels.json"), encoding="utf-8"))["labels"]
    label = int(first[len(photo) + 2:].split()[0])
    name = labels[label]
    answer = f"{photo}: {label} {item_name(name, 'en')} | bin {bin_name(name.split('/')[0], 'en')} | "
    assert first.startswith(answer) and first.endswith("%  (not sure)"), first
    assert item_name(name, "en").isascii()  # an English name, not the Chinese one
    # not sure: the probability of each bin, most probable first
    shares = [part.rsplit(" ", 1) for part in bins.removeprefix("    bins: ").split(" | ")]
    assert sorted(b for b, _ in shares) == sorted(bin_name(n.split("/")[0], "en") for n in labels), bins
    values = [float(p.rstrip("%")) for _, p in shares]
    assert values == sorted(values, reverse=True) and abs(sum(values) - 100) < 0.5, bins
    assert top.strip().startswith("top-3:") and top.count("%") == 3
    assert f"{label} {item_name(name, 'en')} ({bin_name(name.split('/')[0], 'en')})" in top
    assert label == 0  # the photo's own class: p0 is of class 0


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
    closed = f"http://127.0.0.1:{free_port()}/x.jpg"  # nothing listens there: the connection is refused
    r = cli("predict.py", tmp_path / "missing.jpg", tmp_path / "fake.jpg", base + "nothing.jpg", base + "page.html",
            base + "big.jpg", "ftp://example.com/can.jpg", closed, good, pathlib.Path(good).as_uri(),
            "--model", tiny_model, "--max_mb", "1")
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 7, r.stderr
    joined = "\n".join(errors)
    for expected in ("missing.jpg: no such file", "fake.jpg: not an image", "nothing.jpg: HTTP 404",
                     "page.html: not an image (Content-Type text/html)", "big.jpg: too large",
                     "ftp://example.com/can.jpg: unsupported URL scheme ftp://",
                     f"{closed}: cannot connect to {closed[7:-6]} (Connection refused)"):
        assert expected in joined
    assert "Traceback" not in r.stderr and "ConnectionPool" not in r.stderr
    answers = [l for l in r.stdout.splitlines() if not l.startswith(" ")]
    assert len(answers) == 2 and all(l.startswith(good + ": ") for l in answers)  # the file and its file:// URL


def test_inputs_and_flags_are_checked_before_keras_is_imported(cli, tmp_path):
    """Inputs that cannot be judged (missing, an unsupported URL, an empty folder) are told at once:
    Keras cannot even be imported here, and the model file is not one."""
    blocker = lean_blocker(tmp_path / "blocker")
    with open(os.path.join(blocker, "keras.py"), "w") as f:
        f.write('raise ImportError("predict.py imported keras")\n')
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "best.h5").write_bytes(b"not a model")
    (tmp_path / "empty").mkdir()
    env = {"PYTHONPATH": blocker}
    r = cli("predict.py", tmp_path / "missing.jpg", "ftp://example.com/x.jpg", tmp_path / "empty", "--model",
            tmp_path / "model", "--json", "--csv", tmp_path / "out.csv", env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert [json.loads(l)["error"] for l in r.stdout.splitlines()] == [
        "no such file", "unsupported URL scheme ftp:// (give a file, a folder, or an http(s):// or file:// URL)",
        "folder holds no images"]
    assert len(r.stderr.strip().splitlines()) == 3
    assert [row["error"] for row in csv.DictReader(open(tmp_path / "out.csv", encoding="utf-8"))][0] == "no such file"
    r = cli("predict.py", tmp_path / "missing.jpg", "--threshold", "5", env=env)
    assert r.returncode == 2 and r.stderr.strip() == "error: --threshold is a probability, from 0 to 1, not 5"


def test_interactive_prompt_until_eof_takes_quoted_paths(tiny_model, tmp_path):
    import subprocess
    import sys

    from support.scripts import ROOT, user_env

    photo = _photos(str(tmp_path))[0]
    # as typed, as Windows' "Copy as path" pastes it, and in single quotes; a Chinese locale. The user's
    # environment: with the tests' TF log level, TensorFlow's own start-up lines reach stderr (on CPUs where
    # oneDNN is on, one of them says "round-off errors")
    typed = f"{photo}\n\n\"{photo}\"\n  '{photo}'  \n"
    r = subprocess.run([sys.executable, "predict.py", "--model", tiny_model], cwd=ROOT, input=typed,
                       capture_output=True, text=True, timeout=300,
                       env=user_env(LANG="zh_CN.UTF-8", LC_ALL="", LANGUAGE=""))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("请输入图片的绝对路径或 URL:") == 5 and r.stdout.count(f"{photo}: ") == 3, r.stdout
    assert "| 投放到 " in r.stdout and "error" not in r.stderr
    answers = {line.split(f"{photo}: ", 1)[1].split()[0] for line in r.stdout.splitlines() if f"{photo}: " in line}
    assert answers == {"0"}  # p0 is of class 0, each of the three times


def test_missing_model_is_one_line_exit_2(cli, tmp_path):
    photo = _photos(str(tmp_path))[0]
    r = cli("predict.py", photo, "--model", tmp_path / "none.h5")
    assert r.returncode == 2 and r.stderr.startswith("error: no model") and "Traceback" not in r.stderr
