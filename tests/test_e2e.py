"""A real server process, a real headless Chromium, concurrent clients, gunicorn, the kiosk camera."""

import concurrent.futures
import io
import json
import os
import shutil
import sys
import time

import numpy as np
import pytest
import requests
from PIL import Image

from conftest import ROOT
from datagen import make_image
from servers import free_port, start, stop

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.path.join(ROOT, "test-artifacts")


@pytest.fixture(scope="module")
def server(tiny_model):
    port = free_port()
    proc = start([sys.executable, "server.py", "--model", tiny_model, "--host", "127.0.0.1", "--port", str(port),
                  "--crops", "5", "--threshold", "0.999"], port)  # an untrained model is never that sure
    yield f"http://127.0.0.1:{port}"
    stop(proc)


def write_y4m(path, img, frames=10):
    """A 4:2:0 y4m video (header C420jpeg) of one photo: Chromium's fake camera then films that photo."""
    w, h = img.size
    ycc = img.convert("YCbCr")
    y, cb, cr = [np.asarray(c) for c in ycc.split()]
    half = lambda c: np.asarray(Image.fromarray(c).resize((w // 2, h // 2), Image.Resampling.BILINEAR))
    frame = b"FRAME\n" + y.tobytes() + half(cb).tobytes() + half(cr).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F15:1 Ip A1:1 C420jpeg\n".encode())
        f.write(frame * frames)


@pytest.fixture(scope="module")
def playwright():
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (installed by .ci/run)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright, tmp_path_factory):
    folder = tmp_path_factory.mktemp("camera")
    video = str(folder / "camera.y4m")
    write_y4m(video, make_image(1, np.random.default_rng(3), (640, 480)))
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream",
             "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"]
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
    yield b
    b.close()


def _labels(tiny_model):
    return json.load(open(os.path.join(os.path.dirname(tiny_model), "labels.json"), encoding="utf-8"))["labels"]


def test_camera_page_captures_and_shows_the_answer(server, browser, tiny_model):
    os.makedirs(ARTIFACTS, exist_ok=True)
    page = browser.new_page(locale="zh-CN")
    page.goto(server + "/")
    page.wait_for_selector("#capture:enabled", timeout=30000)
    page.wait_for_function("document.getElementById('preview').videoWidth > 0", timeout=30000)
    page.click("#capture")
    page.wait_for_selector("#result .card", timeout=60000)
    card = page.inner_text("#result")
    item_names = [name.split("/", 1)[1] for name in _labels(tiny_model)]
    assert any(name in card for name in item_names), card
    assert "%" in card and page.locator("#result .bars li").count() == 4
    assert "不太确定" in page.inner_text("#result .unsure")  # "not sure" with alternatives
    label = int(page.get_attribute("#result .card", "data-label"))
    bin_name = _labels(tiny_model)[label].split("/")[0]
    assert page.locator(f"#result .bin-{bin_name}").count() == 1  # shown in its bin colour
    page.screenshot(path=os.path.join(ARTIFACTS, "camera_page.png"), full_page=True)
    page.click("#lang")  # the English UI
    assert "Bin" in page.inner_text("#result") and page.inner_text("#capture") == "Capture & classify"
    page.screenshot(path=os.path.join(ARTIFACTS, "camera_page_en.png"), full_page=True)
    page.close()


def test_upload_page_shows_the_answer(server, browser, tiny_model, tmp_path):
    photo = tmp_path / "can.jpg"
    make_image(0, np.random.default_rng(8), (500, 400)).save(photo)
    page = browser.new_page(locale="en-US")
    page.goto(server + "/upload")
    assert page.inner_text("#drop label") == "Choose a photo"  # browser language picks the UI language
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#result .card", timeout=60000)
    text = page.inner_text("#result")
    assert any(name.split("/", 1)[1] in text for name in _labels(tiny_model))
    expected = requests.post(server + "/predict", files={"file": photo.read_bytes()}).json()
    assert int(page.get_attribute("#result .card", "data-label")) == expected["label"]
    page.screenshot(path=os.path.join(ARTIFACTS, "upload_page.png"), full_page=True)
    page.close()


def test_camera_page_without_permission_offers_the_upload(server, playwright):
    # without the fake-UI flag the permission prompt is dismissed, i.e. the camera is denied
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                   args=["--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
                                         "--deny-permission-prompts"])
    page = b.new_page(locale="en-US")
    page.goto(server + "/")
    page.wait_for_selector("#fallback:not([hidden])", timeout=30000)
    assert "permission" in page.inner_text("#camera-problem").lower()
    assert page.locator("#fallback a[href='/upload']").count() == 1
    assert page.is_disabled("#capture")
    page.screenshot(path=os.path.join(ARTIFACTS, "camera_denied.png"))
    b.close()


def test_concurrent_clients_all_get_the_single_request_answer(server):
    buf = io.BytesIO()
    make_image(3, np.random.default_rng(5), (640, 480)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    reference = requests.post(server + "/predict", files={"file": ("p.jpg", data)}).json()

    def client(_):
        out = []
        with requests.Session() as s:
            for _ in range(50):
                r = s.post(server + "/predict", files={"file": ("p.jpg", data)}, timeout=60)
                out.append((r.status_code, r.json()))
        return out

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = [a for chunk in pool.map(client, range(8)) for a in chunk]
    assert len(answers) == 400
    assert all(status == 200 for status, _ in answers)
    for _, body in answers:
        assert body["label"] == reference["label"]
        assert abs(body["probability"] - reference["probability"]) < 1e-5


def test_gunicorn_serves_the_factory(tiny_model):
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable))
    assert gunicorn, "gunicorn is in requirements.txt"
    port = free_port()
    proc = start([gunicorn, "-w", "2", "--threads", "2", "-b", f"127.0.0.1:{port}", "server:create_app()"], port,
                 env={"GARBAGE_MODEL": tiny_model, "GARBAGE_CROPS": "1"})
    try:
        buf = io.BytesIO()
        make_image(0, np.random.default_rng(0), (200, 150)).save(buf, "PNG")
        answers = set()
        for _ in range(6):  # both workers, each loads the model in the background first
            r = requests.post(f"http://127.0.0.1:{port}/predict", files={"file": buf.getvalue()}, timeout=60)
            if r.status_code == 503:
                time.sleep(1)
                continue
            assert r.status_code == 200
            answers.add(r.json()["label"])
        assert len(answers) == 1
    finally:
        stop(proc)


def test_server_camera_kiosk_mode_with_a_video_source(tiny_model, tmp_path):
    import cv2

    video = str(tmp_path / "cam.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(5):
        writer.write(np.asarray(make_image(2, np.random.default_rng(i), (320, 240)))[:, :, ::-1])
    writer.release()
    from server import create_app

    app = create_app({"MODEL": tiny_model, "CROPS": 1, "SERVER_CAMERA": video})
    holder = app.extensions["garbage_model"]
    holder.ready.wait(120)
    client = app.test_client()
    r = client.post("/shot_photo")
    assert r.status_code == 200 and "label" in r.json
    stream = client.get("/video_feed", buffered=False)
    assert stream.mimetype == "multipart/x-mixed-replace"
    first = next(iter(stream.response))
    assert first.startswith(b"--frame") and b"\xff\xd8" in first
    stream.close()
    assert client.get("/", ).status_code == 200


def test_unopenable_server_camera_is_one_line_exit_2(cli, tiny_model):
    r = cli("server.py", "--model", tiny_model, "--server_camera", "/dev/no_such_camera", "--port", str(free_port()))
    assert r.returncode == 2 and "cannot open server camera" in r.stderr and "Traceback" not in r.stderr
