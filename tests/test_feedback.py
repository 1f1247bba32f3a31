"""server.py --collect DIR through the Flask test client: /predict's capture_id, /feedback and every
way it can fail (nothing half-written), the bounded store of waiting photos, 8 concurrent clients,
nothing written without --collect."""

import concurrent.futures
import csv
import io
import json
import os
import re
import shutil
import time

import numpy as np
import pytest

from support.datagen import CLASS_NAMES, make_image
from support.glass import GLASS_CLASSES
from support.servers import wait_ready
from server import get_args_parser, main  # test_a_folder_with_another_rule_file_refuses_to_start: the CLI
from tools.data.rules import RULE_FILE_NAME
from tools.serving.app import create_app
from tools.serving.feedback import CollectError, Collector


def _collecting_app(model, folder, **settings):
    app = create_app({"MODEL": model, "CROPS": 1, "TESTING": True, "COLLECT_DIR": str(folder), **settings})
    holder = wait_ready(app)
    assert holder.ready.is_set(), holder.error
    return app


@pytest.fixture(scope="module")
def app(glass_model, tmp_path_factory):
    """Collecting into its own folder; 8 photos may wait, 2 MB in all."""
    return _collecting_app(glass_model, tmp_path_factory.mktemp("collect") / "feedback",
                           COLLECT_PENDING=8, COLLECT_PENDING_MB=2)


@pytest.fixture(scope="module")
def strict(glass_model, tmp_path_factory):
    """Collecting with tight limits: photos wait 0.1 s, 2 at a time, the folder holds 10 KB."""
    return _collecting_app(glass_model, tmp_path_factory.mktemp("strict"), COLLECT_TTL_S=0.1, COLLECT_PENDING=2,
                           COLLECT_MAX_MB=0.01)


def photo(seed, size=(120, 90), fmt="JPEG"):
    buf = io.BytesIO()
    make_image(seed % 4, np.random.default_rng(seed), size).save(buf, fmt)
    return buf.getvalue()


