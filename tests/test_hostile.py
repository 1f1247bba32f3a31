"""Hostile and unlucky inputs: tiny files that decode to huge images, and URLs that drip bytes.

The same decoder serves training, predict.py and the server, so each gets the pixel budget: a
refused photo is a clear error (413 JSON, one CLI line, a warning in training) and an accepted one
costs at most about one decoded copy of itself (the server's peak RSS is read from /proc).
"""

import concurrent.futures
import io
import json
import logging
import os
import socket
import sys
import threading
import time

import numpy as np
import pytest
import requests
from PIL import Image

from support import hostile
from support.datagen import make_image, make_txt_dataset
from support.servers import free_port, proc_status, start, stop
from tools import images as image_io
from tools.fetch import FetchError, fetch_image

MB = 1024 * 1024


@pytest.fixture(scope="module")
def cases():
    return hostile.cases(image_io.MAX_PIXELS)


# ----------------------------------------------------------------- the decoder
def test_every_case_is_small_and_refused_or_decoded_under_300_mb(cases, tmp_path):
    """For a 224 px model, each in one fresh process: the decoder alone (the server adds no copy)."""
    peaks = hostile.decoder_peaks({name: data for name, (data, _) in cases.items()}, 224, str(tmp_path))
    for name, (data, accepted) in cases.items():
        assert len(data) <= 10 * MB, name  # all fit under the server's upload limit
        peak, outcome = peaks[name]
        if accepted:
            assert min(outcome[:2]) == 256 and max(outcome[:2]) <= 256 * image_io.MAX_ASPECT, (name, outcome)
        else:
            assert outcome.startswith("ImageTooLarge: image too l"), (name, outcome)
    print("decoder peak RSS growth (MB):", {k: round(v[0]) for k, v in peaks.items()})
    assert max(peak for name, (peak, _) in peaks.items() if cases[name][1]) <= 300, peaks


def test_shapes_no_camera_makes_are_refused_from_the_header():
    ratio = image_io.MAX_SIDE_RATIO
    for size in [(1, ratio + 1), (100 * ratio + 1, 100)]:
        with pytest.raises(image_io.ImageTooLarge, match=rf"{size[0]}x{size[1]}, the longest side may be at most {ratio}"):
            image_io.decode_image(hostile.png(*size, body=False))  # no pixel data: refused before decoding
    assert image_io.decode_image(hostile.png(100 * ratio, 100)).size == (100 * ratio, 100)


def test_each_format_is_budgeted_by_what_its_decoder_holds():
    """WebP takes 4 times a PNG's memory per pixel: a quarter of the budget; a progressive JPEG is
    counted at its header size (its coefficients are kept whole), a baseline one at its draft size."""
    webp = hostile.encoded("RGBA", (300, 300), "WEBP", lossless=True)
    with pytest.raises(image_io.ImageTooLarge, match=r"300x300 is 0.1 megapixels, the limit for WebP images "
                                                      r"\(their decoder takes 4 times the memory per pixel\) is 0.0875"):
        image_io.decode_image(webp, max_pixels=350_000)
    assert image_io.decode_image(webp, max_pixels=4 * 90_000).size == (300, 300)
    baseline, progressive = hostile.jpeg(2400, 2400), hostile.jpeg(2400, 2400, progressive=True)
    assert image_io.decode_image(baseline, min_side=256, max_pixels=1_000_000).size == (300, 300)
    with pytest.raises(image_io.ImageTooLarge, match="2400x2400 is 5.8 megapixels, the limit is 1"):
        image_io.decode_image(progressive, min_side=256, max_pixels=1_000_000)


def test_formats_beyond_the_accepted_ones_are_not_decoded():
    buf = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buf, "PPM")  # Pillow reads it; no camera or browser sends it
    with pytest.raises(image_io.ImageDecodeError, match="not an image"):
        image_io.decode_image(buf.getvalue())


def test_budget_is_checked_on_the_header_and_is_a_setting():
    data = hostile.png(3000, 2000)
    with pytest.raises(image_io.ImageTooLarge, match=r"3000x2000 is 6.0 megapixels, the limit is 5"):
        image_io.decode_image(data, max_pixels=5_000_000)
    assert image_io.decode_image(data, max_pixels=6_000_000).size == (3000, 2000)


