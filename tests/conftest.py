"""Shared fixtures: generated data sets, the shared TrashNet copy, a CLI runner, a local HTTP server, models
(tiny_model of today's contract, trained to tell the generated classes apart; old_model of the
contract before)."""

import functools
import http.server
import os
import subprocess
import sys
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from support.datagen import make_txt_dataset  # noqa: E402
from support.trashnet import TRASHNET_ROOT as TRASHNET  # noqa: E402

#: Set (.ci/run sets it) to count a skipped test as failed: CI installs everything the tests need, so a
#: skip there is a test that did not run.
NO_SKIPS = "TESTS_NO_SKIPS"


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
    path = os.path.join(TRASHNET, "train_data_v2")
    if not os.path.isdir(path):
        pytest.skip("needs ../shared/data/trashnet_v2 (the shared TrashNet copy); absent in a user's clone")
    return path


def run_cli(*args, env=None, timeout=600, cwd=ROOT):
    """Run a project script with this interpreter; returns CompletedProcess (text)."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www; yields (base_url, folder)."""
    www = tmp_path / "www"
    www.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(www)))
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
def photo_bytes():
    """A 640x480 JPEG of a generated 'item'."""
    import io

    import numpy as np

    from support.datagen import make_image

    buf = io.BytesIO()
    make_image(2, np.random.default_rng(4), (640, 480)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


#: train.py flags that keep a test run small: 32 px, batch 8, 2 loader threads.
FAST = ("--input_size", "32", "--batch_size", "8", "--workers", "2")
#: The one uninterrupted from-scratch run several test files compare with (see scratch_run): global batch 16,
#: which the mirrored test splits over 2 devices.
SCRATCH_ARGS = ("--weights", "none", "--epochs", "2", "--val_split", "0.25", "--tensorboard", *FAST,
                "--batch_size", "16")
#: What requirements.txt leaves out (the export and dev extras): a lean install cannot import them.
NOT_IN_REQUIREMENTS = ("pytest", "playwright", "tf2onnx", "onnxruntime", "ai_edge_litert", "jax")


def lean_blocker(folder):
    """A folder for PYTHONPATH that makes every package of NOT_IN_REQUIREMENTS unimportable."""
    os.makedirs(folder, exist_ok=True)
    for name in NOT_IN_REQUIREMENTS:
        with open(os.path.join(folder, f"{name}.py"), "w") as f:
            f.write(f'raise ImportError("{name} is not in requirements.txt")\n')
    return str(folder)


def user_env(**env):
    """The environment a user's script runs in: without the tests' TF_CPP_MIN_LOG_LEVEL (set above), so
    TensorFlow's start-up lines are hidden as they are for a user, plus `env`."""
    full_env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    full_env.update(env)
    return full_env


def run_as_user(*args, **env):
    """A script run as a user would (user_env), output unbuffered."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=user_env(**env, PYTHONUNBUFFERED="1"),
                          capture_output=True, text=True, timeout=600)


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
