"""Interrupting train.py is safe at any instant: a kill in training, during a backup's background write or after
the last epoch, and a SIGTERM, never stop the rerun, which then trains exactly as an uninterrupted run
(tools/training/resume.py, checkpoints.py, interrupts.py, phases.py)."""

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

from support.scripts import FAST, ROOT, SCRATCH_ARGS



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
            "--backup_every", "0", *FAST]


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


def _assert_best_loads(out):
    import keras

    path = os.path.join(out, "best.h5")
    if os.path.exists(path):
        assert keras.models.load_model(path, compile=False).output_shape == (None, 4)


# --------------------------------------------------------------------------- tools/training/resume.py on its own
def _tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    # named: a backup holds variables by path, and auto-numbered names differ between models of one process
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")], name="tiny")
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def _fit_with_backups(folder, epochs=3, every=0.0, **fit):
    """A tiny model fit for `epochs` with a PhaseBackup in `folder`; returns (model, {epoch: weights}, stop, backup)."""
    import keras

    from tools.training.checkpoints import BackgroundWriter
    from tools.training.resume import PhaseBackup
    from tools.training.state import RunState

    x, y = np.random.default_rng(0).random((16, 3)), np.random.default_rng(1).random((16, 2))
    model, seen = _tiny_model(), {}
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.update({e + 1: model.get_weights()}))
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=10)
    writer = BackgroundWriter()
    backup = PhaseBackup(folder, model, RunState(best_value=0.5), writer, counters=[stop], every=every, **fit)
    backup.restore(0, epochs, "phase")
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, shuffle=False, callbacks=[record, stop, backup])
    writer.close()
    return model, seen, stop, backup


def _restore(folder, epochs=3):
    from tools.training.checkpoints import BackgroundWriter
    from tools.training.resume import PhaseBackup
    from tools.training.state import RunState

    model, state = _tiny_model(), RunState()
    backup = PhaseBackup(folder, model, state, BackgroundWriter())
    return model, state, backup, backup.restore(0, epochs, "phase")


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


def test_restore_falls_back_to_the_previous_backup_then_to_the_phase_start(tmp_path, caplog):
    import keras

    from tools.training.resume import METADATA, PhaseBackup

    folder = str(tmp_path / "backup")
    _, seen, stop, _ = _fit_with_backups(folder)
    assert sorted(os.listdir(folder)) == ["epoch-0002.npz", "epoch-0003.npz", METADATA]

    caplog.set_level("WARNING")
    fresh, state, backup, start = _restore(folder)
    assert start == 3 and state.best_value == 0.5 and not caplog.records
    assert _same(fresh.get_weights(), seen[3]) and int(fresh.optimizer.iterations) == 6  # optimizer state too
    again = keras.callbacks.EarlyStopping(monitor="loss", patience=10)
    again.on_train_begin()
    backup.counters = [again]
    backup.on_train_begin()
    assert (again.best, again.best_epoch, again.wait) == (stop.best, stop.best_epoch, stop.wait)

    latest = os.path.join(folder, "epoch-0003.npz")
    with open(latest, "r+b") as f:  # what a kill during the write would leave, were it not renamed after
        f.truncate(os.path.getsize(latest) // 2)
    caplog.clear()
    fresh, _, _, start = _restore(folder)
    assert start == 2 and _same(fresh.get_weights(), seen[2])
    assert len(caplog.records) == 1 and "epoch-0003.npz is unreadable" in caplog.records[0].getMessage()
    assert "trying the one before it (epoch 2)" in caplog.records[0].getMessage()

    with open(os.path.join(folder, "epoch-0002.npz"), "r+b") as f:
        f.write(b"\0" * 512)  # the zip's first entry gone, size unchanged
    caplog.clear()
    fresh = _tiny_model()
    before = fresh.get_weights()
    backup = PhaseBackup(folder, fresh, __import__("tools.training.state", fromlist=["RunState"]).RunState(), None)
    assert backup.restore(0, 3, "phase") == 0
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and messages[1].endswith("starting the phase over"), messages
    assert _same(fresh.get_weights(), before)

    with open(os.path.join(folder, METADATA), "w") as f:
        f.write('{"epoch": 3, "weig')
    caplog.clear()
    assert _restore(folder)[3] == 0
    assert len(caplog.records) == 1 and "metadata" in caplog.records[0].getMessage()


def test_a_backup_of_another_model_is_refused_not_loaded(tmp_path, caplog):
    """A backup whose variables do not fit the model (other classes, other layers) is reported and skipped."""
    import keras

    from tools.training.checkpoints import read_variables, training_variables

    folder = str(tmp_path / "backup")
    _fit_with_backups(folder, epochs=1)
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5, name="dense")], name="tiny")
    other.compile(keras.optimizers.Adam(0.01), "mse")
    other.optimizer.build(other.trainable_variables)
    with pytest.raises(ValueError, match=r"tiny/dense/kernel has shape \(3, 2\) in the backup, \(3, 5\) in the model"):
        read_variables(os.path.join(folder, "epoch-0001.npz"), training_variables(other))