def test_a_large_jpeg_is_judged_by_its_drafted_size():
    data = hostile.jpeg(9000, 6000)  # 54 Mpx in the header, 1125x750 decoded at 1/8 scale
    assert image_io.decode_image(data, min_side=256).size == (1125, 750)
    with pytest.raises(image_io.ImageTooLarge):
        image_io.decode_image(data)  # a full decode would be over the budget


def test_long_images_are_centre_cropped_before_resizing():
    strip = np.zeros((10, 140, 3), np.uint8)
    strip[:, :] = (0, 0, 255)
    strip[:, 65:75] = (255, 0, 0)  # a red centre on a blue strip 14 times wider than tall
    out = image_io.resize_shorter(Image.fromarray(strip), 64)
    assert out.size == (64 * image_io.MAX_ASPECT, 64)
    centre = image_io.center_crop(np.asarray(out), 64)
    assert (centre[:, 24:40, 0] > 200).all() and (centre[:, 24:40, 2] < 60).all()
    normal = Image.fromarray(np.zeros((100, 300, 3), np.uint8))
    assert image_io.resize_shorter(normal, 64).size == (192, 64)  # ordinary photos: as before


@pytest.mark.parametrize("mode", ["RGBA", "L", "RGB", "LA"])
def test_band_reduce_equals_one_reduce(mode):
    rng = np.random.default_rng(0)
    channels = len(mode)
    arr = rng.integers(0, 256, (203, 151, channels), dtype=np.uint8)
    img = Image.fromarray(arr[..., 0] if channels == 1 else arr, mode)
    banded = image_io._reduce(img, 16, band_pixels=151 * 9)  # bands of 8 rows: many bands + a short one
    whole = img.crop((0, 0, 148, 200)).reduce(4)  # whole 4x4 blocks only
    assert banded.size == whole.size == (37, 50)
    np.testing.assert_array_equal(np.asarray(banded), np.asarray(whole))


def test_reduced_modes_look_as_before():
    """Palette, 16-bit and transparent images decode to the same picture reduced or not."""
    rng = np.random.default_rng(1)
    base = make_image(2, rng, (640, 480))
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.fromarray(rng.integers(0, 256, (480, 640), dtype=np.uint8)))
    variants = {"P": base.convert("P"), "RGBA": rgba,
                "I;16": Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257)}
    for mode, img in variants.items():
        buf = io.BytesIO()
        img.save(buf, "PNG")
        full = image_io.resize_shorter(image_io.decode_image(buf.getvalue()), 64)
        reduced = image_io.resize_shorter(image_io.decode_image(buf.getvalue(), min_side=64), 64)
        diff = np.abs(np.asarray(full, np.int16) - np.asarray(reduced, np.int16))
        assert full.size == reduced.size and diff.mean() < 3, (mode, diff.mean())


# ----------------------------------------------------------------- training and predict.py
def test_training_loader_warns_and_skips_a_bomb(tmp_path, caplog):
    from tools.data.layout import load_dataset
    from tools.training.loader import GarbageClassifySequence

    data = make_txt_dataset(str(tmp_path), per_class=4, num_classes=2)
    with open(os.path.join(data, "img_1.jpg"), "wb") as f:  # a .jpg name does not make it one
        f.write(hostile.png(12_000, 12_000, 6, body=False))
    ds = load_dataset(data)
    seq = GarbageClassifySequence(ds.paths, ds.labels, 2, batch_size=8, input_size=32, training=True)
    with caplog.at_level(logging.WARNING):
        x, y = seq[0]
    assert x.shape == (8, 32, 32, 3) and y.shape == (8, 2)
    assert "img_1.jpg" in caplog.text and "too large" in caplog.text


