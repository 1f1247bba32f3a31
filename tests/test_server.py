"""The Flask app through its test client: pages, the API, and every kind of bad upload."""

import hashlib
import io
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from support.datagen import make_image
from support.servers import wait_ready
from tools.images import _register_heif
from tools.serving.app import create_app
from tools.serving.http import SECURITY_HEADERS, SERVER_NAME, Limits, listen, make_dev_server


@pytest.fixture(scope="module")
def app(tiny_model, tmp_path_factory):
    app = create_app({"MODEL": tiny_model, "CROPS": 1, "TESTING": True, "MAX_CONTENT_LENGTH": 2 * 1024 * 1024})
    assert wait_ready(app).ready.is_set()
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def _img(mode="RGB", fmt="JPEG", size=(120, 90), **kw):
    """A generated photo of class 1, encoded (in `mode`: grey ones have lost what tells the class)."""
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


def test_healthz_reports_the_model_by_name_and_hash_not_its_path(client, tiny_model):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json["status"] == "ok" and r.json["classes"] == 4
    assert r.json["model"] == "best.h5"  # never the absolute path
    with open(tiny_model, "rb") as f:
        assert r.json["model_sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert os.path.dirname(tiny_model) not in r.get_data(as_text=True)


def test_healthz_is_503_until_a_model_is_loaded(tmp_path):
    app = create_app({"MODEL": str(tmp_path / "missing.h5")})
    wait_ready(app)
    r = app.test_client().get("/healthz")
    assert r.status_code == 503 and "no model" in r.json["error"]
    assert r.json["model"] == "missing.h5" and str(tmp_path) not in r.get_data(as_text=True)
    assert app.test_client().post("/predict", data=_img()).status_code == 503


def test_labels_give_the_pages_the_english_names(client, monkeypatch):
    from support.datagen import CLASS_NAMES
    from tools.names import NamesFileError
    from tools.serving import api

    r = client.get("/labels")
    assert r.status_code == 200 and r.json["labels"] == CLASS_NAMES[:4]
    assert r.json["names"] == {"en": {"items": ["drink can", "battery", "fruit peel", "cigarette butt"],
                                      "bins": {"可回收物": "Recyclable", "有害垃圾": "Hazardous",
                                               "厨余垃圾": "Kitchen waste", "其他垃圾": "Other waste"}}}

    def broken(labels, lang):
        raise NamesFileError("cannot read the names file names_en.json: bad JSON")

    monkeypatch.setattr(api, "names_in", broken)  # a broken names file: the class list still comes
    r = client.get("/labels")
    assert r.status_code == 200 and r.json["labels"] == CLASS_NAMES[:4] and r.json["names"] == {}


@pytest.mark.parametrize("make,name,label", [
    (lambda: _img(), "a.jpg", 1), (lambda: _img("L"), "gray.jpg", None), (lambda: _img("CMYK"), "cmyk.jpg", 1),
    (lambda: _img("RGBA", "PNG"), "rgba.png", 1), (lambda: _img("I;16", "PNG"), "deep.png", None),
    (_animated_gif, "anim.gif", 0), (lambda: _img(fmt="WEBP"), "x.webp", 1), (lambda: _img(), "no_extension", 1),
    (lambda: _register_heif() and _img(fmt="HEIF"), "IMG_0001.HEIC", 1), (lambda: _img(fmt="AVIF"), "x.avif", 1),
], ids=["jpeg", "gray", "cmyk", "rgba", "png16", "animated-gif", "webp", "jpeg-without-extension", "heic", "avif"])
def test_predict_accepts_every_kind_of_photo(client, make, name, label):
    """Each is decoded as the photo it is: its class (the first frame's for the GIF; grey photos have none)."""
    r = _post(client, make(), name)
    assert r.status_code == 200, r.json
    body = r.json
    assert {"label", "name", "category", "probability", "top_k", "bins", "unsure", "time_ms"} <= set(body)
    assert body["name"].split("/")[0] == body["category"] and 0 <= body["probability"] <= 1
    assert label is None or body["label"] == label, body
    assert body["probability"] == body["top_k"][0]["probability"] == max(t["probability"] for t in body["top_k"])


def test_pixel_budget_is_a_setting(tiny_model):
    app = create_app({"MODEL": tiny_model, "CROPS": 1, "TESTING": True, "MAX_PIXELS": 10_000})
    assert wait_ready(app).ready.is_set()
    r = _post(app.test_client(), _img(fmt="PNG", size=(120, 90)), "a.png")
    assert r.status_code == 413 and r.json["error"] == "image too large: 120x90 is 0.0 megapixels, the limit is 0.01"
    assert _post(app.test_client(), _img(fmt="PNG", size=(100, 90)), "a.png").status_code == 200


def test_raw_image_body_gives_the_same_answer_as_multipart(client):
    data = _img(size=(640, 480))
    raw = client.post("/predict", data=data, content_type="image/jpeg")
    form = _post(client, data)
    assert raw.status_code == 200 and raw.json["label"] == form.json["label"] == 1
    assert raw.json["probability"] == form.json["probability"]


@pytest.mark.parametrize("kind,status,message", [
    ("nothing", 400, "no image"), ("wrong-field", 400, "no image"), ("zero-bytes", 400, "empty"),
    ("text-as-jpg", 400, "not an image"), ("truncated", 400, "truncated"), ("bomb", 413, "too large"),
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
    for html in texts[:2]:  # the CSP allows only the app's own files: no inline script, style or handler
        assert all(re.search(r"\bsrc=", tag) for tag in re.findall(r"<script[^>]*>", html))
        assert "<style" not in html and not re.search(r"\sstyle=", html) and not re.search(r"\son[a-z]+=", html)


def test_unknown_routes_answer_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.is_json


def test_save_uploads_uses_generated_names_and_a_sidecar(tiny_model, tmp_path):
    keep = tmp_path / "kept"
    app = create_app({"MODEL": tiny_model, "CROPS": 1, "SAVE_UPLOADS": str(keep)})
    wait_ready(app)
    r = _post(app.test_client(), _img(), "../../evil name.jpg")
    assert r.status_code == 200 and r.json["label"] == 1
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
    wait_ready(app)
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1000, 1000, 3), dtype=np.uint8))
    data = _img_bytes(noisy)
    assert len(data) > 1024 * 1024
    r = _post(app.test_client(), data)
    assert r.status_code == 200 and spooled == []


