"""Real server processes (the dev server and the waitress production line), a real headless Chromium,
concurrent clients, stalled connections, the kiosk camera."""

import concurrent.futures
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests

from support.browser import ARTIFACTS, CHROMIUM, DESKTOP, box, wait_true, watch_csp
from support.datagen import make_image
from support.scripts import ROOT, user_env
from support.servers import free_port, start, stop

CAMERA_FRAMES = 10  # the length of the video the browser fixture's fake camera films (conftest.py)


@pytest.fixture(scope="module")
def server_proc(tiny_model):
    """python server.py (the dev server); the process, with .url."""
    port = free_port()
    proc = start([sys.executable, "server.py", "--model", tiny_model, "--host", "127.0.0.1", "--port", str(port),
                  "--crops", "5", "--threshold", "0.999"], port)  # the test model is never that sure
    proc.url = f"http://127.0.0.1:{port}"
    yield proc
    stop(proc)


@pytest.fixture(scope="module")
def server(server_proc):
    return server_proc.url


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1]) / 1024


def image_bytes(label, size, seed=0, fmt="JPEG"):
    """A generated photo, encoded."""
    buf = io.BytesIO()
    make_image(label, np.random.default_rng(seed), size).save(buf, fmt)
    return buf.getvalue()


def _labels(tiny_model):
    return json.load(open(os.path.join(os.path.dirname(tiny_model), "labels.json"), encoding="utf-8"))["labels"]


#: The bins' colours in static/style.css, as the browser computes them.
BIN_COLOURS = {"可回收物": "rgb(21, 101, 192)", "有害垃圾": "rgb(198, 40, 40)", "厨余垃圾": "rgb(46, 125, 50)",
               "其他垃圾": "rgb(97, 97, 97)"}


def check_bars(page, answer, lang):
    """Each top-k bar in its bin's colour, with the bin named in `lang`."""
    from tools.names import bin_name

    bars = page.eval_on_selector_all("#result .bars li", "ls => ls.map((l) => ({bin: l.dataset.bin, "
                                     "named: l.querySelector('.bar-bin').textContent, "
                                     "colour: getComputedStyle(l.querySelector('.bar')).backgroundColor}))")
    assert [b["bin"] for b in bars] == [a["category"] for a in answer["top_k"]]
    assert [b["named"] for b in bars] == [bin_name(a["category"], lang) for a in answer["top_k"]]
    assert [b["colour"] for b in bars] == [BIN_COLOURS[a["category"]] for a in answer["top_k"]]


def test_camera_page_captures_and_shows_the_answer(server, browser, tiny_model):
    """1280x800: the answer beside the preview, the most probable bin first when unsure, the top k
    in their bins' colours, all on the screen, and the judged frame frozen under the answer."""
    from tools.names import bin_name, item_name

    os.makedirs(ARTIFACTS, exist_ok=True)
    page = browser.new_page(locale="zh-CN", viewport=DESKTOP)
    violations = watch_csp(page)
    response = page.goto(server + "/")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]  # the strict policy is on
    page.wait_for_selector("#capture:enabled", timeout=30000)
    wait_true(page, "document.getElementById('preview').videoWidth > 0", timeout=30000)
    with page.expect_response("**/predict") as predicted:
        page.click("#capture")
    answer = predicted.value.json()
    page.wait_for_selector("#result .card", timeout=60000)
    card = page.inner_text("#result")
    item_names = [name.split("/", 1)[1] for name in _labels(tiny_model)]
    assert item_names[1] in card, card  # the camera films a photo of class 1
    assert "%" in card and page.locator("#result .bars li").count() == 4
    assert answer["unsure"] and "不太确定" in page.inner_text("#result .unsure")  # "not sure" with the items
    bin_, p = max(answer["bins"].items(), key=lambda kv: kv[1])  # leads with the most probable bin
    lead = page.locator("#result .card .answer > :first-child")
    assert lead.get_attribute("data-bin") == bin_ and lead.inner_text() == f"投放到: {bin_} · {p * 100:.1f}%"
    assert page.eval_on_selector("#result .bin-lead", "e => getComputedStyle(e).backgroundColor") == BIN_COLOURS[bin_]
    check_bars(page, answer, "zh")
    preview, shown, bars = box(page, "#preview"), box(page, "#result .card"), box(page, "#result .bars")
    assert shown["x"] >= preview["right"] and shown["y"] < preview["bottom"], (preview, shown)  # beside it
    assert 0 <= shown["y"] and bars["bottom"] <= DESKTOP["height"], (shown, bars)  # the top 5 on the screen
    judged = box(page, "#judged canvas")
    assert page.is_visible("#judged") and judged["y"] >= shown["bottom"] and judged["x"] >= preview["right"]
    frozen = "document.getElementById('snapshot').toDataURL()"
    still = page.evaluate(frozen)
    assert page.evaluate("[document.getElementById('snapshot').width, document.getElementById('snapshot').height]") \
        == [640, 480]  # the camera's frame
    wait_true(page, "document.getElementById('preview').currentTime > 0.5")  # the preview moves on...
    assert page.evaluate(frozen) == still  # ...the judged frame does not
    assert int(page.get_attribute("#result .card", "data-label")) == 1  # the photo of class 1
    page.screenshot(path=os.path.join(ARTIFACTS, "camera_page.png"), full_page=True)
    page.click("#lang")  # the English UI, with English names
    assert page.inner_text("#capture") == "Capture & classify"
    assert page.inner_text("#result .bin-lead") == f"Bin: {bin_name(bin_, 'en')} ({bin_}) · {p * 100:.1f}%"
    assert item_name(answer["name"], "en") in page.inner_text("#result .unsure")
    check_bars(page, answer, "en")
    page.screenshot(path=os.path.join(ARTIFACTS, "camera_page_en.png"), full_page=True)
    page.close()
    assert violations == []


