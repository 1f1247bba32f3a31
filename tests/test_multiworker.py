"""--strategy multiworker: real train.py worker processes on 127.0.0.1 forming one cluster (TF_CONFIG each),
and every way the cluster can be wrong answered in one line (tools/distributed/cluster.py, multiworker.py)."""

import csv
import json
import os
import re
import time

import numpy as np
import pytest

from support.cluster import Workers, free_ports
from support.scripts import ROOT, SCRATCH_ARGS


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- TF_CONFIG, checked before TensorFlow
@pytest.mark.parametrize("text,words", [
    (None, "needs TF_CONFIG on every machine"),
    ("{not json", "TF_CONFIG is not JSON"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}}', 'needs a "cluster" and a "task"'),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "index 2 is out of range"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "task type 'chief' names no group"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["c:3"]}, "task": {"type": "worker", "index": 0}}', "'ps'"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', '"host:port" strings'),
    ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}', "an address twice"),
])
def test_tf_config_mistakes_are_one_line(text, words):
    from tools.distributed.cluster import read_tf_config
    from tools.training.usage import UsageError

    with pytest.raises(UsageError, match=words.replace("(", r"\(")):
        read_tf_config(text)


def test_tf_config_finds_this_worker_and_the_chief():
    from tools.distributed.cluster import read_tf_config

    c = read_tf_config('{"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"type": "worker", "index": 2}}')
    assert (c.addresses, c.index, c.count, c.chief) == (("a:1", "b:2", "c:3"), 2, 3, False)
    c = read_tf_config('{"cluster": {"chief": ["x:9"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}')
    assert c.chief and c.addresses == ("x:9", "a:1")
    c = read_tf_config('{"cluster": {"chief": ["x:9"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}')
    assert c.index == 1 and not c.chief


def test_keras_distribution_variables_for_jax_processes():
    from tools.distributed.cluster import read_keras_distribution
    from tools.training.usage import UsageError

    env = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1", "KERAS_DISTRIBUTION_NUM_PROCESSES": "3",
           "KERAS_DISTRIBUTION_PROCESS_ID": "2"}
    c = read_keras_distribution(env)  # the coordinator's address alone, as JAX needs
    assert (c.addresses, c.index, c.count, c.chief) == (("a:1",), 2, 3, False)
    assert read_keras_distribution({}) is None
    assert read_keras_distribution(dict(env, KERAS_DISTRIBUTION_NUM_PROCESSES="1", KERAS_DISTRIBUTION_PROCESS_ID="0")) \
        is None
    for bad, words in ((dict(env, KERAS_DISTRIBUTION_PROCESS_ID="3"), "out of range"),
                       (dict(env, KERAS_DISTRIBUTION_PROCESS_ID="x"), "whole numbers"),
                       (dict(env, KERAS_DISTRIBUTION_JOB_ADDRESSES="a:1,b:2"), "coordinator")):
        with pytest.raises(UsageError, match=words):
            read_keras_distribution(bad)


def test_a_bad_tf_config_stops_train_py_before_keras_loads(tiny_data, tmp_path, cli):
    start = time.monotonic()
    r = cli("train.py", "--data_dir", tiny_data, "--strategy", "multiworker", "--output_dir", tmp_path,
            env={"TF_CONFIG": '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}'})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["error: TF_CONFIG's task index 3 is out of range: the cluster has 1 "
                                             "worker(s), so 0..0"]
    assert time.monotonic() - start < 20 and not list(tmp_path.iterdir())


def test_a_worker_that_never_comes_is_one_line_after_the_timeout(tiny_data, tmp_path):
    """TensorFlow waits for the whole cluster without a limit (holding Python's lock): the watchdog ends it."""
    ports = free_ports(2)
    workers = Workers(ROOT, str(tmp_path), lambda i: ["--data_dir", tiny_data, "--weights", "none", "--strategy",
                                                      "multiworker", "--worker_timeout", "5", "--output_dir",
                                                      tmp_path / "out"], count=1, ports=ports)
    assert workers.wait(180) == [-9]
    log = workers.read(0)
    assert f"worker 1 at 127.0.0.1:{ports[1]} did not answer" in log and "--worker_timeout" in log, log[-2000:]
    assert "Traceback" not in log