def test_backups_are_written_by_time(tmp_path):
    """--backup_every: with a clock that never reaches it, nothing is written, yet every epoch is snapshotted,
    so a signal can still save the newest; with one that passes it after each epoch, each is written."""
    folder = str(tmp_path / "backup")
    ticks = iter(range(1000))
    model, seen, _, backup = _fit_with_backups(folder, epochs=4, every=1e9, clock=lambda: next(ticks))
    assert not os.path.exists(folder) and backup.latest[0]["epoch"] == 4
    from tools.training.checkpoints import BackgroundWriter

    backup.writer = BackgroundWriter()
    assert backup.save_latest(wait=True) == 4
    assert sorted(os.listdir(folder)) == ["epoch-0004.npz", "training_metadata.json"]
    fresh, _, _, start = _restore(folder, epochs=4)
    assert start == 4 and _same(fresh.get_weights(), seen[4])
    folder = str(tmp_path / "each")
    _fit_with_backups(folder, epochs=3, every=1.0, clock=iter(range(0, 1000, 5)).__next__)
    assert sorted(os.listdir(folder)) == ["epoch-0002.npz", "epoch-0003.npz", "training_metadata.json"]


def test_a_sigterm_saves_the_last_finished_epoch_then_stops(tmp_path):
    """SIGTERM during epoch 3 (sent to this very process): the batch finishes, epoch 2 is written although
    --backup_every was far away, fit stops with Interrupted, and a restore continues from epoch 3."""
    import keras

    from tools.training.interrupts import Interrupted, Signals

    signals = Signals()
    kill = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: os.kill(os.getpid(), signal.SIGTERM) if seen_epochs == [1, 2] else None,
        on_epoch_end=lambda e, logs: seen_epochs.append(e + 1))
    seen_epochs = []
    folder = str(tmp_path / "backup")
    from tools.training.checkpoints import BackgroundWriter
    from tools.training.resume import PhaseBackup
    from tools.training.state import RunState

    x, y = np.random.default_rng(0).random((16, 3)), np.random.default_rng(1).random((16, 2))
    model, writer = _tiny_model(), BackgroundWriter()
    backup = PhaseBackup(folder, model, RunState(), writer, every=1e9, signals=signals)
    backup.restore(0, 5, "phase")
    with pytest.raises(Interrupted) as stopped:
        with signals.catching():
            model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[kill, backup])
    assert stopped.value.signum == signal.SIGTERM and stopped.value.exit_code == 143
    assert seen_epochs == [1, 2] and backup.save_latest(wait=True) == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone after the block
    writer.close()
    assert _restore(folder, epochs=5)[3] == 2


def test_a_sigterm_after_the_last_epoch_finishes_the_phase_then_stops(tmp_path):
    """A signal that comes while training ends (the last writes being waited for) is not lost: the phase is
    recorded as done, then the run stops with Interrupted, the epoch it ended at saved."""
    import keras

    from tools.training.checkpoints import BackgroundWriter
    from tools.training.config import TrainConfig
    from tools.training.interrupts import Interrupted
    from tools.training.phases import PhaseSpec, Training, run_phase
    from tools.training.state import RunState, load_state

    class Batches(keras.utils.PyDataset):
        batch_size = 4

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return np.full((4, 3), i, dtype=np.float32), np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]

        def set_epoch(self, epoch):
            pass

    late = keras.callbacks.LambdaCallback(on_train_end=lambda logs: os.kill(os.getpid(), signal.SIGTERM))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax", name="d")], name="m")
    model.fit = (lambda fit: lambda *a, **k: fit(*a, **dict(k, callbacks=[*k["callbacks"], late])))(model.fit)
    config = TrainConfig(data_dirs=("x",), output_dir=str(tmp_path), backup_every=1e9)
    t = Training(config, model, model, Batches(), None, 2, False, RunState(), BackgroundWriter())
    with pytest.raises(Interrupted) as stopped:
        run_phase(t, PhaseSpec("scratch", "training", "t", 2, 1e-3, plateau=False), 0)
    t.writer.close()
    assert stopped.value.signum == signal.SIGTERM and stopped.value.saved == 2
    assert load_state(str(tmp_path)).phases_done == {"scratch": 2}
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_backup_of_the_version_before_still_restores(tmp_path):
    """epoch-NNNN.weights.h5 (model.save_weights) with the generators' states in the metadata."""
    import json

    model = _tiny_model()
    model.fit(np.ones((8, 3)), np.ones((8, 2)), epochs=1, verbose=0)
    folder = tmp_path / "backup"
    folder.mkdir()
    model.save_weights(str(folder / "epoch-0001.weights.h5"))
    (folder / "training_metadata.json").write_text(json.dumps(
        {"epoch": 1, "weights": "epoch-0001.weights.h5", "state": {"phase1_done": True, "phase1_epochs": 4,
                                                                    "best_value": 0.25}, "seeds": {}}))
    fresh, state, _, start = _restore(str(folder))
    assert start == 1 and _same(fresh.get_weights(), model.get_weights())
    assert state.best_value == 0.25 and state.phases_done == {"phase1": 4}  # the older state's keys read


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
    assert _epochs(out) == [1]
    assert keras.models.load_model(out / "best.h5", compile=False).output_shape == (None, 4)


