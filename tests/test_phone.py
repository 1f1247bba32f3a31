"""The pages on a phone: a real server process, headless Chromium at a phone's size (390x844, touch).

- the photo is shrunk in the browser before it is posted (12 MP phone photo -> <= 1280 px JPEG),
  EXIF orientation applied, and the answer is the one the original gets;
- the camera page on an insecure origin (http://<laptop>:10086/ from a phone) says the camera needs
  https there and links to the upload page, whose file input opens the phone camera;
- nothing on either page overlaps anything else, before and after a photo.
"""

import http.server
import io
import sys
import threading

import numpy as np
import pytest
import requests
from PIL import Image, ImageOps

from support.browser import LAN_HOST, PHONE, check_layout, on_screen, screenshots, wait_true, watch_csp
from support.datagen import make_image
from support.servers import free_port, start, stop

CAMERA_SIZE = (1920, 1080)  # the fake camera films at this size: a snapshot must come out <= 1280 px


@pytest.fixture(scope="module")
def server(tiny_model):
    port = free_port()
    proc = start([sys.executable, "server.py", "--model", tiny_model, "--host", "127.0.0.1", "--port", str(port),
                  "--crops", "5", "--threshold", "0.999"], port)
    proc.url = f"http://127.0.0.1:{port}"
    proc.lan_url = f"http://{LAN_HOST}:{port}"
    yield proc
    stop(proc)


class Wire:
    """A reverse proxy in front of the server that keeps every POST as it came over the wire.

    Playwright cannot show it: for a fetch() whose FormData holds a Blob or File, Chromium's
    request.post_data_buffer (and page.route's) carries the text parts only, and request.sizes()
    counts only those (179 bytes for a 2 MB photo), so a body-size check there would always pass."""

    def __init__(self, target):
        self.posts = []  # (headers, body)
        wire = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.command == "POST":
                    wire.posts.append((self.headers, body))  # case-insensitive names
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                r = requests.request(self.command, target + self.path, data=body, headers=headers, timeout=120,
                                     allow_redirects=False)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length", "content-encoding",
                                         "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = forward

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def last_photo(self):
        """The last POST /predict's body size and its multipart part 'file': (size, part headers, bytes)."""
        headers, body = self.posts[-1]
        content_type = headers["Content-Type"]
        assert content_type.startswith("multipart/form-data; boundary="), content_type
        assert int(headers["Content-Length"]) == len(body)
        boundary = content_type.split("boundary=", 1)[1].encode()
        for part in body.split(b"--" + boundary):
            head, _, data = part.partition(b"\r\n\r\n")
            if b'name="file"' in head:
                return len(body), head.decode("utf-8", "replace"), data[:-2]  # the part ends with \r\n
        raise AssertionError("no 'file' part in the posted form")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def wire(server):
    w = Wire(server.url)
    yield w
    w.close()


