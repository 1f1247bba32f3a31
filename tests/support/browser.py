"""The browser tests' Chromium (the browser fixture in conftest.py starts it) and what they look with: its
fake camera's video, the screen sizes, CSP violations, boxes on the screen, the overlap check, screenshots."""

import os
import time

import numpy as np
from PIL import Image

from support.servers import ROOT

CHROMIUM = "/usr/bin/chromium"
#: Where the browser tests leave their screenshots.
ARTIFACTS = os.path.join(ROOT, "test-artifacts")
#: Chromium resolves this name to 127.0.0.1, but unlike 127.0.0.1 or localhost it is not a secure
#: context: what a phone sees at http://<laptop>:10086/.
LAN_HOST = "phone.test"
#: The fake camera's size and length unless a test module sets CAMERA_SIZE / CAMERA_FRAMES (the browser fixture).
CAMERA_SIZE, CAMERA_FRAMES = (640, 480), 2
DESKTOP = {"width": 1280, "height": 800}
PHONE = dict(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=2)
#: What a person looks at or taps: none of these may overlap another.
LAYOUT_ITEMS = ("header h1, nav a, #lang, .buttons button, .filebutton, .drop-hint, video, #chosen, #camera-status, "
                "#camera-problem, #fallback a, #result > *, #judged")


def chromium_flags(video):
    """Headless Chromium's flags: quiet, camera allowed, its fake camera filming the y4m `video`, LAN_HOST mapped."""
    return ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}",
            f"--host-resolver-rules=MAP {LAN_HOST} 127.0.0.1"]


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


def watch_csp(page):
    """Console messages about Content Security Policy violations (Chromium reports them there)."""
    violations = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.on("pageerror", lambda err: violations.append(str(err)))
    return violations


def wait_true(page, expression, timeout=30000):
    """Poll `expression` with page.evaluate until it is true (AssertionError after `timeout` ms). Not
    page.wait_for_function: when its first check is false it polls by evaluating the string in the page,
    which the served page's Content Security Policy (no 'unsafe-eval') refuses, so it failed by timing."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} ms: {expression}")
        time.sleep(0.05)


def box(page, selector):
    """The bounding box of `selector` in the viewport: {x, y, width, height, bottom, right}."""
    return page.eval_on_selector(selector, "e => { const r = e.getBoundingClientRect(); return {x: r.left, y: r.top, "
                                           "width: r.width, height: r.height, bottom: r.bottom, right: r.right}; }")


def on_screen(page, selector):
    """True when every element `selector` finds lies within the screen (the viewport) as it is now."""
    return page.eval_on_selector_all(selector, """(es) => es.length > 0 && es.every((e) => {
        const r = e.getBoundingClientRect();
        return r.top >= 0 && r.bottom <= innerHeight && r.left >= 0 && r.right <= innerWidth; })""")


def check_layout(page, what, selector=LAYOUT_ITEMS):
    """Bounding boxes of the visible elements `selector` finds: no two overlap (touching edges is
    fine), all within the screen's width, and the page does not scroll sideways. Items inside a
    scrolling list (.picker-list) count only where they show. Returns the boxes."""
    boxes = page.evaluate("""(selector) => {
        const out = [];
        document.querySelectorAll(selector).forEach((e) => {
            let r = e.getBoundingClientRect();
            if (r.width < 1 || r.height < 1 || getComputedStyle(e).visibility === "hidden") return;
            let top = r.top, bottom = r.bottom;
            const list = e.closest(".picker-list");
            if (list) {
                const c = list.getBoundingClientRect();
                top = Math.max(top, c.top); bottom = Math.min(bottom, c.bottom);
                if (bottom - top < 1) return;
            }
            const name = e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : "")
                + (e.dataset.label ? "[" + e.dataset.label + "]" : "");
            out.push({name, x: r.left + scrollX, y: top + scrollY, w: r.width, h: bottom - top});
        });
        return out;
    }""", selector)
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{what}: the page scrolls sideways"
    for b in boxes:
        assert b["x"] >= -0.5 and b["x"] + b["w"] <= width + 0.5, f"{what}: {b} is wider than the screen"
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            dx = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
            dy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
            assert dx <= 0.5 or dy <= 0.5, f"{what}: {a} overlaps {b}"
    return boxes


def screenshots(page, name):
    """Screen-sized screenshots from the top to the bottom of the page, name_1.png, name_2.png, ...
    (not full_page: for it Chromium resizes the screen and drops the touch emulation meanwhile, so
    the picture would show the desktop layout: no "Take a photo", the drop hint)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    height = page.viewport_size["height"]
    total = page.evaluate("document.documentElement.scrollHeight")
    for i, y in enumerate(range(0, max(total - height, 0) + height, height), 1):
        page.evaluate(f"window.scrollTo(0, {min(y, max(total - height, 0))})")
        page.screenshot(path=os.path.join(ARTIFACTS, f"{name}_{i}.png"))
    page.evaluate("window.scrollTo(0, 0)")
