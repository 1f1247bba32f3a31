"""The feedback loop in a real browser: python server.py --collect DIR, headless Chromium with a fake
camera. Capture, "Wrong? -> 玻璃", and the pair is in DIR under the right label; sample.py --check
accepts DIR and load_datasets trains on it beside another folder. "Correct" is recorded too, the list
opens unasked when the answer is "not sure", nothing overlaps on a phone, the answer and its buttons
(and the list) are on the screen at 390x844 and 1280x800, and the chosen item then heads the card."""

import csv
import io
import json
import os
import sys

import numpy as np
import pytest
import requests
from PIL import Image

from support.browser import DESKTOP, LAYOUT_ITEMS, PHONE, box, on_screen, screenshots, wait_true, watch_csp
from support.browser import check_layout as phone_check_layout
from support.datagen import make_image
from support.glass import GLASS, GLASS_CLASSES, make_glass_data
from support.scripts import run_cli
from support.servers import free_port, start, stop
from tools.data.merge import load_datasets

#: What a person looks at or taps while giving feedback (the card itself holds them all).
FEEDBACK_ITEMS = LAYOUT_ITEMS.replace("#result > *", "#privacy, #result .item, #result .bin, #result .prob, "
                                      "#result .unsure, #result .chosen, #result .top-head, #result .bars li, "
                                      ".feedback button, .fb-search, .group-head, .saved, .nomatch")