def test_predict_gives_one_line_for_a_bomb_and_runs_the_rest(cli, tiny_model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_bomb.png").write_bytes(hostile.png(12_000, 12_000, 6, body=False))
    (folder / "b_strip.png").write_bytes(hostile.png(100, 1400))  # 14:1, within the side ratio
    make_image(1, np.random.default_rng(0), (640, 480)).save(folder / "c_photo.jpg")
    r = cli("predict.py", folder, "--model", tiny_model, "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "a_bomb.png: image too large: 12000x12000" in errors[0]
    answered = [json.loads(line)["input"] for line in r.stdout.splitlines() if '"error"' not in line]
    assert [os.path.basename(p) for p in answered] == ["b_strip.png", "c_photo.jpg"]
    make_image(1, np.random.default_rng(0), (640, 480)).save(tmp_path / "photo.png")  # a JPEG would be drafted
    r = cli("predict.py", tmp_path / "photo.png", "--model", tiny_model, "--max_mpx", "0.1")
    assert r.returncode == 1 and "640x480 is 0.3 megapixels, the limit is 0.1" in r.stderr


# ----------------------------------------------------------------- the server process
def _reset_peak(pid):
    """Start a new peak-RSS window (Linux >= 4.0), where the kernel allows it."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


@pytest.fixture(scope="module")
def server(tiny_model):
    port = free_port()
    proc = start([sys.executable, "server.py", "--model", tiny_model, "--host", "127.0.0.1", "--port", str(port),
                  "--crops", "5"], port)
    yield f"http://127.0.0.1:{port}", proc
    stop(proc)


def test_server_memory_per_hostile_upload_stays_under_300_mb(server, cases, photo_bytes):
    url, proc = server
    reference = requests.post(url + "/predict", files={"file": ("p.jpg", photo_bytes)}, timeout=60).json()
    warm = proc_status(proc.pid, "VmRSS")  # peaks are measured above this: what a request leaves counts too
    growth = {}
    for name, (data, accepted) in cases.items():
        _reset_peak(proc.pid)  # where the kernel refuses, VmHWM is the peak so far: stricter still
        r = requests.post(url + "/predict", files={"file": ("x.png", data)}, timeout=120)
        growth[name] = (proc_status(proc.pid, "VmHWM") - warm) / MB
        if accepted:
            assert r.status_code == 200 and "label" in r.json(), (name, r.status_code, r.text[:300])
        else:
            assert r.status_code == 413 and "image too l" in r.json()["error"], (name, r.status_code, r.text)
    print("peak RSS growth per request (MB):", {k: round(v) for k, v in growth.items()})
    assert max(growth.values()) <= 300, growth

    worst = sorted((n for n in cases if cases[n][1]), key=growth.get, reverse=True)[:3]  # the costliest, at once
    _reset_peak(proc.pid)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        statuses = list(pool.map(lambda n: requests.post(url + "/predict", files={"file": cases[n][0]},
                                                         timeout=180).status_code, worst))
    together = (proc_status(proc.pid, "VmHWM") - warm) / MB
    print(f"three at once {worst}: peak RSS growth {together:.0f} MB")
    assert statuses == [200] * 3 and together <= 600, (statuses, together)
    assert proc.poll() is None, "the server stayed up"
    after = requests.post(url + "/predict", files={"file": ("p.jpg", photo_bytes)}, timeout=60).json()
    assert after["label"] == reference["label"] and abs(after["probability"] - reference["probability"]) < 1e-5


# ----------------------------------------------------------------- URLs that drip
@pytest.fixture
def drip_server():
    """A raw HTTP server on 127.0.0.1 that sends one byte every 0.2 s, in the headers or the body."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    done = threading.Event()

    def serve():
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                request = conn.recv(65536).decode("latin-1")
                in_headers = "/headers" in request.split("\r\n", 1)[0]
                if not in_headers:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n")
                drip = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200 if in_headers else b"\xff" * 200
                for byte in drip:  # bounded: at most 40 s, and it stops when the test ends
                    if done.wait(0.2):
                        break
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    done.set()
    listener.close()
    thread.join(5)


@pytest.mark.parametrize("path", ["/body", "/headers"])
def test_a_dripping_url_hits_the_total_deadline(drip_server, path):
    start = time.monotonic()
    with pytest.raises(FetchError, match=r"timed out \(over 1.5s in all\)"):
        fetch_image(drip_server + path, timeout=(2.0, 2.0), deadline=1.5)
    assert time.monotonic() - start < 2.5  # the 2 s read timeout never fires: a byte comes every 0.2 s
