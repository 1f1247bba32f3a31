"""Makes docs/images/page.png and page.zh-CN.png: the upload page at 1280x800 after a real photo was judged.

Rerun from the repository root (Playwright and Chromium at /usr/bin/chromium, as for the tests):

    python docs/images/make_screenshot.py                                  # trains a small model first
    python docs/images/make_screenshot.py --model output/best.h5 --photo can.jpg

Without --model it trains one as a user would: sample.py picks --train_photos of --data_dir (TrashNet in
the project's layout), train.py trains on them from scratch at 48 px for 4 epochs (17.5 minutes on 2
cores shared with other work). The photo judged is then one the model never saw. The real server.py
serves the model; whatever it answers is shown, "not sure" included.
"""

import argparse
import os
import subprocess
import sys
import tempfile

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from support.servers import free_port, start, stop  # noqa: E402
from support.trashnet import TRASHNET  # noqa: E402

#: Screenshot file name per page language.
PAGES = {"en-US": "page.png", "zh-CN": "page.zh-CN.png"}


def train_small_model(data_dir, photos, folder):
    """sample.py + train.py into `folder`; returns (best.h5, the sampled image names)."""
    sample = os.path.join(folder, "photos", "train_data_v2")
    subprocess.run([sys.executable, "sample.py", data_dir, sample, str(photos), "--stratified"], cwd=ROOT, check=True)
    subprocess.run([sys.executable, "train.py", "--data_dir", sample, "--weights", "none", "--input_size", "48",
                    "--epochs", "4", "--output_dir", os.path.join(folder, "model")], cwd=ROOT, check=True)
    return os.path.join(folder, "model", "best.h5"), set(os.listdir(sample))


def shoot(url, photo, out_dir):
    """The upload page with `photo` judged, once per language, saved as small palette PNGs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        for locale, name in PAGES.items():
            page = browser.new_page(locale=locale, viewport={"width": 1280, "height": 800}, device_scale_factor=1)
            page.goto(url + "/upload")
            page.set_input_files("#file", photo)
            page.wait_for_selector("#result .card", timeout=60000)
            page.wait_for_function("document.getElementById('chosen').naturalWidth > 0")
            path = os.path.join(out_dir, name)
            page.screenshot(path=path)
            Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
            print(f"{path}: {os.path.getsize(path) // 1024} KB; the card says: {page.inner_text('#result .card')[:80]!r}")
        browser.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a best.h5 with labels.json beside it (default: train a small one)")
    p.add_argument("--photo", help="the photo to judge (default: the first photo of --data_dir not trained on)")
    p.add_argument("--data_dir", default=TRASHNET)
    p.add_argument("--train_photos", type=int, default=600)
    p.add_argument("--out_dir", default=os.path.join(ROOT, "docs", "images"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, seen = (args.model, set()) if args.model else train_small_model(args.data_dir, args.train_photos, tmp)
        photo = args.photo or next(os.path.join(args.data_dir, f) for f in sorted(os.listdir(args.data_dir))
                                   if f.endswith(".jpg") and f not in seen)
        port = free_port()
        server = start([sys.executable, "server.py", "--model", model, "--host", "127.0.0.1", "--port", str(port)], port)
        try:
            shoot(f"http://127.0.0.1:{port}", photo, args.out_dir)
        finally:
            stop(server)


if __name__ == "__main__":
    main()
