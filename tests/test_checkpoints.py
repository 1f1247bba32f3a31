"""Saving off the training thread (tools/training/checkpoints.py) and the epoch clock (tools/training/clock.py)."""

import os
import threading

import numpy as np
import pytest


def test_the_writer_keeps_the_newest_job_per_kind_and_writes_best_first():
    from tools.training.checkpoints import BackgroundWriter

    writer, done, gate = BackgroundWriter(), [], threading.Event()
    writer.submit("backup", lambda: (gate.wait(5), done.append("backup 1")), "b1")  # runs at once, holds the thread
    while not writer.busy() or writer._pending:
        pass
    for job in ("backup 2", "backup 3"):
        writer.submit("backup", lambda job=job: done.append(job), job)  # backup 2 is dropped: 3 supersedes it
    writer.submit("best", lambda: done.append("best"), "best.h5")
    gate.set()
    writer.wait()
    assert done == ["backup 1", "best", "backup 3"] and not writer.busy()
    assert [what for what, _ in writer.written] == ["b1", "best.h5", "backup 3"]
    with pytest.raises(ValueError, match="kind='other'"):
        writer.submit("other", lambda: None, "x")
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit("best", lambda: None, "x")


def test_a_failed_write_is_one_warning_and_the_writer_goes_on():
    from tools.training.checkpoints import BackgroundWriter

    warnings, done = [], []
    writer = BackgroundWriter(warn=warnings.append)
    writer.submit("backup", lambda: (_ for _ in ()).throw(OSError(28, "No space left on device")), "the backup")
    writer.wait()
    writer.submit("best", lambda: done.append(1), "best.h5")
    writer.close()
    assert done == [1] and len(warnings) == 1
    assert "could not write the backup (OSError: [Errno 28] No space left on device); training goes on" in warnings[0]


def test_a_snapshot_does_not_follow_later_training_and_round_trips_through_a_file(tmp_path):
    import keras

    from tools.training.checkpoints import read_variables, snapshot, training_variables, write_variables

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d"),
                              keras.layers.Dropout(0.5, name="drop")], name="m")
    model.compile(keras.optimizers.AdamW(0.1), "mse")
    x, y = np.random.default_rng(0).random((8, 4)), np.random.default_rng(1).random((8, 3))
    model.fit(x, y, epochs=1, verbose=0)
    keyed = training_variables(model)
    keys = [k for k, _ in keyed]
    assert "m/d/kernel" in keys and "optimizer/iteration" in keys and "optimizer/m_d_kernel_momentum" in keys
    assert any(k.endswith("seed_generator_state") for k in keys), "dropout's generator travels too"
    then = [np.array(keras.ops.convert_to_numpy(v)) for _, v in keyed]
    copies = snapshot([v for _, v in keyed])
    model.fit(x, y, epochs=1, verbose=0)  # changes weights, moments, step count, generator state
    now = [keras.ops.convert_to_numpy(v) for _, v in keyed]
    assert sum(not np.array_equal(a, b) for a, b in zip(then, now)) >= 5
    for copy, old in zip(copies, then):
        np.testing.assert_array_equal(np.asarray(copy), old)
    path = str(tmp_path / "epoch-0001.npz")
    assert write_variables(path, keys, copies) == os.path.getsize(path)
    assert os.listdir(tmp_path) == ["epoch-0001.npz"], "no temporary file left"
    for (_, v), value in zip(keyed, read_variables(path, keyed)):
        v.assign(value)
    for (_, v), old in zip(keyed, then):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), old)


def test_best_h5_written_in_the_background_is_the_model_at_its_best_epoch(tmp_path):
    """BestModel copies the weights when val_loss improves and writes best.h5 from a twin; training goes on
    meanwhile, yet the file holds the weights of the best epoch, loads with plain load_model and predicts
    as the classifier did then."""
    import keras

    from tools.training.checkpoints import BackgroundWriter, BestModel
    from tools.training.state import RunState

    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax", name="d")], name="m")
    model.compile(keras.optimizers.Adam(0.05), "categorical_crossentropy")
    x = np.random.default_rng(0).random((16, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[np.arange(16) % 3]
    path, state, writer, at_epoch = str(tmp_path / "best.h5"), RunState(), BackgroundWriter(), {}
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: at_epoch.update({e + 1: model.get_weights()}))
    # val_loss improves only at epochs 1 and 3: later epochs change the weights but must not reach the file
    fake = iter([1.0, 2.0, 0.5, 0.7, 0.9])
    inject = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: logs.update(val_loss=next(fake)))
    best = BestModel(path, "val_loss", state, "scratch", model, writer)
    model.fit(x, y, epochs=5, verbose=0, callbacks=[record, inject, best])
    writer.close()
    assert (state.best_epoch, state.best_value, state.best_phase) == (3, 0.5, "scratch")
    saved = keras.models.load_model(path, compile=False)
    for a, b in zip(saved.get_weights(), at_epoch[3]):
        np.testing.assert_array_equal(a, b)
    assert not any(np.array_equal(a, b) for a, b in zip(saved.get_weights()[:1], model.get_weights()[:1]))
    assert sorted(os.listdir(tmp_path)) == ["best.h5"]


def test_best_h5s_twin_is_made_in_the_background_as_training_begins(tmp_path):
    """The model best.h5 is saved from is cloned while the first epoch compiles, in the writer thread, so the
    first improved epoch's write does not clone it during the next epoch's steps; nothing is written yet."""
    import threading

    import keras

    from tools.training.checkpoints import BackgroundWriter, BestModel
    from tools.training.state import RunState

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax", name="d")], name="m")
    writer, threads = BackgroundWriter(), []
    best = BestModel(str(tmp_path / "best.h5"), "val_loss", RunState(), "scratch", model, writer)
    clone = keras.models.clone_model
    try:
        keras.models.clone_model = lambda m: threads.append(threading.current_thread().name) or clone(m)
        best.set_model(model)
        best.on_train_begin()
        writer.wait()
    finally:
        keras.models.clone_model = clone
    writer.close()
    assert best._twin is not None and threads == ["checkpoint-writer"]
    assert [what for what, _ in writer.written] == ["the model copy that saves the best weights"]
    assert os.listdir(tmp_path) == []


def test_the_clock_accounts_for_each_epoch_and_its_callbacks():
    import time

    import keras

    from tools.training.clock import EpochClock
    from tools.training.state import RunState

    class Slow(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(0.05)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    state = RunState()
    clock = EpochClock(state, "scratch", images_per_epoch=16)
    x, y = np.zeros((16, 4)), np.zeros((16, 2))
    model.fit(x, y, batch_size=4, epochs=3, verbose=0, validation_data=(x, y),
              callbacks=clock.around([("slow", Slow())]))
    assert [(e.phase, e.epoch, e.compiled) for e in state.epochs] == [("scratch", 1, True), ("scratch", 2, False),
                                                                      ("scratch", 3, False)]
    for e in state.epochs:
        assert e.images == 16 and e.steps > 0 and e.validation > 0 and e.data >= 0
        assert 0.05 <= e.callbacks["slow"] < e.wall and e.other >= 0, e
    whole, steps = state.rates()
    assert 0 < whole < steps  # whole epochs (validation, the slow callback) are slower than the steps alone
    assert whole == pytest.approx(32 / sum(e.wall for e in state.epochs[1:]))