def _wait(proc, log_path, ready, timeout=600):
    """Poll until `ready()` (or the process ends, or `timeout`); returns whether it became ready."""
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if ready():
            return True
        time.sleep(0.002)
    return ready()


def _temp_files(out):
    """The temporary files being written right now: a backup's, state.json's, best.h5's."""
    return [os.path.join(root, f) for root, _, files in os.walk(out) for f in files if ".tmp" in f]


def test_kills_that_land_in_training_in_a_write_and_after_the_last_epoch_then_an_exact_finish(tiny_data, tmp_path,
                                                                                              cli, scratch_run):
    """Four stops, each placed where it claims to land, each followed by a rerun of the same command:
    1. SIGKILL at a random instant (seeded) of epoch 2's steps, with --backup_every far away: nothing is saved;
    2. SIGKILL the moment the first backup starts being written in the background (not by luck: when its
       temporary file appears): the rerun finds no complete backup and trains epoch 1 again;
    3. SIGTERM at a random instant of epoch 2, with --backup_every far away so epoch 1 is only in memory:
       the run saves epoch 1, says so and exits 143; the rerun goes on from epoch 2;
    4. SIGKILL once the outputs are being written: the last run only writes them.
    Where each stop landed is recorded and checked; the whole run then has trained exactly as the
    uninterrupted `scratch_run` (same flags, --backup_every aside) did."""
    out = tmp_path / "out"
    base = ["train.py", "--data_dir", tiny_data, *SCRATCH_ARGS, "--output_dir", str(out)]
    every_epoch, never = [*base, "--backup_every", "0"], [*base, "--backup_every", "100000"]
    meta = out / ".backup" / "scratch" / "training_metadata.json"
    rng, landed = np.random.default_rng(2024), []

    proc, log = _start(never, tmp_path / "run1.log"), tmp_path / "run1.log"
    assert _wait(proc, log, lambda: "Epoch 2/2" in _read(log)), _read(log)[-3000:]
    time.sleep(rng.uniform(0, 0.5))  # in epoch 2's steps (compiled in epoch 1); epoch 1 is in memory only
    _kill(proc)
    if "best val_accuracy" not in _read(log) and not meta.exists():
        landed.append("training")

    proc, log = _start(every_epoch, tmp_path / "run2.log"), tmp_path / "run2.log"
    # the first backup that reaches the writer: epoch 1's, or epoch 2's where it superseded epoch 1's while
    # best.h5 was written (the writer keeps only the newest pending backup)
    assert _wait(proc, log, lambda: any("epoch-000" in f for f in _temp_files(out))), _read(log)[-3000:]
    writing = [f for f in _temp_files(out) if "epoch-000" in f]
    _kill(proc)
    if writing and not meta.exists():
        landed.append("write")
    assert "Traceback" not in _read(log) and "resuming" not in _read(log)

    proc, log = _start(never, tmp_path / "run3.log"), tmp_path / "run3.log"
    assert _wait(proc, log, lambda: "Epoch 2/2" in _read(log)), _read(log)[-3000:]
    assert not meta.exists(), "--backup_every 100000: epoch 1 is in memory only"
    time.sleep(rng.uniform(0, 0.5))
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=300)
    text = _read(log)
    assert code == 143 and "stopped by SIGTERM: epoch 1 is saved: rerun the same command to continue from epoch 2" \
        in text, text[-3000:]
    assert json.loads(meta.read_text())["epoch"] == 1 and "Traceback" not in text
    landed.append("training (SIGTERM)")
    assert f"removed 1 temporary file(s) an interrupted run left: {os.path.relpath(writing[0], out)}" in text

    proc, log = _start(every_epoch, tmp_path / "run4.log"), tmp_path / "run4.log"
    assert _wait(proc, log, lambda: "==> Outputs" in _read(log)), _read(log)[-3000:]
    _kill(proc)
    text = _read(log)
    assert "best val_accuracy" not in text and "resuming scratch from epoch 2" in text and "Epoch 1/2" not in text
    landed.append("outputs")
    assert landed == ["training", "write", "training (SIGTERM)", "outputs"], landed
    _assert_best_loads(out)

    r = cli(*every_epoch)
    text = r.stdout + r.stderr
    assert r.returncode == 0 and "Traceback" not in text, text[-3000:]
    assert "training finished in an earlier run (2 epochs); going on with the outputs" in text
    last = r.stdout.strip().splitlines()[-1]
    assert _epochs_trained(text) == 0 and last.startswith("best val_accuracy")
    whole, steps = map(float, re.search(r"([0-9.]+) training images/s over whole epochs.*; ([0-9.]+) in the training "
                                        r"steps alone", last).groups())
    assert 0 < whole <= steps, last  # the clock of epochs trained by earlier runs travelled in their backups
    assert _epochs(out) == [1, 2] and not (out / ".backup").exists() and not _temp_files(out)
    with open(out / ".history_scratch.csv") as f:
        assert len(f.read().splitlines()) == 3  # the header and the two epochs' rows, none repeated
    _assert_best_loads(out)
    # The resumed run trains exactly as an uninterrupted one: same weights, optimizer state, batches,
    # dropout and augmentation draws (the random generators' states travel in the backups).
    ref, ref_out = scratch_run
    assert ref.returncode == 0, (ref.stdout + ref.stderr)[-3000:]
    resumed, uninterrupted = _history_rows(out), _history_rows(ref_out)
    assert resumed == pytest.approx(uninterrupted, rel=1e-6), (resumed, uninterrupted)