def phone_photo(label, size, seed=0, sigma=6):
    """A generated 'item' filling the frame (large, uniform-ish stripes) at a phone camera's size,
    with a fine sensor-like grain: a real-looking JPEG of several MB at quality 95."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = make_image(label, rng, (w // 10, h // 10)).resize(size, Image.Resampling.BILINEAR)
    grain = rng.integers(-sigma, sigma + 1, (h, w, 1), dtype=np.int16)
    return Image.fromarray(np.clip(np.asarray(base, np.int16) + grain, 0, 255).astype(np.uint8))


def jpeg(img, **kw):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, **kw)
    return buf.getvalue()


def names(boxes):
    return {b["name"].split(".")[0] for b in boxes}


def test_upload_page_posts_a_shrunk_phone_photo_with_the_same_answer(server, wire, browser, tmp_path):
    photo = tmp_path / "IMG_0001.jpg"
    photo.write_bytes(jpeg(phone_photo(2, (4000, 3000), seed=1)))
    original = photo.read_bytes()
    assert len(original) > 3_000_000  # what a 12 MP phone photo weighs
    expected = requests.post(server.url + "/predict", files={"file": original}, timeout=60).json()

    page = browser.new_page(locale="en-US", **PHONE)
    violations = watch_csp(page)
    page.goto(wire.url + "/upload")
    camera_input = page.locator("#camera-file")  # the "Take a photo" button: the phone camera
    assert camera_input.get_attribute("capture") == "environment" and camera_input.get_attribute("accept") == "image/*"
    camera_input.set_input_files(str(photo))
    page.wait_for_selector("#result .card", timeout=60000)
    size, head, data = wire.last_photo()
    shrunk = requests.post(server.url + "/predict", files={"file": data}, timeout=60).json()
    print(f"original {len(original) / 1e6:.2f} MB, posted body {size / 1e3:.0f} kB; answers: original "
          f"{[(a['label'], round(a['probability'], 3)) for a in expected['top_k']]}, shrunk "
          f"{[(a['label'], round(a['probability'], 3)) for a in shrunk['top_k']]}")
    assert size < 500_000
    assert "image/jpeg" in head and 'filename="IMG_0001.jpg"' in head
    assert Image.open(io.BytesIO(data)).size == (1280, 960)
    assert int(page.get_attribute("#result .card", "data-label")) == expected["label"] == 2, expected  # class 2
    assert shrunk["label"] == 2
    assert abs(shrunk["probability"] - expected["probability"]) < 0.05  # (0.854 and 0.855 when written)
    page.close()
    assert violations == []


def test_shrinking_applies_the_exif_orientation(wire, browser, tmp_path):
    # a portrait photo as a phone stores it: landscape pixels + "rotate 90° clockwise to show" (6)
    shown = Image.new("RGB", (1500, 2000), (40, 60, 200))  # upright: portrait, red top, blue below
    shown.paste((220, 30, 30), (0, 0, 1500, 500))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = shown.transpose(Image.Transpose.ROTATE_90)  # 2000x1500, shown by rotating it back
    photo = tmp_path / "portrait.jpg"
    photo.write_bytes(jpeg(stored, exif=exif.tobytes()))
    assert ImageOps.exif_transpose(Image.open(photo)).size == (1500, 2000)

    page = browser.new_page(locale="en-US")
    violations = watch_csp(page)
    page.goto(wire.url + "/upload")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#result .card", timeout=60000)
    _, _, data = wire.last_photo()
    sent = Image.open(io.BytesIO(data))
    assert sent.getexif().get(0x0112) in (None, 1)  # nothing left to apply: the pixels are upright
    assert sent.size == (960, 1280)
    top, bottom = np.asarray(sent.convert("RGB"), np.float32)[[100, 1200], 480]
    assert top[0] > 180 and top[2] < 80 and bottom[2] > 160 and bottom[0] < 80, (top, bottom)  # red on top
    page.close()
    assert violations == []


def test_camera_page_on_an_insecure_origin_sends_the_phone_to_the_upload_camera(server, browser):
    page = browser.new_page(locale="zh-CN", **PHONE)
    violations = watch_csp(page)
    page.goto(server.lan_url + "/")
    assert page.evaluate("window.isSecureContext") is False  # what a phone on the LAN gets over http
    page.wait_for_selector("#fallback:not([hidden])", timeout=30000)
    problem = page.inner_text("#camera-problem")
    assert "https" in problem and "上传页面" in problem and "手机相机" in problem, problem
    link = page.locator("#fallback a")
    assert link.get_attribute("href") == "/upload" and "手机相机" in link.inner_text()
    assert not page.is_visible("#preview") and not page.is_visible("#capture")  # no black box, no dead button
    boxes = check_layout(page, "camera page, insecure")
    assert {"p#camera-problem", "a#to-upload"} <= names(boxes)
    screenshots(page, "phone_camera_insecure")
    page.click("#lang")
    problem = page.inner_text("#camera-problem")
    assert "https" in problem and "upload page can open the phone camera" in problem, problem
    assert "phone camera" in link.inner_text()
    link.click()
    page.wait_for_url("**/upload")
    assert page.is_visible("label:has(#camera-file)")  # "Take a photo", on a phone
    assert page.inner_text("label:has(#camera-file)") == "Take a photo"
    page.close()
    assert violations == []


def test_upload_page_fits_a_phone_before_and_after_a_photo(server, browser, tmp_path):
    photo = tmp_path / "can.jpg"
    photo.write_bytes(jpeg(phone_photo(0, (1200, 1600), seed=2)))  # portrait, as phones take them
    page = browser.new_page(locale="en-US", **PHONE)
    violations = watch_csp(page)
    page.goto(server.url + "/upload")
    boxes = check_layout(page, "upload page, before")
    assert names(boxes) >= {"h1", "a", "button#lang", "label"} and len([b for b in boxes if b["name"].startswith("label")]) == 2
    screenshots(page, "phone_upload_before")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#result .card", timeout=60000)
    wait_true(page, "document.getElementById('chosen').naturalWidth > 0")
    boxes = check_layout(page, "upload page, after")
    assert {"img#chosen", "div"} <= names(boxes)  # the preview and the answer's card
    screenshots(page, "phone_upload_after")
    page.close()
    assert violations == []


def test_camera_page_fits_a_phone_and_posts_a_small_snapshot(wire, browser):
    page = browser.new_page(locale="zh-CN", **PHONE)
    violations = watch_csp(page)
    page.goto(wire.url + "/")
    page.wait_for_selector("#capture:enabled", timeout=30000)
    wait_true(page, "document.getElementById('preview').videoWidth > 0", timeout=30000)
    assert page.evaluate("[0, 0].map((_, i) => document.getElementById('preview')[i ? 'videoHeight' : 'videoWidth'])") == list(CAMERA_SIZE)
    boxes = check_layout(page, "camera page, before")
    assert {"video#preview", "button#capture", "p#camera-status"} <= names(boxes)
    screenshots(page, "phone_camera_before")
    page.click("#capture")
    page.wait_for_selector("#result .card", timeout=60000)
    _, head, data = wire.last_photo()
    assert "image/jpeg" in head and Image.open(io.BytesIO(data)).size == (1280, 720)
    assert on_screen(page, "#result .card")  # scrolled into view, all of it
    judged = page.evaluate("[...['width', 'height'].map((k) => document.getElementById('snapshot')[k]), "
                           "document.getElementById('judged').getBoundingClientRect().top "
                           "- document.querySelector('#result .card').getBoundingClientRect().bottom]")
    assert judged[:2] == [1280, 720] and judged[2] >= 0  # the frame that was posted, under the answer
    assert int(page.get_attribute("#result .card", "data-label")) == 1  # the camera films a photo of class 1
    boxes = check_layout(page, "camera page, after")
    assert {"video#preview", "div", "figure#judged"} <= names(boxes)
    screenshots(page, "phone_camera_after")
    page.close()
    assert violations == []
