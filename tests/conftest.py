"""The tests' fixtures and pytest hooks, nothing else (bench/layout.py checks it): generated data sets, the
shared TrashNet copy, a CLI runner, a local HTTP server, models (tiny_model of today's contract, trained to
tell the generated classes apart; old_model of the contract before; glass_model, with a 玻璃 class), a
scratch train.py run, and the one headless Chromium. Helpers live in tests/support/; pytest.ini puts the
checkout and tests/ on the path."""

import functools
import http.server
import io
import os
import threading

import numpy as np
import pytest

from support.browser import CAMERA_FRAMES, CAMERA_SIZE, CHROMIUM, chromium_flags, write_y4m
from support.datagen import make_image, make_txt_dataset
from support.glass import save_glass_model
from support.scripts import SCRATCH_ARGS, TF_LOG_LEVEL, lean_blocker, run_as_user, run_cli
from support.servers import QuietFileHandler
from support.trashnet import TRASHNET

#: Set (.ci/run sets it) to count a skipped test as failed: CI installs everything the tests need, so a
#: skip there is a test that did not run.
NO_SKIPS = "TESTS_NO_SKIPS"


def pytest_configure(config):
    """TensorFlow's start-up lines stay out of the output the tests read (set before any test module is
    collected; xdist's workers run this hook too)."""
    os.environ.setdefault(TF_LOG_LEVEL, "3")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.skipped and os.environ.get(NO_SKIPS) and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, and {NO_SKIPS} is set (no test may skip): {reason}"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """4 classes x 12 generated photos in the garbage_classify_v2 layout (data dir path)."""
    return make_txt_dataset(str(tmp_path_factory.mktemp("tiny")), per_class=12, num_classes=4)


@pytest.fixture
def trashnet_dir():
    path = TRASHNET
    if not os.path.isdir(path):
        pytest.skip("needs ../shared/data/trashnet_v2 (the shared TrashNet copy); absent in a user's clone")
    return path


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def http_dir(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www; yields (base_url, folder)."""
    www = tmp_path / "www"
    www.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietFileHandler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", www
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A classifier trained in-process on generated photos (support/tiny_model.py: a few seconds), saved as
    train.py saves it: best.h5 + labels.json (4 classes, 32 px). It tells make_image's classes apart, so
    tests that compare answers or check a photo's known class can fail; checked here on photos it was not
    trained on."""
    from support.tiny_model import answers, check_photos, save_tiny_classifier

    path, model = save_tiny_classifier(tmp_path_factory.mktemp("model"))
    photos = check_photos()
    got = answers(model, photos)
    assert len(set(got)) >= 3 and got == [label for label, _ in photos], got
    return path


@pytest.fixture(scope="session")
def old_model(tiny_model, tmp_path_factory):
    """tiny_model's weights in a best.h5 + labels.json of the OLD contract (float32 preprocessed input,
    no "input" in labels.json), as users' disks hold them: the same function of the photo."""
    from models.saving import load_model
    from support.old_contract import save_old_contract_model

    return save_old_contract_model(tmp_path_factory.mktemp("old_model"), 4, 32, like=load_model(tiny_model))


@pytest.fixture(scope="session")
def glass_model(tiny_model, tmp_path_factory):
    """tiny_model (4 outputs, 32 px) with labels.json listing support.glass.GLASS_CLASSES."""
    return save_glass_model(tiny_model, tmp_path_factory.mktemp("glass_model"))


@pytest.fixture(scope="session")
def photo_bytes():
    """A 640x480 JPEG of a generated 'item'."""
    buf = io.BytesIO()
    make_image(2, np.random.default_rng(4), (640, 480)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="session")
def scratch_run(tiny_data, tmp_path_factory):
    """One from-scratch train.py run (SCRATCH_ARGS on tiny_data) as a user of a lean install runs it (the
    extras unimportable, TensorFlow's log level not set), shared by the output checks of test_train.py,
    test_packaging.py's lean-install check and the uninterrupted reference of test_resume.py and
    test_distributed.py: each train.py process costs about a minute of start-up and tracing on 2 cores.
    Returns (CompletedProcess, output folder)."""
    out = str(tmp_path_factory.mktemp("scratch_out"))
    blocker = lean_blocker(tmp_path_factory.mktemp("lean_blocker"))
    return run_as_user("train.py", "--data_dir", tiny_data, *SCRATCH_ARGS, "--output_dir", out,
                       PYTHONPATH=blocker), out


@pytest.fixture(scope="module")
def playwright():
    """Playwright, for one test module (each browser test file drives its own Chromium)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (installed by .ci/run)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright, request, tmp_path_factory):
    """Headless Chromium for one test module, its fake camera filming a generated photo of class 1 at the
    module's CAMERA_SIZE for CAMERA_FRAMES frames (support/browser.py's when the module sets none)."""
    video = str(tmp_path_factory.mktemp("camera") / "camera.y4m")
    size = getattr(request.module, "CAMERA_SIZE", CAMERA_SIZE)
    frames = getattr(request.module, "CAMERA_FRAMES", CAMERA_FRAMES)
    write_y4m(video, make_image(1, np.random.default_rng(3), size), frames=frames)
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=chromium_flags(video))
    yield b
    b.close()
