"""train.py end to end: outputs, both training recipes, resume after a kill, --test_only, bad data."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from support.datagen import make_folder_dataset, make_txt_dataset
from support.scripts import FAST, ROOT

OUTPUTS = ("best.h5", "labels.json", "history.csv", "history.png", "report.json", "report.txt",
           "confusion_matrix.png", "reliability.png", "top_losses.png")
#: report.json "calibration" (tools/calibration.py), in training and in --test_only's report.
CALIBRATION = {"temperature", "ece_before", "ece_after", "threshold", "target_accuracy", "coverage", "accuracy_answered"}


def _history(out):
    with open(os.path.join(out, "history.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_training_writes_every_output(scratch_run):
    r, out = scratch_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name in OUTPUTS:
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert not os.path.exists(os.path.join(out, ".backup")), "backups are removed after a finished run"
    summary = r.stdout.strip().splitlines()[-1]
    assert summary.startswith("best val_accuracy") and "wall" in summary
    whole, steps = map(float, re.search(r"([0-9.]+) training images/s over whole epochs after the first, which "
                                        r"compiles \(validation and saves included; ([0-9.]+) in the training steps "
                                        r"alone\)", summary).groups())
    assert 0 < whole < steps
    assert "compiling the training step: its first epoch takes longer..." in r.stdout
    record = json.load(open(os.path.join(out, "run.json"), encoding="utf-8"))
    assert record["state"]["finished"] and record["config"]["epochs"] == 2
    epochs = record["state"]["epochs"]
    assert [(e["epoch"], e["compiled"]) for e in epochs] == [(1, True), (2, False)]
    assert whole == pytest.approx(epochs[1]["images"] / epochs[1]["wall"], abs=0.051)  # printed to 0.1
    assert {"best.h5", "history"} <= set(epochs[1]["callbacks"]) and epochs[1]["validation"] > 0
    assert "device: CPU (" in r.stdout and "backend tensorflow" in r.stdout
    assert "train cache: RAM, 36 images at 37x37" in r.stdout, r.stdout[-3000:]


def test_a_rerun_of_a_finished_run_says_so_and_trains_nothing(scratch_run, tiny_data, cli):
    from support.scripts import SCRATCH_ARGS

    _, out = scratch_run
    before = os.path.getmtime(os.path.join(out, "best.h5"))
    r = cli("train.py", "--data_dir", tiny_data, *SCRATCH_ARGS, "--output_dir", out)
    assert r.returncode == 0 and "holds a finished run" in r.stdout and "--no_resume" in r.stdout, r.stdout
    assert "==> Data" not in r.stdout and os.path.getmtime(os.path.join(out, "best.h5")) == before


def test_outputs_hold_what_predict_and_server_need(scratch_run, tiny_data):
    _, out = scratch_run
    labels = json.load(open(os.path.join(out, "labels.json"), encoding="utf-8"))
    rules = json.load(open(os.path.join(os.path.dirname(tiny_data), "garbage_classify_rule.json"), encoding="utf-8"))
    assert labels["labels"] == [rules[str(i)] for i in range(len(rules))]
    assert labels["input_size"] == 32 and labels["preprocessing"]["mode"] == "caffe"
    report = json.load(open(os.path.join(out, "report.json"), encoding="utf-8"))
    assert report["images"] == 12
    for key in ("top1", "top4", "per_class_mean_accuracy", "bin_accuracy", "bin_majority_baseline", "per_bin",
                "per_class", "most_confused"):
        assert key in report
    # the calibration fitted on the validation photos is in labels.json, for predict.py and server.py
    c = report["calibration"]
    assert CALIBRATION <= set(c) and c["fitted"] and c["target_accuracy"] == 0.9
    assert {k: labels[k] for k in ("temperature", "threshold", "target_accuracy")} == {
        k: c[k] for k in ("temperature", "threshold", "target_accuracy")}
    assert c["target_reached"] or c["threshold"] == 1.0
    text = open(os.path.join(out, "report.txt"), encoding="utf-8").read()
    assert f"ECE after                {c['ece_after']:.4f}" in text and "most confused pairs" in text
    assert set(report["per_bin"]) == {"可回收物", "有害垃圾", "厨余垃圾", "其他垃圾"}
    assert {"precision", "recall", "f1"} <= set(report["per_class"][0])
    assert np.asarray(report["confusion_matrix"]).sum() == 12
    rows = _history(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2] and {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(rows[0])
    import h5py
    import keras

    with h5py.File(os.path.join(out, "best.h5")) as f:
        assert "model_weights" in f and "optimizer_weights" not in f  # for inference, no optimizer state
    model = keras.models.load_model(os.path.join(out, "best.h5"), compile=False)
    assert model.output_shape == (None, 4)


def test_tensorboard_logs_train_and_validation_scalars_and_the_learning_rate(scratch_run):
    import tensorflow as tf

    _, out = scratch_run
    tags = {}
    for split in ("train", "validation"):
        files = [os.path.join(root, f) for root, _, fs in os.walk(os.path.join(out, "logs", split)) for f in fs
                 if "tfevents" in f]
        assert files, f"no event file under logs/{split}"
        tags[split] = {(v.tag, e.step) for f in files for e in tf.compat.v1.train.summary_iterator(f)
                       for v in e.summary.value}
    for epoch in (0, 1):
        assert {("epoch_loss", epoch), ("epoch_accuracy", epoch), ("epoch_learning_rate", epoch)} <= tags["train"]
        assert ("epoch_loss", epoch) in tags["validation"] and ("epoch_accuracy", epoch) in tags["validation"]


def test_test_only_scores_another_labelled_folder(scratch_run, tmp_path, cli):
    _, out = scratch_run
    trained = open(os.path.join(out, "report.json"), encoding="utf-8").read()
    other = make_txt_dataset(str(tmp_path / "other"), per_class=5, num_classes=4, seed=99)
    r = cli("train.py", "--test_only", "--model", os.path.join(out, "best.h5"), "--data_dir", other,
            "--output_dir", out, "--batch_size", "8")
    assert r.returncode == 0, r.stderr[-3000:]
    report_dir = os.path.join(out, "test_other")  # the data set's folder name, not train_data_v2
    assert "test top-1" in r.stdout and f"report in {report_dir}" in r.stdout
    report = json.load(open(os.path.join(report_dir, "report.json"), encoding="utf-8"))
    assert report["images"] == 20 and os.path.exists(os.path.join(report_dir, "confusion_matrix.png"))
    for name in ("reliability.png", "top_losses.png"):
        assert os.path.getsize(os.path.join(report_dir, name)) > 10_000, name
    # the model's own calibration, scored on photos it was not fitted on
    labels = json.load(open(os.path.join(out, "labels.json"), encoding="utf-8"))
    c = report["calibration"]
    assert CALIBRATION <= set(c) and not c["fitted"]
    assert c["temperature"] == labels["temperature"] and c["threshold"] == labels["threshold"]
    assert "calibration: temperature" in r.stdout and "most common bin" in r.stdout
    assert open(os.path.join(out, "report.json"), encoding="utf-8").read() == trained, "the training report stays"
    wrong = make_txt_dataset(str(tmp_path / "wrong"), per_class=2, num_classes=3)
    r = cli("train.py", "--test_only", "--model", os.path.join(out, "best.h5"), "--data_dir", wrong,
            "--output_dir", tmp_path / "x")
    assert r.returncode == 2 and "differ" in r.stderr and "Traceback" not in r.stderr


def _backbone_file(tmp_path):
    """A ResNet50 weights file in the legacy (deep-learning-models v0.2) layout, as users have them."""
    import keras

    from models.resnet50 import ResNet50
    from support.h5_weights import save_h5_weights

    keras.utils.set_random_seed(0)
    path = str(tmp_path / "backbone.h5")
    save_h5_weights(ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3)), path, layout="legacy")
    return path


def test_pretrained_recipe_runs_two_phases_and_resumes_phase2_after_a_kill(tiny_data, tmp_path, cli):
    """--weights PATH: phase 1 (frozen backbone), then phase 2 (fine-tuning stages 5..5), epochs numbered
    on; killed in phase 2 and rerun, phase 1 is not run again and phase 2 goes on from its last epoch.
    (A plain from-scratch kill is tests/test_resume.py's subject, a mirrored one tests/test_distributed.py's.)"""
    out, phase = tmp_path / "out", "phase2"
    # phase 2 long enough that a backup reaches the disk before its end: the writer keeps only the newest pending
    # backup, and at 32 px an epoch is shorter than writing one (~300 MB)
    recipe = ["--weights", _backbone_file(tmp_path), "--epochs", "1", "--fine_tune_epochs", "7", "--unfreeze_from", "5"]
    args = [sys.executable, "train.py", "--data_dir", tiny_data, *recipe, "--output_dir", str(out), "--backup_every", "0",
            *FAST]
    meta = out / ".backup" / phase / "training_metadata.json"
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not meta.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    first_log = proc.communicate()[0]
    assert meta.exists(), first_log[-3000:]
    assert "best val_accuracy" not in first_log, "the first run must be killed before it finishes"
    assert "Phase 1/2" in first_log and "Phase 2/2: fine-tune stages 5..5" in first_log, first_log[-3000:]
    done = json.load(open(meta))["epoch"]
    assert 1 <= done < 8, f"killed after phase 2's last backup (epoch {done}): nothing left to resume"
    r = cli(*args[1:])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "phase 1 finished in an earlier run" in r.stdout and "Phase 1/2" not in r.stdout
    assert f"resuming {phase} from epoch {done + 1}" in r.stdout
    assert f"Epoch {done}/8" not in r.stdout and "Epoch 8/8" in r.stdout
    assert [int(row["epoch"]) for row in _history(out)] == list(range(1, 9))


def test_no_data_explains_where_it_goes(tmp_path, cli):
    r = cli("train.py", "--data_dir", tmp_path / "nothing_here", "--output_dir", tmp_path / "o")
    assert r.returncode == 2
    assert "No training data" in r.stderr and "garbage_classify_v2.zip" in r.stderr and "Traceback" not in r.stderr


def test_one_class_is_refused_before_any_model_is_built(tmp_path, cli):
    data = make_folder_dataset(str(tmp_path / "one"), per_class=4, classes=("cans",))
    r = cli("train.py", "--data_dir", data, "--weights", "none", "--output_dir", tmp_path / "o", *FAST)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "1 class found" in r.stderr and "at least 2 classes" in r.stderr and "==> Model" not in r.stdout
    assert not (tmp_path / "o" / "best.h5").exists()


@pytest.mark.parametrize("args,msg", [(["--input_size", "16"], "--input_size"), (["--weights", "nope.h5"], "nope.h5"),
                                      (["--val_split", "1.5"], "--val_split")])
def test_bad_flags_give_one_line_and_exit_2(tiny_data, tmp_path, cli, args, msg):
    r = cli("train.py", "--data_dir", tiny_data, "--output_dir", tmp_path, *args)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr


def test_imagenet_offline_is_one_clear_line(tiny_data, tmp_path, cli):
    r = cli("train.py", "--data_dir", tiny_data, "--output_dir", tmp_path / "o", "--input_size", "32",
            env={"KERAS_HOME": str(tmp_path / "empty_cache")})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "storage.googleapis.com" in r.stderr and "--weights PATH" in r.stderr


def test_help_explains_every_flag(cli):
    r = cli("train.py", "--help")
    assert r.returncode == 0
    for flag in ("--data_dir", "--rule_file", "--num_classes", "--input_size", "--batch_size", "--learning_rate",
                 "--epochs", "--output_dir", "--weights", "--fine_tune_epochs", "--unfreeze_from", "--seed",
                 "--workers", "--val_split", "--mixed_precision", "--test_only", "--model"):
        assert flag in r.stdout


def _trashnet_subset(trashnet_dir, dest, per_class):
    """The first `per_class` photos of each TrashNet class, copied with their label files and rule file."""
    import shutil

    data = os.path.join(dest, "train_data_v2")
    os.makedirs(data)
    shutil.copy(os.path.join(os.path.dirname(trashnet_dir), "garbage_classify_rule.json"), dest)
    taken = {}
    for name in sorted(os.listdir(trashnet_dir), key=lambda n: (len(n), n)):
        if not name.endswith(".txt"):
            continue
        with open(os.path.join(trashnet_dir, name), encoding="utf-8") as f:
            image, label = [part.strip() for part in f.read().split(",")]
        if taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            for n in (name, image):
                shutil.copy(os.path.join(trashnet_dir, n), data)
    return data, taken


def test_real_photos_run_through_training_and_the_report(trashnet_dir, tmp_path, cli):
    """Real TrashNet photos (256x192 JPEGs, Chinese class names from their own rule file) through the
    whole run: loader, one epoch, report and confusion matrix. 8 photos per class keep it to one
    process start; whether training learns on real photos is measured by bench/learning.py."""
    data, taken = _trashnet_subset(trashnet_dir, str(tmp_path / "trashnet"), per_class=8)
    assert sorted(taken.values()) == [8] * 6, taken
    out = tmp_path / "out"
    r = cli("train.py", "--data_dir", data, "--weights", "none", "--epochs", "1", "--val_split", "0.25",
            "--output_dir", out, *FAST)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "48 images in 6 classes (txt layout), 0 skipped" in r.stdout
    report = json.load(open(out / "report.json", encoding="utf-8"))
    assert [c["name"] for c in report["per_class"]] == [
        "可回收物/纸板箱", "可回收物/玻璃", "可回收物/金属", "可回收物/纸张", "可回收物/塑料", "其他垃圾/其他"]
    assert sum(c["support"] for c in report["per_class"]) == 12  # 2 validation photos per class
    matrix = np.asarray(report["confusion_matrix"])
    assert matrix.shape == (6, 6) and matrix.sum() == 12 and matrix.sum(axis=1).tolist() == [2] * 6
    assert report["top1"] == pytest.approx(np.trace(matrix) / 12)  # the share on the diagonal
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name


def test_jax_data_parallel_on_two_processes_without_tensorflow_skips_bad_data_and_predicts(tmp_path, cli):
    """The GPU machines run Keras on JAX with no TensorFlow installed (TensorFlow is made unimportable):
    one run checks that, --strategy data_parallel over 2 processes (as on 2 machines) of 2 host devices
    each, each loading its own share of the photos, one compile per step function, and that bad label
    files and an unreadable photo are warned about and skipped; then predict.py gives the same answer on
    JAX and on TensorFlow from the chief's best.h5. (One run for all of it: each process start costs
    ~100 s here.)"""
    pytest.importorskip("jax", reason="jax is in requirements-dev.txt; install it to run this test")
    from support.cluster import Workers, keras_distribution

    data = make_txt_dataset(str(tmp_path), per_class=10, num_classes=2)
    (tmp_path / "train_data_v2" / "img_50.txt").write_text("nonsense")
    (tmp_path / "train_data_v2" / "img_51.txt").write_text("img_1.jpg, 17")
    with open(os.path.join(data, "img_2.jpg"), "wb") as f:
        f.write(b"not a jpeg at all")
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "tensorflow.py").write_text('raise ImportError("tensorflow is blocked in this test")\n')
    env = {"KERAS_BACKEND": "jax", "PYTHONPATH": str(blocker)}
    out, own = tmp_path / "out", tmp_path / "own1"
    workers = Workers(ROOT, str(tmp_path), lambda i: [
        "--data_dir", data, "--weights", "none", "--epochs", "2", "--val_split", "0.3", "--strategy", "data_parallel",
        "--cpu_devices", "2", "--output_dir", out if i == 0 else own, *FAST, "--batch_size", "2"],
        env=dict(env, JAX_LOG_COMPILES="1"), cluster=keras_distribution)
    codes = workers.wait(900)
    logs = [workers.read(i) for i in (0, 1)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    # One compile per step function: each process's 7 training and 3 validation photos in batches of 4 (2 on
    # each of its 2 devices) end in a short batch, yet arrive as full batches, so nothing compiles again.
    for log in logs:
        compiled = {name: log.count(f"Finished XLA compilation of jit({name})") for name in ("train_step", "test_step")}
        assert compiled == {"train_step": 1, "test_step": 1}, compiled
        assert "backend=jax" in log and "device: CPU (4 x cpu), backend jax" in log
        assert "4 devices (data_parallel): global batch 2 x 4 = 8" in log
        assert "skipping" in log and "img_50.txt" in log and "img_51.txt" in log and "outside" in log
        assert "20 images in 2 classes" in log and "2 skipped" in log
    assert "worker 0 of 2: 7 of 14 training photos and 3 of 6 validation photos" in logs[0]
    assert sum("unreadable image" in log and "img_2.jpg" in log for log in logs) == 1  # in one process's share
    assert logs[0].count("Finished XLA compilation of jit(predict_step)") == 1  # the report, the chief's alone
    assert "worker 1 of 2: training finished; the chief writes the outputs" in logs[1] and not own.exists()
    assert len(_history(out)) == 2 and (out / "best.h5").exists() and (out / "report.json").exists()
    photo = os.path.join(data, "img_0.jpg")
    r = cli("predict.py", photo, "--model", out / "best.h5", "--json", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    on_jax = json.loads(r.stdout)
    r = cli("predict.py", photo, "--model", out / "best.h5", "--json")  # the same file on TensorFlow
    on_tf = json.loads(r.stdout)
    assert on_jax["label"] == on_tf["label"] and abs(on_jax["probability"] - on_tf["probability"]) < 1e-4


def test_test_only_reads_a_best_h5_of_the_older_contract(tiny_model, old_model, tiny_data, tmp_path, cli):
    """--test_only on a best.h5 written before models took uint8 pixels (labels.json without "input")
    feeds it preprocessed floats: the same report as the same weights under today's contract, on photos
    whose answers an older model given its input wrongly prepared (the raw pixels, or RGB minus the
    means) changes, as checked here first. A model and a labels.json of different contracts are refused
    in one line."""
    from models.preprocess import BGR_MEAN, preprocess_input
    from models.saving import load_model
    from tools.data.layout import load_dataset
    from tools.images import load_image_file

    ds = load_dataset(tiny_data)
    pixels = np.stack([load_image_file(p, 32) for p in ds.paths])  # --test_only's centre crops
    old = load_model(old_model)
    for wrong in (pixels.astype(np.float32), pixels - BGR_MEAN[::-1]):
        top1 = np.mean(np.asarray(old(wrong, training=False)).argmax(1) == ds.labels)
        assert top1 <= 0.75, top1  # a class or more lost
    assert (np.asarray(old(preprocess_input(pixels), training=False)).argmax(1) == ds.labels).all()
    scores = []
    for model in (tiny_model, old_model):
        r = cli("train.py", "--test_only", "--model", model, "--data_dir", tiny_data, "--batch_size", "16",
                "--report_dir", tmp_path / os.path.basename(os.path.dirname(model)))
        assert r.returncode == 0, r.stderr[-3000:]
        scores.append(re.search(r"test top-1 ([0-9.]+)", r.stdout).group(1))
    assert scores == ["1.0000", "1.0000"], scores
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(tiny_model, mixed / "best.h5")  # today's model beside an old labels.json
    shutil.copy(os.path.join(os.path.dirname(old_model), "labels.json"), mixed / "labels.json")
    r = cli("train.py", "--test_only", "--model", mixed / "best.h5", "--data_dir", tiny_data)
    assert r.returncode == 2 and "the two files are from different models" in r.stderr and "Traceback" not in r.stderr


def test_an_interrupted_run_of_the_older_contract_is_refused_in_one_line(tiny_data, old_model, tmp_path, cli):
    out = tmp_path / "out"
    (out / ".backup" / "scratch").mkdir(parents=True)  # what a killed run of the older version left
    for name in ("best.h5", "labels.json"):
        shutil.copy(os.path.join(os.path.dirname(old_model), name), out / name)
    r = cli("train.py", "--data_dir", tiny_data, "--weights", "none", "--output_dir", out, *FAST)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "interrupted run of an older version" in r.stderr and "--no_resume" in r.stderr
    assert (out / "best.h5").exists(), "nothing of the older run is deleted"