def test_a_phase_starting_afresh_goes_on_from_the_generators_the_phase_before_ended_with(tmp_path):
    """Killed between phases (phase 1 recorded done, no phase-2 backup yet), the rerun's phase 2 must draw
    augmentation and dropout from where phase 1 left the generators, as an uninterrupted run does: state.json
    carries their states. Simulated in one process: a second, fresh model stands for the rerun."""
    import keras

    from models.augmentation import Cutout
    from tools.training.checkpoints import BackgroundWriter
    from tools.training.config import TrainConfig
    from tools.training.phases import PhaseSpec, Training, run_phase
    from tools.training.resume import seed_states
    from tools.training.state import RunState, load_state

    class Batches(keras.utils.PyDataset):
        batch_size = 4

        def __len__(self):
            return 2

        def __getitem__(self, i):
            rng = np.random.default_rng(i)
            return rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8), np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]

        def set_epoch(self, epoch):
            pass

    def build():
        return keras.Sequential([keras.Input((8, 8, 3), dtype="uint8"), Cutout(4, rate=1.0, seed=5, name="cutout"),
                                 keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                                 keras.layers.Dense(2, activation="softmax")])

    config = TrainConfig(data_dirs=("x",), output_dir=str(tmp_path), backup_every=0)

    def phase(name, epochs):
        return PhaseSpec(name, name, name, epochs, 1e-3, plateau=False)

    first, writer = build(), BackgroundWriter()
    start_states = seed_states(first)
    assert list(start_states) == ["cutout/seed_generator/seed_generator_state"]
    t = Training(config, first, first, Batches(), None, 2, False, RunState(), writer)
    assert run_phase(t, phase("phase1", 1), 0) == 1
    ended = seed_states(first)
    assert ended != start_states and t.state.seeds == ended and t.state.phases_done == {"phase1": 1}
    rerun = build()
    assert seed_states(rerun) == start_states
    saved = load_state(str(tmp_path))  # as state.json holds it
    assert saved.seeds == ended
    t = Training(config, rerun, rerun, Batches(), None, 2, False, saved, writer)
    assert run_phase(t, phase("phase1", 1), 0) == 1  # done: not run again
    assert seed_states(rerun) == start_states
    assert run_phase(t, phase("phase2", 1), 1) == 2
    assert seed_states(rerun) != start_states and seed_states(rerun) != ended
    writer.close()
    assert [(e.phase, e.epoch) for e in t.state.epochs] == [("phase1", 1), ("phase2", 2)]
