"""A model by URL (tools/model_source.py): fetched with labels.json into the Keras cache, pinned by
--model_sha256, used offline from the cache; predict.py and server.py take the URL for --model."""

import contextlib
import functools
import glob
import hashlib
import http.server
import json
import os
import shutil
import threading
import time

import pytest

from support.servers import free_port
from tools.model_source import CACHE_SUBDIR, ModelSourceError, resolve_model

WRONG = "0" * 64


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _publish(tiny_model, folder):
    """What a team uploads: best.h5 and labels.json side by side."""
    os.makedirs(folder, exist_ok=True)
    for name in ("best.h5", "labels.json"):
        shutil.copy(os.path.join(os.path.dirname(tiny_model), name), os.path.join(folder, name))


def _cached_files(cache):
    """Every file under the Keras cache's model folder, temporary downloads included (relative paths)."""
    root = os.path.join(cache, CACHE_SUBDIR)
    return sorted(os.path.relpath(os.path.join(r, f), root) for r, _, files in os.walk(root) for f in files)


class _Handler(http.server.SimpleHTTPRequestHandler):
    gate = None  # a threading.Event each GET waits for, or None

    def do_GET(self):
        if self.gate is not None:
            self.gate.wait(30)
        super().do_GET()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serve(folder, gate=None):
    """An HTTP server on 127.0.0.1 for `folder` that this test can shut down (so its URL goes dead)."""
    handler = functools.partial(type("H", (_Handler,), {"gate": gate}), directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        if gate is not None:
            gate.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def reference(tiny_model, photo_bytes):
    """The answer for photo_bytes with the local file (crops=1): class 2, the photo's."""
    from tools.inference import Classifier

    answer = Classifier(tiny_model, crops=1).predict_bytes(photo_bytes)
    assert answer["label"] == 2
    return answer


# --- tools.model_source.resolve_model ----------------------------------------------------------------


def test_a_local_path_is_returned_unchanged_and_checked_against_a_hash_given(tiny_model):
    sha = _sha256(tiny_model)
    assert resolve_model(tiny_model) == tiny_model
    assert resolve_model(tiny_model, sha.upper()) == tiny_model
    with pytest.raises(ModelSourceError, match=f"has sha256 {sha}, not the --model_sha256 {WRONG}"):
        resolve_model(tiny_model, WRONG)
    with pytest.raises(ModelSourceError, match="64 hex digits"):
        resolve_model(tiny_model, "abc")
    with pytest.raises(ModelSourceError, match="must name a .h5, .keras, .tflite file"):
        resolve_model("https://example.com/models/photo.jpg")


def test_url_fetches_model_and_labels_into_a_cache_folder_of_that_url(tiny_model, http_dir, tmp_path):
    base, www = http_dir
    _publish(tiny_model, www / "team" / "v1")
    _publish(tiny_model, www / "team" / "v2")
    (www / "team" / "v1" / "model.tflite").write_bytes(b"TFL3 stand-in")  # resolve_model does not open it
    cache = str(tmp_path / "keras")
    path = resolve_model(base + "team/v1/best.h5", cache_dir=cache)
    assert path.startswith(os.path.join(cache, CACHE_SUBDIR) + os.sep) and os.path.basename(path) == "best.h5"
    assert _sha256(path) == _sha256(tiny_model)
    labels = os.path.join(os.path.dirname(path), "labels.json")
    assert json.load(open(labels, encoding="utf-8")) == json.load(
        open(os.path.join(os.path.dirname(tiny_model), "labels.json"), encoding="utf-8"))
    lite = resolve_model(base + "team/v1/model.tflite", cache_dir=cache)
    assert lite == os.path.join(os.path.dirname(path), "model.tflite")  # same URL folder, same cache folder
    other = resolve_model(base + "team/v2/best.h5", cache_dir=cache)
    assert os.path.dirname(other) != os.path.dirname(path)  # another URL folder, another cache folder
    assert len(_cached_files(cache)) == 5  # 2 x (best.h5, labels.json) + model.tflite: no temporary leftovers


def test_wrong_hash_is_one_line_and_nothing_is_cached_then_the_right_hash_works(tiny_model, http_dir, tmp_path):
    base, www = http_dir
    _publish(tiny_model, www / "v1")
    url, sha, cache = base + "v1/best.h5", _sha256(tiny_model), str(tmp_path / "keras")
    with pytest.raises(ModelSourceError) as e:
        resolve_model(url, WRONG, cache_dir=cache)
    assert str(e.value) == f"{url} has sha256 {sha}, not the --model_sha256 {WRONG} given: not used, not cached"
    assert _cached_files(cache) == []
    assert _sha256(resolve_model(url, sha, cache_dir=cache)) == sha


def test_cached_copy_is_used_offline_and_a_wrong_hash_never_deletes_it(tiny_model, tmp_path):
    _publish(tiny_model, tmp_path / "www" / "v1")
    sha, cache = _sha256(tiny_model), str(tmp_path / "keras")
    with _serve(tmp_path / "www") as base:
        url = base + "v1/best.h5"
        path = resolve_model(url, cache_dir=cache)
    # the server is gone: the URL is unreachable now
    assert resolve_model(url, cache_dir=cache) == path
    assert resolve_model(url, sha, cache_dir=cache) == path
    with pytest.raises(ModelSourceError) as e:  # a hash that is not the cached file's: it must be downloaded
        resolve_model(url, WRONG, cache_dir=cache)
    assert str(e.value).startswith(f"cannot download {url} (") and "Connection refused" in str(e.value)
    assert str(e.value).endswith(f"and the copy cached at {path} has another sha256")
    assert _sha256(path) == sha and resolve_model(url, sha, cache_dir=cache) == path  # still there, still used


def test_unreachable_without_a_cached_copy_names_the_url_and_the_cache(tiny_model, http_dir, tmp_path):
    cache = str(tmp_path / "keras")
    url = f"http://127.0.0.1:{free_port()}/models/best.h5"  # nothing listens there
    with pytest.raises(ModelSourceError) as e:
        resolve_model(url, cache_dir=cache)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"cannot download {url} (")
    assert message.endswith(f"and no copy is cached at {e.value.cache_path}")
    assert e.value.cache_path.startswith(os.path.join(cache, CACHE_SUBDIR) + os.sep)
    base, www = http_dir
    (www / "v1").mkdir()
    shutil.copy(tiny_model, www / "v1" / "best.h5")  # published without its labels.json
    with pytest.raises(ModelSourceError, match=f"cannot download {base}v1/labels.json \\(404"):
        resolve_model(base + "v1/best.h5", cache_dir=cache)
    assert _cached_files(cache) == []  # a model without its labels is not cached