def noise_png(side, seed=0):
    """An incompressible PNG: about 3 * side * side bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def predict(client, data):
    r = client.post("/predict", data={"file": (io.BytesIO(data), "p.jpg")}, content_type="multipart/form-data")
    assert r.status_code == 200, r.json
    return r.json


def feedback(client, capture_id, label):
    return client.post("/feedback", json={"capture_id": capture_id, "label": label})


def folder_of(app):
    return app.extensions["garbage_collector"].folder


def pairs(folder):
    """{N: (image name, label file text)} of the img_N pairs in `folder`."""
    out = {}
    for name in os.listdir(folder):
        m = re.fullmatch(r"img_(\d+)\.txt", name)
        if m:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                out[int(m.group(1))] = f.read()
    return out


def csv_rows(folder):
    with open(os.path.join(folder, "feedback.csv"), encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------- the round trip
def test_a_correction_and_a_confirmation_become_labelled_pairs(app, glass_model):
    client = app.test_client()
    folder = folder_of(app)
    with open(os.path.join(folder, RULE_FILE_NAME), encoding="utf-8") as f:  # the served model's classes
        assert json.load(f) == {str(i): n for i, n in enumerate(GLASS_CLASSES)}
    before = client.get("/healthz").json["collected"]
    first, second = photo(1), photo(2, fmt="PNG")
    a = predict(client, first)
    assert a["collecting"] is True and re.fullmatch(r"[0-9a-f]{32}", a["capture_id"])
    wrong = (a["label"] + 1) % 4
    r = feedback(client, a["capture_id"], wrong)  # "Wrong? -> the right one"
    assert r.status_code == 201, r.json
    assert r.json["saved"] is True and r.json["label"] == wrong and r.json["name"] == GLASS_CLASSES[wrong]
    b = predict(client, second)
    r2 = feedback(client, b["capture_id"], b["label"])  # "Correct"
    assert r2.status_code == 201, r2.json
    n1, n2 = int(r.json["file"][4:-4]), int(r2.json["file"][4:-4])
    assert n2 == n1 + 1 and r.json["file"] == f"img_{n1}.jpg" and r2.json["file"] == f"img_{n2}.png"
    found = pairs(folder)
    assert found[n1] == f"img_{n1}.jpg, {wrong}" and found[n2] == f"img_{n2}.png, {b['label']}"
    with open(os.path.join(folder, f"img_{n1}.jpg"), "rb") as f:
        assert f.read() == first  # the bytes that were judged
    with open(os.path.join(folder, f"img_{n2}.png"), "rb") as f:
        assert f.read() == second
    rows = {row["file"]: row for row in csv_rows(folder)}
    with open(glass_model, "rb") as f:
        import hashlib
        sha = hashlib.sha256(f.read()).hexdigest()
    assert rows[f"img_{n1}.jpg"] == {
        "time": rows[f"img_{n1}.jpg"]["time"], "file": f"img_{n1}.jpg", "predicted_label": str(a["label"]),
        "predicted_name": GLASS_CLASSES[a["label"]], "probability": f"{a['probability']:.6f}", "label": str(wrong),
        "name": GLASS_CLASSES[wrong], "model_sha256": sha}
    assert rows[f"img_{n2}.png"]["label"] == rows[f"img_{n2}.png"]["predicted_label"] == str(b["label"])
    assert client.get("/healthz").json["collected"] == before + 2
    page = client.get("/").get_data(as_text=True)
    assert 'id="privacy"' in page and "用于改进模型" in page
    assert 'id="privacy"' in client.get("/upload").get_data(as_text=True)


# ----------------------------------------------------------------- every error
def test_feedback_errors_are_clear_and_consume_nothing(app):
    client = app.test_client()
    folder = folder_of(app)
    cid = predict(client, photo(3))["capture_id"]
    files = sorted(os.listdir(folder))
    cases = [
        ({"capture_id": "0" * 32, "label": 1}, 404, "unknown capture_id"),
        ({"capture_id": 7, "label": 1}, 400, "capture_id must be"),
        ({"label": 1}, 400, "capture_id must be"),
        ({"capture_id": cid, "label": 4}, 400, "not in the rule file (0..3)"),
        ({"capture_id": cid, "label": -1}, 400, "not in the rule file"),
        ({"capture_id": cid, "label": "3"}, 400, "must be an integer"),
        ({"capture_id": cid, "label": 2.0}, 400, "must be an integer"),
        ({"capture_id": cid, "label": True}, 400, "must be an integer"),
        ({"capture_id": cid}, 400, "must be an integer"),
    ]
    for body, status, message in cases:
        r = client.post("/feedback", json=body)
        assert r.status_code == status and message in r.json["error"], (body, r.status_code, r.json)
    for raw, ctype in ((b"not json", "application/json"), (b"[1, 2]", "application/json"), (b"x=1", "text/plain")):
        r = client.post("/feedback", data=raw, content_type=ctype)
        assert r.status_code == 400 and "capture_id" in r.json["error"], r.json
    assert sorted(os.listdir(folder)) == files  # nothing written by any of them
    assert feedback(client, cid, 0).status_code == 201  # and the capture is still there
    r = feedback(client, cid, 1)
    assert r.status_code == 409 and "already given" in r.json["error"]
    assert len(os.listdir(folder)) == len(files) + 2  # one pair (feedback.csv existed already or not)
    assert client.get("/feedback").status_code == 405


def test_an_expired_capture_gets_410(strict):
    client = strict.test_client()
    assert strict.extensions["garbage_collector"].store.ttl == 0.1  # COLLECT_TTL_S
    cid = predict(client, photo(4))["capture_id"]
    time.sleep(0.25)
    r = feedback(client, cid, 0)
    assert r.status_code == 410 and "expired" in r.json["error"], r.json
    assert pairs(folder_of(strict)) == {}


def test_a_full_store_makes_room_by_dropping_the_oldest(strict, app, monkeypatch):
    # count: COLLECT_PENDING=2
    client = strict.test_client()
    monkeypatch.setattr(strict.extensions["garbage_collector"].store, "ttl", 600.0)
    ids = [predict(client, photo(10 + i))["capture_id"] for i in range(3)]
    assert len(strict.extensions["garbage_collector"].store) == 2
    r = feedback(client, ids[0], 0)
    assert r.status_code == 410 and "oldest make room" in r.json["error"]
    # bytes: COLLECT_PENDING_MB=2 in `app`; three ~0.75 MB photos do not fit, one over 2 MB alone is not kept
    client = app.test_client()
    store = app.extensions["garbage_collector"].store
    big = [noise_png(500, seed) for seed in range(3)]
    assert all(700_000 < len(b) < 1_000_000 for b in big)
    ids = [predict(client, b)["capture_id"] for b in big]
    assert store.bytes <= 2 * 2 ** 20
    assert feedback(client, ids[0], 1).status_code == 410
    huge = predict(client, noise_png(900))
    assert huge["capture_id"] is None and huge["collecting"] is True  # answered, but nothing to give feedback on
    assert feedback(client, ids[1], 1).status_code == 201


def test_a_full_folder_or_disk_gets_507_and_nothing_is_written(strict, monkeypatch):
    client = strict.test_client()
    collector = strict.extensions["garbage_collector"]
    monkeypatch.setattr(collector.store, "ttl", 600.0)
    folder = folder_of(strict)
    files = sorted(os.listdir(folder))
    data = photo(20, size=(400, 300))
    assert len(data) > 10_240  # over COLLECT_MAX_MB=0.01
    cid = predict(client, data)["capture_id"]
    r = feedback(client, cid, 1)
    assert r.status_code == 507 and "full" in r.json["error"] and "0.01 MB" in r.json["error"], r.json
    assert sorted(os.listdir(folder)) == files
    # a disk with no room: 507 as well
    import tools.serving.feedback

    monkeypatch.setattr(collector, "max_bytes", None)
    usage = shutil.disk_usage(folder)
    monkeypatch.setattr(tools.serving.feedback.shutil, "disk_usage", lambda path: usage._replace(free=1024))
    r = feedback(client, cid, 1)
    assert r.status_code == 507 and "disk is full" in r.json["error"]
    assert sorted(os.listdir(folder)) == files
    monkeypatch.undo()
    monkeypatch.setattr(collector, "max_bytes", None)
    monkeypatch.setattr(collector.store, "ttl", 600.0)
    assert feedback(client, cid, 1).status_code == 201  # the photo waited: the retry is saved


@pytest.mark.parametrize("errno_name,status", [("EIO", 500), ("ENOSPC", 507)])
def test_a_failed_label_file_leaves_no_half_pair(app, monkeypatch, errno_name, status):
    import errno

    import tools.serving.feedback

    client = app.test_client()
    folder = folder_of(app)
    cid = predict(client, photo(30))["capture_id"]
    files = sorted(os.listdir(folder))
    log_path = os.path.join(folder, "feedback.csv")
    log = open(log_path, "rb").read() if os.path.exists(log_path) else None
    before = max(pairs(folder), default=0)
    real_replace = os.replace

    def replace(src, dst):
        if dst.endswith(".txt"):  # the image is in place by now; the label file fails
            assert os.path.exists(re.sub(r"\.txt$", ".jpg", dst))
            raise OSError(getattr(errno, errno_name), os.strerror(getattr(errno, errno_name)))
        return real_replace(src, dst)

    monkeypatch.setattr(tools.serving.feedback.os, "replace", replace)
    r = feedback(client, cid, 2)
    assert r.status_code == status and "nothing was saved" in r.json["error"], r.json
    assert sorted(os.listdir(folder)) == files  # no image, no temporary file
    assert (open(log_path, "rb").read() if os.path.exists(log_path) else None) == log
    monkeypatch.undo()
    r = feedback(client, cid, 2)
    assert r.status_code == 201
    assert r.json["file"] == f"img_{before + 1}.jpg"  # the failed try used no number


# ----------------------------------------------------------------- 8 clients at once
def test_eight_concurrent_clients_get_one_numbered_pair_each(app):
    from tools.data.check import check

    folder = folder_of(app)
    before = max(pairs(folder), default=0)
    client = app.test_client()
    photos = [photo(100 + i, size=(100 + i, 80)) for i in range(8)]
    captures = [predict(client, p)["capture_id"] for p in photos]
    labels = [i % 4 for i in range(8)]

    def give(i):
        c = app.test_client()  # a client per thread
        return [feedback(c, captures[i], labels[i]) for _ in range(2)]  # the second one must be refused

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(give, range(8)))
    assert [r.status_code for r in sum(answers, [])] == [201, 409] * 8
    # 8 clients sending feedback for one capture at once: exactly one is saved
    shared = predict(client, photo(200))["capture_id"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = sorted(r.status_code for r in pool.map(lambda _: feedback(app.test_client(), shared, 1), range(8)))
    assert statuses == [201] + [409] * 7
    found = pairs(folder)
    new = sorted(n for n in found if n > before)
    assert new == list(range(before + 1, before + 10))  # no gaps, no clashes
    names = sorted(os.listdir(folder))
    for n in new:
        image = found[n].split(",")[0]
        assert image == f"img_{n}.jpg" and names.count(image) == 1
    for i, r in enumerate(r for r, _ in answers):  # each photo under the label its client chose
        with open(os.path.join(folder, r.json["file"]), "rb") as f:
            assert f.read() == photos[i]
        assert found[int(r.json["file"][4:-4])].endswith(f", {labels[i]}")
    assert not [n for n in names if n.endswith(".tmp")]
    rows = csv_rows(folder)
    assert len(rows) == len(found) and len({row["file"] for row in rows}) == len(rows)
    assert app.test_client().get("/healthz").json["collected"] == len(found)
    report = check(folder, out_dir=os.path.join(os.path.dirname(folder), "check"), progress=False)
    assert report["errors"] == [] and report["images"] == len(found) and report["classes"] == 4, report


# ----------------------------------------------------------------- off by default
def test_without_collect_nothing_changes_and_nothing_is_written(glass_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model_dir = os.path.dirname(glass_model)
    model_files = sorted(os.listdir(model_dir))
    app = create_app({"MODEL": glass_model, "CROPS": 1, "TESTING": True})
    assert wait_ready(app).ready.is_set()
    client = app.test_client()
    body = predict(client, photo(5))
    assert set(body) == {"label", "name", "category", "probability", "top_k", "bins", "unsure", "time_ms"}
    r = client.post("/feedback", json={"capture_id": "0" * 32, "label": 1})
    assert r.status_code == 404 and "--collect" in r.json["error"]
    assert "collected" not in client.get("/healthz").json
    for path in ("/", "/upload"):
        page = client.get(path).get_data(as_text=True)
        assert "privacy" not in page and "改进模型" not in page
    assert os.listdir(tmp_path) == [] and sorted(os.listdir(model_dir)) == model_files


def test_a_folder_with_another_rule_file_refuses_to_start(glass_model, tmp_path, capsys):
    folder = tmp_path / "collected"
    folder.mkdir()
    other = {str(i): n for i, n in enumerate(CLASS_NAMES[:4])}
    (folder / RULE_FILE_NAME).write_text(json.dumps(other, ensure_ascii=False), encoding="utf-8")
    args = get_args_parser().parse_args(["--model", glass_model, "--collect", str(folder), "--port", "0"])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(folder) in err and "other classes" in err, err
    assert json.loads((folder / RULE_FILE_NAME).read_text(encoding="utf-8")) == other  # left alone
    assert os.listdir(folder) == [RULE_FILE_NAME]
    # a URL model's labels are known only once it is fetched: create_app checks then (/healthz tells
    # clients without naming the folder; main() prints the whole message)
    with pytest.raises(CollectError) as e:
        Collector(str(folder), None).start(GLASS_CLASSES)
    assert str(folder) in str(e.value) and str(folder) not in e.value.public and "other classes" in e.value.public
    assert os.listdir(folder) == [RULE_FILE_NAME]