@pytest.fixture(scope="module")
def server(glass_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("page") / "collected"
    port = free_port()
    proc = start([sys.executable, "server.py", "--model", glass_model, "--host", "127.0.0.1", "--port", str(port),
                  "--crops", "1", "--threshold", "0", "--collect", str(folder)], port)  # threshold 0: never unsure
    proc.url = f"http://127.0.0.1:{port}"
    proc.folder = str(folder)
    yield proc
    stop(proc)


def check_layout(page, what):
    """No two visible FEEDBACK_ITEMS overlap and all fit the screen (support.browser's check)."""
    return phone_check_layout(page, what, FEEDBACK_ITEMS)


def visible_choices(page):
    return [int(x) for x in page.eval_on_selector_all(".choice", "bs => bs.filter((b) => !b.hidden && b.offsetParent)"
                                                                  ".map((b) => b.dataset.label)")]


def test_wrong_then_glass_saves_the_pair_that_check_and_training_accept(server, browser, tmp_path):
    page = browser.new_page(locale="zh-CN", **PHONE)
    violations = watch_csp(page)
    page.goto(server.url + "/")
    assert "保存在本服务器上" in page.inner_text("#privacy")  # said while collecting
    page.wait_for_selector("#capture:enabled", timeout=30000)
    wait_true(page, "document.getElementById('preview').videoWidth > 0", timeout=30000)
    page.click("#capture")
    page.wait_for_selector("#result .card", timeout=60000)
    assert page.inner_text(".fb-wrong") == "不对？选择正确的类别"
    assert page.inner_text(".fb-correct") == "正确 ✓"
    assert on_screen(page, "#result .answer, .feedback-buttons")  # the answer and its buttons, together
    assert page.locator(".picker").count() == 0  # a sure answer: the list waits to be asked for
    check_layout(page, "camera page, answer")
    page.click(".fb-wrong")
    page.wait_for_selector(".choice")
    assert sorted(visible_choices(page)) == [0, 1, 2, 3]
    heads = page.eval_on_selector_all(".group-head", "hs => hs.map((h) => h.textContent)")
    assert sorted(heads) == ["厨余垃圾", "可回收物", "有害垃圾"]  # grouped by bin
    assert page.inner_text(".group:has(.choice[data-label='3']) .group-head") == "可回收物"
    check_layout(page, "camera page, class list")
    screenshots(page, "phone_feedback_list")
    page.fill(".fb-search", "玻璃")
    assert visible_choices(page) == [GLASS]
    page.fill(".fb-search", "电池")
    assert visible_choices(page) == [1]
    page.fill(".fb-search", "xyz")
    assert visible_choices(page) == [] and page.is_visible(".nomatch")
    page.fill(".fb-search", "玻璃")
    page.click(f".choice[data-label='{GLASS}']")
    page.wait_for_selector(".saved", timeout=30000)
    assert page.inner_text(".saved") == "已保存，谢谢：玻璃"
    assert page.locator(".fb-wrong").count() == 0  # one answer per photo
    # the chosen item and its bin head the card now
    assert page.inner_text("#result .answer .item") == "玻璃" and page.inner_text(".chosen").startswith("你的选择")
    assert page.get_attribute("#result .answer .bin", "data-bin") == "可回收物"
    assert page.inner_text("#result .answer .bin") == "投放到: 可回收物"
    check_layout(page, "camera page, saved")
    page.close()
    assert violations == []

    folder = server.folder
    with open(os.path.join(folder, "img_1.txt"), encoding="utf-8") as f:
        assert f.read() == f"img_1.jpg, {GLASS}"
    assert Image.open(os.path.join(folder, "img_1.jpg")).size == (640, 480)  # the snapshot itself
    with open(os.path.join(folder, "feedback.csv"), encoding="utf-8", newline="") as f:
        row = list(csv.DictReader(f))[0]
    assert row["file"] == "img_1.jpg" and row["label"] == str(GLASS) and row["name"] == "可回收物/玻璃"

    r = run_cli("sample.py", "--check", folder, "--out", tmp_path / "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 errors" in r.stdout and "4 classes" in r.stdout, r.stdout
    other = make_glass_data(tmp_path / "a", per_class=2)
    ds = load_datasets([other, folder])
    collected = len([n for n in os.listdir(folder) if n.endswith(".txt")])
    assert ds.sources == [(other, 8), (folder, collected)]
    assert ds.class_names == GLASS_CLASSES and ds.labels[8] == GLASS
    # train.py on both folders, then its report over both
    out = tmp_path / "out"
    r = run_cli("train.py", "--data_dir", other, "--data_dir", folder, "--weights", "none", "--epochs", "1",
                "--input_size", "32", "--batch_size", "16", "--output_dir", out)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"8 from {other}" in r.stdout and f"{collected} from {folder}" in r.stdout
    r = run_cli("train.py", "--test_only", "--data_dir", other, "--data_dir", folder, "--output_dir", out)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    report = json.load(open(out / f"test_a+{os.path.basename(folder)}" / "report.json", encoding="utf-8"))
    assert report["images"] == 8 + collected


def test_correct_is_recorded_and_an_unsure_answer_opens_the_list(server, browser, tmp_path):
    from tools.names import bin_name, item_name

    photo = tmp_path / "can.jpg"
    make_image(0, np.random.default_rng(8), (500, 400)).save(photo, quality=92)
    page = browser.new_page(locale="en-US", **PHONE)
    violations = watch_csp(page)

    def unsure(route):
        """This server is always sure (--threshold 0): make this answer "not sure". (The photo is posted
        here: Playwright's route.fetch() would drop the form's file part, see test_phone.Wire.)"""
        body = requests.post(server.url + "/predict", files={"file": photo.read_bytes()}, timeout=60).json()
        body["unsure"] = True
        route.fulfill(status=200, json=body)

    page.route("**/predict", unsure)
    page.goto(server.url + "/upload")
    assert page.inner_text("#privacy") == ("Photos you correct or confirm are saved on this server to improve the "
                                           "model.")
    before = {n for n in os.listdir(server.folder) if n.endswith(".txt")}
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#result .card", timeout=60000)
    page.wait_for_selector(".choice")  # opened unasked
    assert page.is_visible(".fb-search") and page.get_attribute(".fb-wrong", "aria-expanded") == "true"
    # scrolled so that the answer, its buttons and the list are on the phone's screen
    assert page.evaluate("scrollY") > 0 and on_screen(page, "#result .answer, .feedback-buttons, .fb-search, .group-head")
    page.fill(".fb-search", "glass")  # English names are searched too
    assert visible_choices(page) == [GLASS] and page.inner_text(f".choice[data-label='{GLASS}']") == "glass (玻璃)"
    predicted = int(page.get_attribute("#result .card", "data-label"))
    page.click(".fb-correct")
    page.wait_for_selector(".saved", timeout=30000)
    assert page.inner_text(".saved").startswith("Saved, thank you")
    name = GLASS_CLASSES[predicted]
    assert page.inner_text("#result .answer .item").startswith(item_name(name, "en"))  # English, and at the top
    assert page.inner_text("#result .answer .bin") == f"Bin: {bin_name(name.split('/')[0], 'en')} ({name.split('/')[0]})"
    page.set_viewport_size(DESKTOP)  # a wide screen: the answer beside the photo, on the screen
    chosen, shown = box(page, "#chosen"), box(page, "#result .card")
    assert shown["x"] >= chosen["right"] and shown["y"] < chosen["bottom"], (chosen, shown)
    assert on_screen(page, "#result .answer, .saved")
    page.click("#lang")
    assert page.inner_text(".saved").startswith("已保存，谢谢")  # the state survives the language switch
    page.close()
    assert violations == []
    new = {n for n in os.listdir(server.folder) if n.endswith(".txt")} - before
    assert len(new) == 1
    name = new.pop()
    with open(os.path.join(server.folder, name), encoding="utf-8") as f:
        image, label = f.read().split(", ")
    assert int(label) == predicted and image == name.replace(".txt", ".jpg")
    with open(os.path.join(server.folder, image), "rb") as f:
        assert Image.open(io.BytesIO(f.read())).size == (500, 400)
    with open(os.path.join(server.folder, "feedback.csv"), encoding="utf-8", newline="") as f:
        row = [r for r in csv.DictReader(f) if r["file"] == image][0]
    assert row["predicted_label"] == row["label"] == str(predicted)  # a confirmation