# --- server.py ---------------------------------------------------------------------------------------


def _wait(holder, timeout=120):
    deadline = time.time() + timeout
    while not holder.ready.is_set() and holder.error is None and time.time() < deadline:
        time.sleep(0.05)


def test_server_fetches_in_the_background_and_healthz_shows_name_and_hash(tiny_model, tmp_path, monkeypatch,
                                                                         photo_bytes, reference):
    from tools.serving.app import create_app

    _publish(tiny_model, tmp_path / "www" / "v1")
    sha, gate = _sha256(tiny_model), threading.Event()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with _serve(tmp_path / "www", gate) as base:
        monkeypatch.setenv("GARBAGE_MODEL", base + "v1/best.h5")  # the settings a WSGI server passes
        monkeypatch.setenv("GARBAGE_MODEL_SHA256", sha)
        app = create_app({"CROPS": 1, "TESTING": True})  # returns while the download waits at the gate
        client = app.test_client()
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json["status"] == "loading" and r.json["model"] == "best.h5"
        gate.set()
        _wait(app.extensions["garbage_model"])
    r = client.get("/healthz")
    assert r.status_code == 200, r.json
    assert r.json["model"] == "best.h5" and r.json["model_sha256"] == sha
    assert glob.glob(str(tmp_path / "keras" / CACHE_SUBDIR / "*" / "best.h5"))
    r = client.post("/predict", data=photo_bytes, content_type="image/jpeg")
    assert r.status_code == 200 and r.json["label"] == reference["label"]
    assert abs(r.json["probability"] - reference["probability"]) < 1e-5


def test_server_url_errors_name_url_and_cache_for_the_operator_only(tmp_path, monkeypatch, capsys):
    import server  # the CLI's own exit status is checked below
    from tools.serving.app import create_app

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    url = f"http://127.0.0.1:{free_port()}/secret-token/best.h5"  # nothing listens there
    app = create_app({"MODEL": url, "TESTING": True})
    _wait(app.extensions["garbage_model"])
    r = app.test_client().get("/healthz")
    assert r.status_code == 503 and r.json["status"] == "error" and r.json["model"] == "best.h5"
    assert "cannot download best.h5" in r.json["error"]
    assert "secret-token" not in r.json["error"] and str(tmp_path) not in r.json["error"]
    args = server.get_args_parser().parse_args(["--model", url, "--model_sha256", WRONG, "--port", "0"])
    assert server.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: cannot download {url} (") and str(tmp_path / "keras") in err


# --- predict.py (two CLI runs) -----------------------------------------------------------------------


def test_predict_by_url_refuses_a_wrong_hash_then_fetches_and_answers_as_the_local_file(
        cli, tiny_model, http_dir, tmp_path, photo_bytes, reference):
    base, www = http_dir
    _publish(tiny_model, www / "team")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(photo_bytes)
    url, env = base + "team/best.h5", {"KERAS_HOME": str(tmp_path / "keras")}
    r = cli("predict.py", photo, "--model", url, "--model_sha256", WRONG, "--crops", "1", env=env)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert errors == [f"error: {url} has sha256 {_sha256(tiny_model)}, not the --model_sha256 {WRONG} given: "
                      "not used, not cached"]
    assert _cached_files(tmp_path / "keras") == []
    r = cli("predict.py", photo, "--model", url, "--model_sha256", _sha256(tiny_model), "--crops", "1", "--json",
            env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    answer = json.loads(r.stdout)  # the download's progress went to stderr, stdout is the one result
    assert answer["label"] == reference["label"] and abs(answer["probability"] - reference["probability"]) < 1e-5
    cached = _cached_files(tmp_path / "keras")
    assert [os.path.basename(f) for f in cached] == ["best.h5", "labels.json"]


def test_train_test_only_by_url_writes_its_report_where_asked(cli, tiny_model, tiny_data, http_dir, tmp_path):
    base, www = http_dir
    _publish(tiny_model, www / "team")
    report_dir = tmp_path / "report"
    r = cli("train.py", "--test_only", "--model", base + "team/best.h5", "--model_sha256", _sha256(tiny_model),
            "--data_dir", tiny_data, "--report_dir", report_dir, "--output_dir", tmp_path / "out", "--batch_size", "16",
            env={"KERAS_HOME": str(tmp_path / "keras")})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert json.load(open(report_dir / "report.json", encoding="utf-8"))["images"] == 48
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
