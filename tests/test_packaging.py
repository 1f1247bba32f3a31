"""What each requirements file installs: a lean runtime, export and dev extras; environment.yml alike."""

import os
import re

from support.scripts import NOT_IN_REQUIREMENTS, ROOT, lean_blocker, run_as_user


def _specs(lines):
    out = {}
    for line in lines:
        line = line.split("#")[0].strip().lstrip("- ").strip()
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*([<>=!~].*)?$", line)
        if m:
            out[m.group(1).lower()] = (m.group(2) or "").replace(" ", "")
    return out


def test_environment_yml_names_the_same_packages_as_requirements():
    req = _specs(open(os.path.join(ROOT, "requirements.txt")).read().splitlines())
    env_text = open(os.path.join(ROOT, "environment.yml")).read()
    assert re.search(r"^name:\s*garbage\s*$", env_text, re.M) and "python=3.11" in env_text
    pip_part = env_text.split("- pip:", 1)[1].splitlines()
    env = _specs(pip_part)
    assert len(req) >= 10
    assert env == req


def _read(name):
    return open(os.path.join(ROOT, name)).read().splitlines()


def test_runtime_requirements_are_lean_and_the_extras_stand_beside_them():
    runtime = _specs(_read("requirements.txt"))
    for extra in (n.replace("_", "-") for n in NOT_IN_REQUIREMENTS):
        assert extra not in runtime, f"{extra} is not needed to train, predict or serve"
    assert {"tensorflow", "keras", "pillow", "pillow-heif", "flask", "waitress"} <= set(runtime)
    assert set(_specs(_read("requirements-export.txt"))) == {"tf2onnx", "onnxruntime", "ai-edge-litert"}
    dev = _read("requirements-dev.txt")
    assert "-r requirements.txt" in dev and "-r requirements-export.txt" in dev
    assert {"pytest", "playwright", "jax"} <= set(_specs(dev))
    assert "pip install -q -r requirements-dev.txt" in open(os.path.join(ROOT, ".ci", "run")).read()


NOISE = re.compile(r"absl|cuda|cpu_feature_guard|oneDNN|rebuild TensorFlow")


def test_entry_points_run_lean_and_start_quietly(scratch_run, tiny_model, tiny_data, tmp_path):
    """What a lean install lacks is made unimportable: train.py (the shared scratch_run, run so),
    predict.py and server.py still work, and the first lines a user sees are the project's own, not
    TensorFlow's start-up noise."""
    r, out = scratch_run
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert not NOISE.search(r.stderr), r.stderr[:2000]
    assert r.stdout.lstrip().startswith("==> Data:")
    env = {"PYTHONPATH": lean_blocker(tmp_path / "blocker")}
    photo = os.path.join(tiny_data, "img_0.jpg")
    r = run_as_user("predict.py", photo, "--model", os.path.join(out, "best.h5"), **env)
    assert r.returncode == 0 and r.stdout.startswith(photo + ": "), r.stderr[-2000:]
    assert not NOISE.search(r.stderr), r.stderr[:2000]
    r = run_as_user("-c", "import server, sys; app = server.create_app({'MODEL': sys.argv[1], 'CROPS': 1}); "
                          "h = app.extensions['garbage_model']; h.ready.wait(120); "
                          "print(app.test_client().post('/predict', data=open(sys.argv[2], 'rb').read(), "
                          "content_type='image/jpeg').json['label'])", tiny_model, photo,
                    TF_CPP_MIN_LOG_LEVEL="0", **env)
    assert r.returncode == 0 and r.stdout.strip() == "0", r.stderr[-2000:]  # img_0 is of class 0
    assert NOISE.search(r.stderr), "a user who sets TF_CPP_MIN_LOG_LEVEL gets TensorFlow's output: what is hidden"


def test_rule_file_holds_the_40_huawei_classes():
    import json

    rules = json.load(open(os.path.join(ROOT, "garbage_classify_v2", "garbage_classify_rule.json"), encoding="utf-8"))
    assert len(rules) == 40
    assert rules["0"] == "其他垃圾/一次性快餐盒" and rules["14"] == "可回收物/充电宝" and rules["39"] == "有害垃圾/过期药物"
    assert {v.split("/")[0] for v in rules.values()} == {"其他垃圾", "厨余垃圾", "可回收物", "有害垃圾"}