def test_upload_page_shows_the_answer(server, browser, tiny_model, tmp_path):
    from tools.names import item_name

    photo = tmp_path / "can.jpg"
    make_image(0, np.random.default_rng(8), (500, 400)).save(photo)
    page = browser.new_page(locale="en-US", viewport=DESKTOP)
    violations = watch_csp(page)
    response = page.goto(server + "/upload")
    assert "img-src 'self' blob:" in response.headers["content-security-policy"]
    assert page.inner_text("#drop label") == "Choose a photo"  # browser language picks the UI language
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#result .card", timeout=60000)
    expected = requests.post(server + "/predict", files={"file": photo.read_bytes()}).json()
    assert int(page.get_attribute("#result .card", "data-label")) == expected["label"] == 0  # a photo of class 0
    names = page.eval_on_selector_all("#result .bar-name", "ns => ns.map((n) => n.firstChild.textContent)")
    assert names == [item_name(a["name"], "en") for a in expected["top_k"]]  # English names, not Chinese ones
    check_bars(page, expected, "en")
    wait_true(page, "document.getElementById('chosen').naturalWidth > 0")  # the blob: preview loaded
    chosen, shown = box(page, "#chosen"), box(page, "#result .card")
    assert shown["x"] >= chosen["right"] and shown["y"] < chosen["bottom"], (chosen, shown)  # beside it
    page.screenshot(path=os.path.join(ARTIFACTS, "upload_page.png"), full_page=True)
    page.close()
    assert violations == []


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