def _img_bytes(img):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


# --- multipart: say what was wrong, and take the photo whatever its filename ---------------------

def _multipart(parts, boundary=b"b0undary"):
    """A multipart/form-data body written by hand: parts are (raw Content-Disposition value, bytes)."""
    body = b"".join(b"--" + boundary + b"\r\nContent-Disposition: " + disposition
                    + b"\r\nContent-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
                    for disposition, data in parts)
    return body + b"--" + boundary + b"--\r\n", "multipart/form-data; boundary=" + boundary.decode()


@pytest.mark.parametrize("disposition", [
    b'form-data; name="file"; filename="caf\xe9.jpg"',      # Latin-1 byte: Werkzeug dropped the whole form
    b'form-data; name="file"; filename="\xff\xfe.jpg"',
    b'form-data; name="file"; filename="a\r\nb.jpg"',       # Werkzeug cut the header: the photo became text
    b'form-data; name="file"; filename="a\rb.jpg"',
    b'form-data; name="file"; filename="a\nb.jpg"',
    b'form-data; name="file"; filename="a\r\nContent-Type: text/html\r\nX: \xe9.jpg"',
    b'form-data; name="file"',                                # no filename at all (curl -F file=<photo.jpg)
    b'form-data; name="file"; filename="\xe5\x9b\xbe\xe7\x89\x87.jpg"',  # UTF-8 图片.jpg, fine before too
], ids=["latin1", "invalid-utf8", "crlf", "cr", "lf", "crlf-fake-header", "no-filename", "utf8"])
def test_the_photo_is_accepted_whatever_its_filename(client, disposition):
    photo = _img(size=(160, 120))
    expected = _post(client, photo).json
    assert expected["label"] == 1
    body, ctype = _multipart([(disposition, photo)])
    r = client.post("/predict", data=body, content_type=ctype)
    assert r.status_code == 200, r.json
    assert r.json["label"] == expected["label"] and r.json["probability"] == expected["probability"]