# --------------------------------------------------------------------------- two real workers
def test_two_workers_killed_after_epoch_1_then_rerun_on_a_shared_and_a_local_folder(tiny_data, tmp_path, scratch_run):
    """Run 1: both workers write into one shared folder (as over NFS) and are killed once the chief's first
    backup is on disk. Run 2: the chief keeps that folder, worker 1 gets an empty one of its own (as on another
    machine). The rerun continues from epoch 2 on both, each worker trains on half the photos, only the
    chief writes, history.csv has one row per epoch, and the mean training loss is the single-device run's
    (scratch_run: global batch 16, lr 1e-3; here 2 workers x 8, lr 5e-4 x 2) within 25 %: the workers' shares
    make other batches, and dropout and augmentation draw otherwise (the float-noise equivalence of several
    devices is tests/test_distributed.py's, where the batches can be the same)."""
    shared, own = tmp_path / "shared", tmp_path / "own1"
    run1, run2 = tmp_path / "run1", tmp_path / "run2"
    run1.mkdir(), run2.mkdir()

    def args(out):
        return lambda i: ["--data_dir", tiny_data, *SCRATCH_ARGS, "--batch_size", "8", "--learning_rate", "5e-4",
                          "--strategy", "multiworker", "--backup_every", "0", "--output_dir", out(i)]

    meta = shared / ".backup" / "scratch" / "training_metadata.json"
    workers = Workers(ROOT, str(run1), args(lambda i: shared))
    deadline = time.monotonic() + 900
    while not meta.exists() and all(p.poll() is None for p in workers.procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    workers.kill()
    logs = [workers.read(i) for i in (0, 1)]
    assert meta.exists(), logs[0][-3000:] + logs[1][-3000:]
    assert json.loads(meta.read_text())["epoch"] == 1 and not any("best val_accuracy" in log for log in logs)
    for i in (0, 1):
        assert f"worker {i} of 2: 18 of 36 training photos and 6 of 12 validation photos" in logs[i], logs[i][-3000:]
        assert "Traceback" not in logs[i]
    assert "2 devices (multiworker): global batch 8 x 2 = 16, learning rate 0.0005 x 2 = 0.001" in logs[0]

    workers = Workers(ROOT, str(run2), args(lambda i: shared if i == 0 else own))
    codes = workers.wait(900)
    logs = [workers.read(i) for i in (0, 1)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    for log in logs:
        assert "resuming scratch from epoch 2" in log and "Epoch 1/2" not in log and "Epoch 2/2" in log, log[-3000:]
        assert "Traceback" not in log
    last = logs[0].strip().splitlines()[-1]
    assert last.startswith("best val_accuracy")
    whole, steps = map(float, re.search(r"([0-9.]+) training images/s over whole epochs.*; ([0-9.]+) in the training "
                                        r"steps alone", last).groups())
    assert 0 < whole <= steps, last  # epoch 1's clock came back with the chief's backup, its wall included
    assert "worker 1 of 2: training finished; the chief writes the outputs" in logs[1]
    assert not own.exists() or not list(own.iterdir()), "worker 1 writes nothing in its folder"
    assert [int(r["epoch"]) for r in _rows(shared / "history.csv")] == [1, 2]
    assert len(_rows(shared / ".history_scratch.csv")) == 2
    assert not (shared / ".backup").exists() and (shared / "report.json").exists()
    assert any(f.startswith("events") for _, _, fs in os.walk(shared / "logs") for f in fs)

    import keras

    model = keras.models.load_model(shared / "best.h5", compile=False)
    probs = model.predict(np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8), verbose=0)
    assert probs.shape == (3, 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    ref, ref_out = scratch_run
    single = [float(r["loss"]) for r in _rows(os.path.join(ref_out, "history.csv"))]
    multi = [float(r["loss"]) for r in _rows(shared / "history.csv")]
    assert abs(np.mean(single) - np.mean(multi)) / np.mean(single) < 0.25, (single, multi)