def test_concurrent_clients_all_get_the_single_request_answer(server_proc):
    server = server_proc.url
    buf = io.BytesIO()
    make_image(3, np.random.default_rng(5), (640, 480)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    reference = requests.post(server + "/predict", files={"file": ("p.jpg", data)}).json()
    assert reference["label"] == 3

    def clients(photo, per_client):
        def client(_):
            out = []
            with requests.Session() as s:
                for _ in range(per_client):
                    r = s.post(server + "/predict", files={"file": ("p.jpg", photo)}, timeout=60)
                    out.append((r.status_code, r.json()))
            return out

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return [a for chunk in pool.map(client, range(8)) for a in chunk]

    answers = clients(data, 50)
    assert len(answers) == 400
    assert all(status == 200 for status, _ in answers)
    for _, body in answers:
        assert body["label"] == reference["label"]
        assert abs(body["probability"] - reference["probability"]) < 1e-5

    # Memory: RSS grows while the allocators warm up, then stays flat. 600 small photos bring the
    # count past 1,000; from there 200 more of the big photo may add at most 10 MB.
    small = image_bytes(1, (96, 72))
    assert all(status == 200 for status, _ in clients(small, 75))
    at_1000 = rss_mb(server_proc.pid)
    assert all(status == 200 for status, _ in clients(data, 25))
    at_end = rss_mb(server_proc.pid)
    print(f"server RSS after 1,001 requests {at_1000:.1f} MB, after 1,201 {at_end:.1f} MB")
    assert at_end - at_1000 <= 10, (at_1000, at_end)


@pytest.fixture(scope="module")
def production(tiny_model):
    """The README's production line, python server.py --production (waitress); the process, with .url."""
    port = free_port()
    proc = start([sys.executable, "server.py", "--production", "--model", tiny_model, "--host", "127.0.0.1",
                  "--port", str(port), "--crops", "1", "--threads", "4", "--timeout", "4", "--head_timeout", "2",
                  "--min_upload_rate", "1"], port)
    proc.url = f"http://127.0.0.1:{port}"
    proc.port = port
    yield proc
    stop(proc)


def raw_exchange(port, data, timeout=10):
    """Send bytes on a fresh connection; everything the server answers before it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_production_line_serves_photos_without_versions_or_html(production):
    from tools.serving.http import SECURITY_HEADERS, SERVER_NAME

    photo = image_bytes(0, (200, 150), fmt="PNG")
    answers = [requests.post(production.url + "/predict", files={"file": photo}, timeout=60) for _ in range(4)]
    assert all(r.status_code == 200 for r in answers)
    assert {r.json()["label"] for r in answers} == {0}  # a photo of class 0
    page = requests.get(production.url + "/", timeout=10)
    for r in (answers[0], page):
        assert r.headers["Server"] == SERVER_NAME  # waitress's ident, no version
        assert all(r.headers[name] == value for name, value in SECURITY_HEADERS.items())
    # what waitress answers itself: the app's JSON errors, with the security headers, no version
    bad_length = raw_exchange(production.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n")
    head, _, body = bad_length.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"Content-Type: application/json" in head, bad_length[:300]
    assert json.loads(body) == {"error": "Bad Request: Content-Length is invalid"}
    assert f"Server: {SERVER_NAME}".encode() in head and b"waitress" not in bad_length
    # a body over the limit (10 MB) is refused from its Content-Length, before a byte of it is read
    start_time = time.time()
    too_big = raw_exchange(production.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                           b"Content-Length: %d\r\n\r\n" % (11 * 1024 * 1024))
    head, _, body = too_big.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and time.time() - start_time < 3
    assert json.loads(body) == {"error": "file too large: the limit is 10 MB"}
    for answer in (bad_length, too_big):
        assert all(f"\r\n{name}: {value}\r\n".encode() in answer for name, value in SECURITY_HEADERS.items())


def test_production_line_answers_photos_while_50_clients_stall_or_trickle(production):
    """Clients that stall or trickle hold no worker thread, and each is closed at its limit: 10 silent
    ones after --timeout (4 s), 20 that trickle their headers a byte every 0.5 s at --head_timeout
    (2 s), 20 that trickle a body at 2 B/s (under --min_upload_rate 1 KB/s) 2 s after their headers;
    bodies are kept in memory."""
    from support.hostile import trickle

    port = production.port
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
    for i, s in enumerate(silent):
        s.sendall(head[:40] if i < 5 else head + b"\xff\xd8\xff" + b"x" * 7)  # stall in the headers or the body
    big = socket.create_connection(("127.0.0.1", port))  # 2 MB of a 3 MB body, then a trickle: held, in memory
    big.sendall(head.replace(b"100000", b"3000000") + os.urandom(2 * 1024 * 1024))
    stop_big = threading.Event()

    def trickle_big():
        while not stop_big.wait(0.5):
            big.send(b"x")

    big_trickle = threading.Thread(target=trickle_big, daemon=True)
    big_trickle.start()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        heads = pool.submit(trickle, port, 20, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100, 0.5, 10)
        bodies = pool.submit(trickle, port, 20, b"x" * 100, 0.5, 10, burst=head)
        try:
            time.sleep(0.5)
            photo = image_bytes(2, (640, 480), seed=3)
            for _ in range(20):
                start_time = time.time()
                r = requests.post(production.url + "/predict", files={"file": photo}, timeout=30)
                assert r.status_code == 200 and time.time() - start_time < 2, (r.status_code, time.time() - start_time)
            assert is_open(big)  # 2 MB at once earned it 2,000 s at 1 KB/s
            fds = f"/proc/{production.pid}/fd"
            log = os.readlink(f"{fds}/1")  # the server's output goes to a temporary file (tests/servers.py)
            files = []
            for fd in os.listdir(fds):
                with contextlib.suppress(FileNotFoundError):  # a connection the server closed meanwhile
                    files.append(os.readlink(f"{fds}/{fd}"))
            assert not [path for path in files if "(deleted)" in path and path != log], files  # no spooled body
        finally:
            stop_big.set()
            big_trickle.join()
            big.close()
        for (closed_after, raw), limit in [(r, "request head too slow") for r in heads.result()] + \
                                          [(r, "upload too slow") for r in bodies.result()]:
            answer_head, _, body = raw.partition(b"\r\n\r\n")
            assert answer_head.startswith(b"HTTP/1.1 408") and limit in json.loads(body)["error"], raw[:300]
            assert closed_after is not None and 1.9 < closed_after < 4, closed_after  # before --timeout: not silence
    deadline = time.time() + 10  # silent for --timeout, then closed at the next check
    while time.time() < deadline and any(is_open(s) for s in silent):
        time.sleep(0.25)
    assert not any(is_open(s) for s in silent)
    for s in silent:
        s.close()


def is_open(sock):
    """True while the server keeps this connection open (it has not closed or reset it)."""
    sock.setblocking(False)
    try:
        return sock.recv(65536) != b""  # data (unexpected here) still means open
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def test_production_line_refuses_tls_options(cli, tiny_model):
    r = cli("server.py", "--production", "--model", tiny_model, "--cert", "c.pem", "--key", "k.pem")
    assert r.returncode == 2 and "TLS proxy" in r.stderr and "Traceback" not in r.stderr


def test_server_camera_kiosk_mode_with_a_video_source(tiny_model, tmp_path):
    import cv2

    video = str(tmp_path / "cam.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(5):
        writer.write(np.asarray(make_image(2, np.random.default_rng(i), (320, 240)))[:, :, ::-1])
    writer.release()
    from tools.serving.app import create_app

    app = create_app({"MODEL": tiny_model, "CROPS": 1, "SERVER_CAMERA": video})
    holder = app.extensions["garbage_model"]
    holder.ready.wait(120)
    client = app.test_client()
    r = client.post("/shot_photo")
    assert r.status_code == 200 and r.json["label"] == 2  # the video films photos of class 2
    stream = client.get("/video_feed", buffered=False)
    assert stream.mimetype == "multipart/x-mixed-replace"
    first = next(iter(stream.response))
    assert first.startswith(b"--frame") and b"\xff\xd8" in first
    stream.close()
    assert client.get("/", ).status_code == 200


def test_unopenable_server_camera_is_one_line_exit_2(cli, tiny_model):
    r = cli("server.py", "--model", tiny_model, "--server_camera", "/dev/no_such_camera", "--port", str(free_port()))
    assert r.returncode == 2 and "cannot open server camera" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("production", [False, True], ids=["dev", "production"])
def test_server_listens_first_prints_its_urls_and_answers_503_while_the_model_loads(production, tmp_path):
    """The model's URL never answers (a socket that accepts and says nothing), so the model stays
    loading: the server must already listen, have printed where, and answer 503 + Retry-After."""
    from tools.serving.http import lan_address

    with socket.create_server(("127.0.0.1", 0)) as never_answers:
        port = free_port()
        log = tmp_path / "server.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "server.py", "--model", f"http://127.0.0.1:{never_answers.getsockname()[1]}/best.h5",
                 "--host", "0.0.0.0", "--port", str(port)] + (["--production"] if production else []),
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                env=user_env(KERAS_HOME=str(tmp_path / "keras")))  # TensorFlow's start-up lines hidden, as for a user
        try:
            lan = lan_address()
            expected = [f"this computer: http://localhost:{port}/"]
            expected += [] if lan is None else [f"phones on this network: http://{lan}:{port}/upload"]
            last = expected[-1].split()[0]  # the last line printed: wait for it, not for the first URL
            deadline = time.time() + 60
            while time.time() < deadline and last not in log.read_text() and proc.poll() is None:
                time.sleep(0.1)
            time.sleep(0.5)  # anything printed just after the URLs would show below
            lines = log.read_text().splitlines()
            kind = "waitress" if production else "development server"
            assert lines[0].startswith(f"{kind} listening on every network interface"), lines
            assert "loading the model best.h5" in lines[0]
            assert [" ".join(line.split()) for line in lines[1:]] == expected, lines
            health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            assert health.status_code == 503 and health.json()["status"] == "loading"
            assert health.headers["Retry-After"] == "5"
            r = requests.post(f"http://127.0.0.1:{port}/predict", files={"file": image_bytes(0, (64, 48))}, timeout=10)
            assert r.status_code == 503 and "still loading" in r.json()["error"] and r.headers["Retry-After"] == "5"
        finally:
            stop(proc)


def test_a_busy_port_is_refused_at_once_before_the_model_loads(cli, tmp_path):
    """The model here cannot be loaded: had it been tried first, that would be the error."""
    broken = tmp_path / "best.h5"
    broken.write_bytes(b"not a model")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        r = cli("server.py", "--model", broken, "--host", "127.0.0.1", "--port", port)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (f"error: port {port} is already in use (another server.py?): stop that program or "
                        "choose another --port\n")
