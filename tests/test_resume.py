"""Interrupting train.py is safe at any instant: a kill during a backup's write, at random moments, or
after the last epoch never stops the rerun (tools/training/resume.py, tools/training/phases.py's fit_phase/finish_phase)."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import FAST, ROOT, SCRATCH_ARGS



def _epochs(out):
    with open(os.path.join(out, "history.csv"), newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _history_rows(out):
    """history.csv's numbers, row after row, in one flat list (epoch and every metric)."""
    with open(os.path.join(out, "history.csv"), newline="") as f:
        return [float(row[k]) for row in csv.DictReader(f) for k in sorted(row)]


def _epochs_trained(log):
    """How many epochs a log shows trained: Keras' per-epoch lines "6/6 - 17s - ..." (verbose=2)."""
    return len(re.findall(r"^\d+/\d+ - .* - loss: ", log, flags=re.MULTILINE))


def _args(data, out, epochs):
    return ["train.py", "--data_dir", data, "--weights", "none", "--epochs", str(epochs), "--output_dir", str(out),
            *FAST]


def _start(args, log_path):
    """train.py in the background, stdout+stderr into log_path (a file: a full pipe would stall it)."""
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    log.close()
    return proc


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _weights_files(folder):
    """{name: mtime} of the *.weights.h5 files in folder (one vanishing meanwhile is left out)."""
    found = {}
    for entry in os.scandir(folder):
        if entry.name.endswith(".weights.h5"):
            try:
                found[entry.name] = entry.stat().st_mtime_ns
            except FileNotFoundError:
                pass
    return found


def _assert_best_loads(out):
    import keras

    path = os.path.join(out, "best.h5")
    if os.path.exists(path):
        assert keras.models.load_model(path, compile=False).output_shape == (None, 4)