def test_a_large_photo_with_a_crlf_filename_is_not_taken_for_a_text_field(client):
    """Werkzeug made it a text field, then refused it as over 500 KB: 'file too large'."""
    noisy = Image.fromarray(np.random.default_rng(1).integers(0, 255, (700, 700, 3), dtype=np.uint8))
    photo = _img_bytes(noisy)
    assert 500_000 < len(photo) < 2 * 1024 * 1024
    body, ctype = _multipart([(b'form-data; name="file"; filename="a\r\nb.jpg"', photo)])
    r = client.post("/predict", data=body, content_type=ctype)
    assert r.status_code == 200, r.json


def test_other_form_fields_beside_the_photo_are_fine(client):
    photo = _img()
    expected = _post(client, photo).json["probability"]
    body, ctype = _multipart([(b'form-data; name="note"', b"from the kitchen"),
                              (b'form-data; name="file"; filename="p.jpg"', photo),
                              (b'form-data; name="file"; filename="second.jpg"', b"not the photo"),
                              (b'form-data; name="thumb"; filename="t.bin"', os.urandom(700_000))])
    r = client.post("/predict", data=body, content_type=ctype)
    assert r.status_code == 200 and r.json["probability"] == expected


@pytest.mark.parametrize("kind,message", [
    ("big-text-field", "form field 'note' is too large: text fields may have 500 KB"),
    ("1001-fields", "too many form fields: the limit is 1000 parts"),
    ("no-boundary", "no boundary"),
    ("cut-off", "malformed multipart body"),
])
def test_multipart_problems_say_what_was_wrong(client, kind, message):
    photo = (b'form-data; name="file"; filename="p.jpg"', _img())
    if kind == "big-text-field":  # under the 2 MB body limit of this app: not 'file too large'
        body, ctype = _multipart([(b'form-data; name="note"', b"x" * 600_000), photo])
    elif kind == "1001-fields":
        body, ctype = _multipart([(b'form-data; name="f%d"' % i, b"1") for i in range(1001)] + [photo])
    elif kind == "no-boundary":
        body, ctype = _multipart([photo])[0], "multipart/form-data"
    else:
        body, ctype = _multipart([photo])
        body = body[:len(body) // 2]
    r = client.post("/predict", data=body, content_type=ctype)
    assert r.status_code == (413 if kind in ("big-text-field", "1001-fields") else 400), r.json
    assert message in r.json["error"] and "file too large" not in r.json["error"]


# --- headers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [("get", "/"), ("get", "/upload"), ("get", "/static/app.js"),
                                         ("get", "/healthz"), ("get", "/labels"), ("get", "/nope"),
                                         ("post", "/predict")])
def test_every_response_has_the_security_headers(client, method, path):
    r = getattr(client, method)(path)
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (name, r.headers)
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"


# --- the dev server (python server.py): timeouts, Server header, TLS --------------------------------

@pytest.fixture
def dev_server(app):
    """Werkzeug's server as python server.py builds it, with a 1.5 s read timeout; yields its port."""
    server = make_dev_server(app, listen("127.0.0.1", 0), Limits(idle_s=1.5))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _read_all(sock, deadline):
    """Everything the server sends until it closes the connection (or the deadline passes)."""
    out = b""
    sock.settimeout(0.2)
    while time.time() < deadline:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:  # the server closed with our unread bytes on its side: its answer came first
            return out, True
        if not data:
            return out, True
        out += data
    return out, False


def test_dev_server_answers_a_stalled_upload_with_408(dev_server):
    with socket.create_connection(("127.0.0.1", dev_server.port)) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
                  + _img()[:1000])
        start = time.time()
        answer, closed = _read_all(s, start + 10)
    assert closed and time.time() - start < 5
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert "upload stalled" in json.loads(body)["error"]


