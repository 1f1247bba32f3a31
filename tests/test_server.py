"""The Flask app through its test client: pages, the API, and every kind of bad upload."""

import io
import json
import os
import re
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from datagen import make_image
from server import create_app


def _wait_ready(app, timeout=120):
    holder = app.extensions["garbage_model"]
    deadline = time.time() + timeout
    while not holder.ready.is_set() and holder.error is None and time.time() < deadline:
        time.sleep(0.05)
    return holder


@pytest.fixture(scope="module")
def app(tiny_model, tmp_path_factory):
    app = create_app({"MODEL": tiny_model, "CROPS": 1, "TESTING": True, "MAX_CONTENT_LENGTH": 2 * 1024 * 1024})
    assert _wait_ready(app).ready.is_set()
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def _img(mode="RGB", fmt="JPEG", size=(120, 90), **kw):
    rng = np.random.default_rng(0)
    img = make_image(1, rng, size)
    if mode != "RGB":
        img = img.convert(mode) if mode != "I;16" else Image.fromarray((np.asarray(img.convert("L"), np.uint16) * 257))
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _animated_gif():
    frames = [make_image(i, np.random.default_rng(i), (64, 48)).convert("P") for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _png_header(width, height):
    """A PNG that claims width x height (decompression-bomb size) with a tiny body."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _post(client, data, name="photo.jpg", field="file"):
    return client.post("/predict", data={field: (io.BytesIO(data), name)}, content_type="multipart/form-data")


def test_healthz_reports_the_model(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json["status"] == "ok" and r.json["classes"] == 4 and r.json["model"].endswith("best.h5")


def test_healthz_is_503_until_a_model_is_loaded(tmp_path):
    app = create_app({"MODEL": str(tmp_path / "missing.h5")})
    _wait_ready(app)
    r = app.test_client().get("/healthz")
    assert r.status_code == 503 and "no model" in r.json["error"]
    assert app.test_client().post("/predict", data=_img()).status_code == 503


@pytest.mark.parametrize("make,name", [
    (lambda: _img(), "a.jpg"), (lambda: _img("L"), "gray.jpg"), (lambda: _img("CMYK"), "cmyk.jpg"),
    (lambda: _img("RGBA", "PNG"), "rgba.png"), (lambda: _img("I;16", "PNG"), "deep.png"),
    (_animated_gif, "anim.gif"), (lambda: _img(fmt="WEBP"), "x.webp"), (lambda: _img(), "no_extension"),
], ids=["jpeg", "gray", "cmyk", "rgba", "png16", "animated-gif", "webp", "jpeg-without-extension"])
def test_predict_accepts_every_kind_of_photo(client, make, name):
    r = _post(client, make(), name)
    assert r.status_code == 200, r.json
    body = r.json
    assert {"label", "name", "category", "probability", "top_k", "bins", "unsure", "time_ms"} <= set(body)
    assert body["name"].split("/")[0] == body["category"] and 0 <= body["probability"] <= 1


def test_raw_image_body_gives_the_same_answer_as_multipart(client):
    data = _img(size=(640, 480))
    raw = client.post("/predict", data=data, content_type="image/jpeg")
    form = _post(client, data)
    assert raw.status_code == 200 and raw.json["label"] == form.json["label"]
    assert raw.json["probability"] == form.json["probability"]


@pytest.mark.parametrize("kind,status,message", [
    ("nothing", 400, "no image"), ("wrong-field", 400, "no image"), ("zero-bytes", 400, "empty"),
    ("text-as-jpg", 400, "not an image"), ("truncated", 400, "truncated"), ("bomb", 400, "too large"),
    ("pdf", 415, "unsupported image type PDF"), ("svg", 415, "SVG"), ("text-body", 415, "Content-Type"),
    ("over-limit", 413, "too large"),
])
def test_bad_uploads_get_json_errors_never_500(client, kind, status, message):
    if kind == "nothing":
        r = client.post("/predict")
    elif kind == "wrong-field":
        r = _post(client, _img(), field="image")
    elif kind == "zero-bytes":
        r = _post(client, b"")
    elif kind == "text-as-jpg":
        r = _post(client, b"hello world, I am text", "photo.jpg")
    elif kind == "truncated":
        r = _post(client, _img(size=(400, 300))[:2000])
    elif kind == "bomb":
        r = _post(client, _png_header(20000, 20000), "huge.png")
    elif kind == "pdf":
        r = _post(client, b"%PDF-1.7\n%binary", "scan.jpg")
    elif kind == "svg":
        r = _post(client, b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "x.png")
    elif kind == "text-body":
        r = client.post("/predict", data=b"hello", content_type="text/plain")
    else:
        r = _post(client, os.urandom(3 * 1024 * 1024))
    assert r.status_code == status, (r.status_code, r.get_data()[:200])
    assert r.is_json and message in r.json["error"]


def test_the_service_still_answers_after_bad_input(client):
    _post(client, _png_header(20000, 20000))
    _post(client, b"\xff\xd8\xff garbage")
    assert _post(client, _img()).status_code == 200


def test_pages_have_the_controls_and_no_outside_links(client):
    index, upload = client.get("/"), client.get("/upload")
    assert index.status_code == 200 and upload.status_code == 200
    html = index.get_data(as_text=True)
    assert 'id="capture"' in html and 'id="result"' in html and 'id="preview"' in html
    assert 'id="file"' in upload.get_data(as_text=True) and 'id="result"' in upload.get_data(as_text=True)
    texts = [html, upload.get_data(as_text=True)]
    for name in ("app.js", "camera.js", "upload.js", "style.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200
        texts.append(r.get_data(as_text=True))
    for text in texts:  # works with no internet: nothing loaded from elsewhere
        assert not re.search(r"""(src|href)\s*=\s*["']https?://""", text)
        assert "cdn" not in text.lower()


def test_unknown_routes_answer_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.is_json


def test_save_uploads_uses_generated_names_and_a_sidecar(tiny_model, tmp_path):
    keep = tmp_path / "kept"
    app = create_app({"MODEL": tiny_model, "CROPS": 1, "SAVE_UPLOADS": str(keep)})
    _wait_ready(app)
    r = _post(app.test_client(), _img(), "../../evil name.jpg")
    assert r.status_code == 200
    files = sorted(os.listdir(keep))
    assert len(files) == 2 and not any("evil" in f for f in files)
    image, sidecar = [f for f in files if f.endswith(".jpg")][0], [f for f in files if f.endswith(".json")][0]
    assert os.path.splitext(image)[0] == os.path.splitext(sidecar)[0]
    assert json.load(open(keep / sidecar, encoding="utf-8"))["label"] == r.json["label"]


def test_large_uploads_are_not_written_to_disk(tiny_model, monkeypatch):
    """Werkzeug would spool this 1.5 MB upload to a temporary file; the app keeps it in memory."""
    import werkzeug.formparser

    spooled = []

    class Recorder(io.BytesIO):
        def __init__(self, *args, **kwargs):
            spooled.append(kwargs)
            super().__init__()

    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", Recorder)
    app = create_app({"MODEL": tiny_model, "CROPS": 1})
    _wait_ready(app)
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1000, 1000, 3), dtype=np.uint8))
    data = _img_bytes(noisy)
    assert len(data) > 1024 * 1024
    r = _post(app.test_client(), data)
    assert r.status_code == 200 and spooled == []


def _img_bytes(img):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()