# --------------------------------------------------------------------------- tools/training/resume.py on its own
def _tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def test_restore_falls_back_to_the_previous_backup_then_to_the_phase_start(tmp_path):
    import keras

    from tools.training.resume import METADATA, EpochBackup, restore

    folder = str(tmp_path / "backup")
    x, y = np.random.default_rng(0).random((16, 3)), np.random.default_rng(1).random((16, 2))
    model, seen = _tiny_model(), {}
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.update({e + 1: model.get_weights()}))
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=10)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0,
              callbacks=[record, stop, EpochBackup(folder, {"best_value": 0.5}, [stop])])
    assert sorted(os.listdir(folder)) == ["epoch-0002.weights.h5", "epoch-0003.weights.h5", METADATA]

    def same(a, b):
        return all(np.array_equal(u, v) for u, v in zip(a, b))

    fresh, warnings = _tiny_model(), []
    meta = restore(fresh, folder, warnings.append)
    assert meta["epoch"] == 3 and meta["state"] == {"best_value": 0.5} and warnings == []
    assert same(fresh.get_weights(), seen[3]) and int(fresh.optimizer.iterations) == 6  # optimizer state too
    again = keras.callbacks.EarlyStopping(monitor="loss", patience=10)
    again.on_train_begin()
    EpochBackup(folder, counters=[again], restored=meta).on_train_begin()
    assert (again.best, again.best_epoch, again.wait) == (stop.best, stop.best_epoch, stop.wait)

    latest = os.path.join(folder, "epoch-0003.weights.h5")
    with open(latest, "r+b") as f:  # what a kill during the write used to leave
        f.truncate(os.path.getsize(latest) // 2)
    fresh, warnings = _tiny_model(), []
    meta = restore(fresh, folder, warnings.append)
    assert meta["epoch"] == 2 and same(fresh.get_weights(), seen[2])
    assert len(warnings) == 1 and "epoch-0003.weights.h5 is unreadable" in warnings[0]
    assert "trying the one before it (epoch 2)" in warnings[0]

    with open(os.path.join(folder, "epoch-0002.weights.h5"), "r+b") as f:
        f.write(b"\0" * 512)  # HDF5 superblock gone, size unchanged
    fresh, warnings = _tiny_model(), []
    start = fresh.get_weights()
    assert restore(fresh, folder, warnings.append) is None
    assert len(warnings) == 2 and warnings[1].endswith("starting the phase over") and "OSError" in warnings[1]
    assert same(fresh.get_weights(), start)

    with open(os.path.join(folder, METADATA), "w") as f:
        f.write('{"epoch": 3, "weig')
    warnings = []
    assert restore(_tiny_model(), folder, warnings.append) is None
    assert len(warnings) == 1 and "metadata" in warnings[0] and "starting the phase over" in warnings[0]


def test_history_rows_of_epochs_that_run_again_are_dropped(tmp_path):
    from tools.training.resume import drop_history_rows

    path = tmp_path / "h.csv"
    path.write_bytes(b"epoch,loss\r\n0,1.0\r\n1,0.9\r\n2,0.8\r\n3,0.")  # the last row was cut by a kill
    drop_history_rows(str(path), 2)
    assert path.read_bytes() == b"epoch,loss\r\n0,1.0\r\n1,0.9\r\n"
    drop_history_rows(str(path), 0)  # the phase starts over: no row is kept, the header is rewritten
    assert path.read_bytes() == b""
    drop_history_rows(str(tmp_path / "absent.csv"), 0)


# --------------------------------------------------------------------------- train.py killed and rerun
def test_unreadable_backup_and_stale_temp_files_do_not_stop_the_rerun(tiny_data, tmp_path, cli):
    """What a kill during Keras' BackupAndRestore write left (a truncated latest.weights.h5), temporary files
    of killed writes and an old history: one warning, the phase starts over, exactly this run's epochs."""
    import keras

    out = tmp_path / "out"
    backup = out / ".backup" / "scratch"
    backup.mkdir(parents=True)
    _tiny_model().save_weights(str(tmp_path / "w.weights.h5"))
    (backup / "latest.weights.h5").write_bytes((tmp_path / "w.weights.h5").read_bytes()[:3000])
    (backup / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    stale = [out / ".best.h5.12345.tmp.h5", backup / "epoch-0002.tmp-12345.weights.h5",
             out / ".backup" / "state.json.tmp-12345"]
    for path in stale:
        path.write_bytes(b"half a file")
    (out / ".history_scratch.csv").write_text("epoch,loss\n0,9\n1,9\n2,9\n3,9\n4,9\n")
    r = cli(*_args(tiny_data, out, 1))
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    assert "Traceback" not in log
    warnings = [line for line in log.splitlines() if line.startswith("warning: backup")]
    assert len(warnings) == 1 and "latest.weights.h5 is unreadable" in warnings[0], warnings
    assert "starting the phase over" in warnings[0] and "resuming" not in log and _epochs_trained(log) == 1
    assert "removed 3 temporary file(s)" in log and not any(p.exists() for p in stale)
    assert _epochs(out) == [0]
    assert keras.models.load_model(out / "best.h5", compile=False).output_shape == (None, 4)


def test_kill_during_a_backup_write_then_after_the_last_epoch(tiny_data, tmp_path, cli, scratch_run):
    """SIGKILL the moment epoch 2's backup file starts being written (every time, not by luck), then the
    rerun once it writes the outputs; the third run finishes, and the whole run has trained exactly as
    the uninterrupted `scratch_run` (same flags) did."""
    out = tmp_path / "out"
    args = ["train.py", "--data_dir", tiny_data, *SCRATCH_ARGS, "--output_dir", str(out)]
    folder, meta = out / ".backup" / "scratch", out / ".backup" / "scratch" / "training_metadata.json"
    proc = _start(args, tmp_path / "run1.log")
    deadline = time.time() + 600
    while not meta.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert meta.exists(), _read(tmp_path / "run1.log")[-3000:]
    before = _weights_files(folder)
    writing = None
    while writing is None and proc.poll() is None and time.time() < deadline:
        now = _weights_files(folder)
        writing = next((n for n, t in now.items() if before.get(n) != t), None)  # new, or rewritten in place
        if writing is None:
            time.sleep(0.001)
    _kill(proc)
    first_log = _read(tmp_path / "run1.log")
    assert writing is not None and "best val_accuracy" not in first_log, first_log[-3000:]
    assert json.loads(meta.read_text())["epoch"] == 1, "killed after epoch 1's backup, during epoch 2's"
    assert (folder / writing).exists()
    _assert_best_loads(out)

    # The rerun goes on from epoch 2; it is killed in its turn once it writes the outputs (after the last epoch)
    log_path = tmp_path / "run2.log"
    proc, deadline = _start(args, log_path), time.time() + 600
    while "==> Outputs" not in _read(log_path) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    _kill(proc)
    log = _read(log_path)
    assert "==> Outputs" in log and "best val_accuracy" not in log, log[-3000:]
    assert ".tmp-" in writing, "the kill came before the write finished: the file still had its temporary name"
    assert "Traceback" not in log and "warning: backup" not in log
    assert "resuming scratch from epoch 2" in log and "Epoch 1/2" not in log and "Epoch 2/2" in log
    assert _epochs_trained(log) == 1
    assert f"removed 1 temporary file(s) an interrupted run left: {os.path.join('.backup', 'scratch', writing)}" in log
    _assert_best_loads(out)

    # Killed after the last epoch: the third run goes straight to the outputs, trains nothing
    r = cli(*args)
    log = r.stdout + r.stderr
    assert r.returncode == 0 and "Traceback" not in log, log[-3000:]
    assert "training finished in an earlier run (2 epochs); going on with the outputs" in log
    assert _epochs_trained(log) == 0
    assert r.stdout.strip().splitlines()[-1].startswith("best val_accuracy")
    for name in ("best.h5", "history.csv", "history.png", "report.json", "confusion_matrix.png"):
        assert (out / name).stat().st_size > 0, name
    assert _epochs(out) == [0, 1]
    with open(out / ".history_scratch.csv") as f:
        assert len(f.read().splitlines()) == 3  # the header and the two epochs' rows, none repeated
    _assert_best_loads(out)
    assert not (out / ".backup").exists()
    # The resumed run trains exactly as an uninterrupted one: same weights, optimizer state, batches,
    # dropout and augmentation draws (the random generators' states travel in the backup's metadata).
    ref, ref_out = scratch_run
    assert ref.returncode == 0, (ref.stdout + ref.stderr)[-3000:]
    resumed, uninterrupted = _history_rows(out), _history_rows(ref_out)
    assert resumed == pytest.approx(uninterrupted, rel=1e-6), (resumed, uninterrupted)


def test_ten_kills_at_random_instants_then_the_run_finishes(tiny_data, tmp_path, cli):
    """Ten SIGKILLs at random instants (seeded) spread over about what an uninterrupted run lasts here,
    each hitting the process running then and followed by a rerun; then the run is let finish."""
    out, epochs, span = tmp_path / "out", 2, 120.0
    instants = np.sort(np.random.default_rng(2024).uniform(0, span, 10))
    t0, kills, proc = time.monotonic(), [], None
    for i, at in enumerate(instants):
        log_path = tmp_path / f"run{i}.log"
        proc = _start(_args(tiny_data, out, epochs), log_path)
        try:
            proc.wait(timeout=max(0.0, t0 + at - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill(proc)
            kills.append(at)
        log = _read(log_path)
        assert proc.returncode in (0, -signal.SIGKILL) and "Traceback" not in log, log[-3000:]
        if proc.returncode == 0:  # finished before its instant came (a fast machine)
            break
        _assert_best_loads(out)
    if proc.returncode != 0:
        r = cli(*_args(tiny_data, out, epochs))
        log = r.stdout + r.stderr
        assert r.returncode == 0 and "Traceback" not in log, log[-3000:]
    assert len(kills) >= 5, kills
    assert _epochs(out) == list(range(epochs))
    _assert_best_loads(out)
    assert not (out / ".backup").exists() and not [n for n in os.listdir(out) if "tmp" in n]


def test_a_phase_starting_afresh_goes_on_from_the_generators_the_phase_before_ended_with(tmp_path):
    """Killed between phases (phase 1 recorded done, no phase-2 backup yet), the rerun's phase 2 must draw
    augmentation and dropout from where phase 1 left the generators, as an uninterrupted run does: state.json
    carries their states. Simulated in one process: a second, fresh model stands for the rerun."""
    import argparse
    import json

    import keras

    from models.augmentation import Cutout
    from tools.training.phases import fit_phase
    from tools.training.resume import seed_states

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            rng = np.random.default_rng(i)
            return rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8), np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]

        def set_epoch(self, epoch):
            pass

    def build():
        model = keras.Sequential([keras.Input((8, 8, 3), dtype="uint8"), Cutout(4, rate=1.0, seed=5, name="cutout"),
                                  keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy")
        return model

    args = argparse.Namespace(output_dir=str(tmp_path), patience=5, tensorboard=False)
    first, state = build(), {"images_per_epoch": 8}
    start_states = seed_states(first)
    assert list(start_states) == ["cutout/seed_generator/seed_generator_state"]
    assert fit_phase(first, first, args, state, "phase1", Batches(), None, 0, 1, plateau=False) == 1
    ended = seed_states(first)
    assert ended != start_states and state["seeds"] == ended
    rerun = build()
    assert seed_states(rerun) == start_states
    saved = json.loads(json.dumps(state))  # as state.json holds it
    assert fit_phase(rerun, rerun, args, saved, "phase2", Batches(), None, 1, 1, plateau=False) == 1
    assert seed_states(rerun) == ended