def test_dev_server_closes_connections_that_stall_or_linger(dev_server):
    port = dev_server.port
    stalled_headers = socket.create_connection(("127.0.0.1", port))
    stalled_headers.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    # a keep-alive client that sends its next request on the heels of the answer and keeps the socket
    # open: Werkzeug's read of those leftover bytes waited for 10 MB or the end, holding the thread
    lingering = socket.create_connection(("127.0.0.1", port))
    lingering.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert lingering.recv(100).startswith(b"HTTP/1.1 200")
    lingering.sendall(b"GET /healthz HTTP/1.1\r\n")
    start = time.time()
    for s in (stalled_headers, lingering):
        _, closed = _read_all(s, start + 10)
        s.close()
        assert closed
    assert time.time() - start < 6


def test_dev_server_names_no_versions(dev_server):
    with socket.create_connection(("127.0.0.1", dev_server.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer, _ = _read_all(s, time.time() + 10)
    head = answer.partition(b"\r\n\r\n")[0].decode()
    assert f"\r\nServer: {SERVER_NAME}\r\n" in head
    assert "Werkzeug" not in head and "Python" not in head


def test_https_dev_server_is_not_stopped_by_a_silent_client(app, tmp_path):
    """Werkzeug ran each TLS handshake in its accept loop: one silent client stopped the server."""
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    server = make_dev_server(app, listen("127.0.0.1", 0), Limits(idle_s=2), cert=str(cert), key=str(key))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    silent = socket.create_connection(("127.0.0.1", server.port))
    try:
        time.sleep(0.2)
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                context.wrap_socket(raw) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
        _, closed = _read_all(silent, time.time() + 6)  # and the silent one is dropped after the timeout
        assert closed
    finally:
        silent.close()
        server.shutdown()
        server.server_close()


# --- slow clients, the connection limit, bodies without a length: both servers, in this process ------

SLOW = Limits(idle_s=3, head_s=1.5, min_rate=1000, connections=100)  # small deadlines: seconds, not minutes
SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200  # never finished, never silent


@pytest.fixture(params=["dev", "production"])
def slow_server(request, app):
    """The app under the dev server or waitress (as server.py builds them) with SLOW limits; yields the port."""
    from tools.serving.http import make_server_for, serve_until_interrupted, stop

    production = request.param == "production"
    server = make_server_for(app, listen("127.0.0.1", 0), production, SLOW, threads=2)
    thread = threading.Thread(target=serve_until_interrupted, args=(server, production), daemon=True)
    thread.start()
    yield server.socket.getsockname()[1]
    stop(server, production)
    thread.join(10)
    assert not thread.is_alive()


def test_stopping_a_waitress_server_whose_loop_has_closed_it_is_harmless(app):
    """The loop can see stop()'s flag on its own poll timeout and close everything before stop() pulls the
    trigger that wakes it: a pull then wrote to a closed descriptor (OSError EBADF at a test's teardown)."""
    from tools.serving.http import make_server_for, serve_until_interrupted, stop

    server = make_server_for(app, listen("127.0.0.1", 0), True, SLOW, threads=1)
    thread = threading.Thread(target=serve_until_interrupted, args=(server, True), daemon=True)
    thread.start()
    stop(server, True)
    thread.join(10)
    assert not thread.is_alive()
    stop(server, True)  # after close_all(): what the race does


def _answer(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def test_a_trickled_request_head_gets_408_at_the_head_deadline(slow_server):
    """A header byte every 0.4 s is never silent for the 3 s timeout: the 1.5 s head deadline closes it."""
    import concurrent.futures

    from support.hostile import trickle

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        tricklers = pool.submit(trickle, slow_server, 20, SLOW_HEAD, 0.4, 10)
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", slow_server), timeout=5) as s:  # others are answered
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _read_all(s, time.time() + 5)[0].startswith(b"HTTP/1.1 200")
        results = tricklers.result()
    for closed_after, raw in results:
        head, body = _answer(raw)
        assert head.startswith("HTTP/1.1 408") and "request head too slow" in json.loads(body)["error"], raw[:300]
        assert all(f"{name}: {value}" in head for name, value in SECURITY_HEADERS.items())
        assert closed_after is not None and 1.4 < closed_after < SLOW.idle_s, closed_after  # not for silence


def test_a_trickled_body_gets_408_below_the_minimum_rate(slow_server):
    """200 B/s where 1000 B/s are asked for, after the 1.5 s head start: cut at about 1.9 s."""
    from support.hostile import trickle

    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
    (closed_after, raw), = trickle(slow_server, 1, b"\xff" * 5000, 0.25, 10, burst=head, step=50)
    head, body = _answer(raw)
    assert head.startswith("HTTP/1.1 408") and "upload too slow" in json.loads(body)["error"], raw[:300]
    assert closed_after is not None and 1.5 < closed_after < SLOW.idle_s, closed_after


@pytest.mark.parametrize("form", [False, True], ids=["raw", "multipart"])
def test_a_chunked_body_over_the_limit_gets_413_json_not_a_judgement(slow_server, form):
    """A whole photo in the first 2 MB of a 3 MB chunked body: reading up to the limit and judging what
    came was wrong (the dev server answered 200); both servers answer the app's 413."""
    photo = _img(size=(640, 480))
    if form:
        body, ctype = _multipart([(b'form-data; name="file"; filename="p.jpg"', photo + os.urandom(3 * 1024 * 1024))])
    else:
        body, ctype = photo + os.urandom(3 * 1024 * 1024), "image/jpeg"
    with socket.create_connection(("127.0.0.1", slow_server), timeout=10) as s:
        def send():
            try:
                s.sendall(f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n".encode())
                for i in range(0, len(body), 65536):
                    part = body[i:i + 65536]
                    s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                s.sendall(b"0\r\n\r\n")
                s.shutdown(socket.SHUT_WR)  # the dev server drains what is left after its answer
            except OSError:
                pass  # the server answered and closed before the end

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        raw, _ = _read_all(s, time.time() + 10)
        sender.join(10)
    head, answer = _answer(raw)
    assert head.startswith("HTTP/1.1 413"), raw[:300]
    assert json.loads(answer) == {"error": "file too large: the limit is 2 MB"}
    assert all(f"{name}: {value}" in head for name, value in SECURITY_HEADERS.items()), head


def test_the_dev_server_holds_at_most_its_connection_limit_of_threads(app):
    """Werkzeug started a thread per connection without bound (200 slow clients, 210 threads)."""
    server = make_dev_server(app, listen("127.0.0.1", 0), Limits(idle_s=3, connections=8))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    before = threading.active_count()
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(12)]
    try:
        refused = []
        for s in held[8:]:
            raw, closed = _read_all(s, time.time() + 5)
            refused.append(closed and raw)
        assert threading.active_count() - before <= 8
        for raw in refused:
            head, body = _answer(raw)
            assert head.startswith("HTTP/1.1 503") and "\r\nRetry-After: 5\r\n" in head, raw[:300]
            assert "server busy" in json.loads(body)["error"]
        for s in held[:8]:  # the first 8 are held open, each by a thread, until the 3 s timeout
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(100)
    finally:
        for s in held:
            s.close()
        server.shutdown()
        server.server_close()


def test_settings_from_the_environment_through_flasks_loader(monkeypatch):
    """GARBAGE_<NAME> variables become typed settings through Flask's from_prefixed_env; a variable with
    a double underscore beside one of the same name (which Flask would nest into a string) is ignored."""
    from tools.serving.settings import settings_from_env

    for key in [k for k in os.environ if k.startswith("GARBAGE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("GARBAGE_TOP_K", "3")
    monkeypatch.setenv("GARBAGE_COLLECT_DIR", "2024")
    assert settings_from_env() == {"TOP_K": 3, "COLLECT_DIR": "2024"}  # a folder named 2024 stays a string
    monkeypatch.setenv("GARBAGE_TOP_K__X", "1")
    assert settings_from_env()["TOP_K"] == 3
