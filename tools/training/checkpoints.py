"""Saving without stalling training: a snapshot of the variables on the training thread (a copy in
memory, fast), the file written, fsynced and renamed by one background thread.

Why: an epoch backup (model + AdamW state, 314 MB for ResNet50 whatever the input size) and best.h5
(105 MB) written on the training thread cost 1-2 s per epoch on a 2-core CPU; on an accelerator, where a
TrashNet epoch is ~0.5 s of steps, they would be most of the epoch. Here the training thread only
copies the variables (`snapshot`: on TensorFlow a read that shares the buffers until the next update
writes them; on JAX a device copy, since the next step donates the arrays) and goes on; the
`BackgroundWriter` turns the copies into files. It runs one job at a time (never two writes at once),
keeps the newest pending job of each kind (an older one not yet started is dropped: the newer
supersedes it) and runs best.h5 jobs before backups, so a backup on disk never records a best value
whose best.h5 is not on disk yet. `wait()` drains it: at a phase's end, on SIGTERM, before the outputs.

Why not keras.callbacks.OrbaxCheckpoint (Keras >= 3.14, asynchronous, atomic): it needs the
orbax-checkpoint package and JAX, and the lean install (TensorFlow alone) must keep saving.

Backup files are `.npz` (numpy's own format, numpy.savez): every model and optimizer variable under its
Keras path (`conv1_conv/kernel`, the random generators' `.../seed_generator_state`,
`optimizer/conv1_conv_kernel_momentum`), so restoring needs no model call and checks each shape.
"""

import logging
import os
import threading
import time

import keras
import numpy as np

from models.saving import save_model_atomic
from tools.files import TMP, atomic_path, first_line

log = logging.getLogger(__name__)

BEST, BACKUP = "best", "backup"  # job kinds, in the order the writer runs them


def training_variables(model):
    """[(key, variable)] of every variable a backup holds: the model's (weights, BatchNorm statistics,
    generator states) under their Keras paths, and its optimizer's (step count, learning rate, moments) under
    "optimizer/<name>": the optimizer's own name is numbered by how many were made before it in the process
    ("adam", "adam_1"), which differs between a run and its rerun."""
    found, seen = [], set()
    for v in model.variables:
        if id(v) not in seen:
            seen.add(id(v))
            found.append((v.path, v))
    optimizer = model.optimizer
    for v in optimizer.variables if optimizer is not None else ():
        if id(v) not in seen:
            seen.add(id(v))
            found.append(("optimizer/" + v.path.split("/", 1)[-1], v))
    return found


def snapshot(variables):
    """Copies of the variables' current values that later training steps do not change (fast: no file, and
    on an accelerator no transfer to the host)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # the TensorFlow backend's own variable read

        # one read op per variable: the tensor shares the variable's buffer, and TensorFlow copies that buffer
        # before an update writes it while a read of it is alive. A tf.identity after the read (two ops per
        # variable) took 2.5-3x as long: 150-270 ms against 50-110 for the 781 variables of ResNet50 + AdamW
        return [tf.convert_to_tensor(v.value) for v in variables]
    if backend == "jax":
        import jax.numpy as jnp  # the JAX backend's own copy: the next train step donates (deletes) the arrays

        return [jnp.copy(v.value) for v in variables]
    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in variables]


def write_variables(path, names, values):
    """{name: value} as an .npz file at `path`, through a temporary file (atomic_path); returns its size."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, os.path.basename(path).replace(".npz", f"{TMP}{os.getpid()}.npz"))
    with atomic_path(path, tmp) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{name: np.asarray(value) for name, value in zip(names, values)})
    return os.path.getsize(path)


def read_variables(path, keyed):
    """The values for `keyed` ([(key, variable)], training_variables) in the .npz at `path` (written by
    write_variables), in that order; nothing is assigned.

    Raises ValueError naming what does not fit (a missing variable, another shape); OSError/zip errors for
    a file that does not open.
    """
    with np.load(path, allow_pickle=False) as stored:
        missing = [k for k, _ in keyed if k not in stored.files]
        if missing:
            raise ValueError(f"{len(missing)} variable(s) not in the backup, e.g. {missing[0]}")
        values = [stored[k] for k, _ in keyed]
    wrong = [(k, a.shape, tuple(v.shape)) for (k, v), a in zip(keyed, values) if a.shape != tuple(v.shape)]
    if wrong:
        raise ValueError(f"{wrong[0][0]} has shape {wrong[0][1]} in the backup, {wrong[0][2]} in the model")
    return values


def assign(variables, values, collective=None):
    """Set `variables` to `values`; with a `collective` (several workers) to the chief's values, on every
    worker (the others' `values` are ignored: None does). Every worker assigns: under JAX an assignment to
    a variable that spans processes is itself collective."""
    if collective is not None:
        values = collective.chief_values(values if collective.chief else zeros_like(variables))
    for v, value in zip(variables, values):
        v.assign(value)


def zeros_like(variables):
    """Zeros of each variable's shape and dtype as the backend holds it: what a worker that is not the chief
    puts into a collective whose values only the chief's count."""
    return [np.zeros_like(np.asarray(keras.ops.convert_to_numpy(v))) for v in variables]


class BackgroundWriter:
    """One thread that writes snapshots to files, newest job per kind, best.h5 before backups.

    `submit(kind, job, what)` queues `job()` (a function doing the write) under `kind` ("best" or
    "backup"), replacing a job of that kind not yet started; `wait()` returns once nothing is pending
    or running; `close()` waits, then ends the thread. A job that raises is reported in one warning and
    training goes on. `written` lists (what, seconds) of each finished job.
    """

    def __init__(self, warn=log.warning):
        self.warn = warn
        self._pending = {}
        self._running = None
        self._cond = threading.Condition()
        self._closed = False
        self._thread = None
        self.written = []

    def _start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="checkpoint-writer", daemon=True)
            self._thread.start()

    def submit(self, kind, job, what):
        if kind not in (BEST, BACKUP):
            raise ValueError(f"`kind` must be {BEST!r} or {BACKUP!r}. Received: kind={kind!r}")
        with self._cond:
            if self._closed:
                raise RuntimeError("the checkpoint writer is closed")
            self._pending[kind] = (job, what)
            self._start()
            self._cond.notify_all()

    def _loop(self):
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                kind = BEST if BEST in self._pending else BACKUP
                job, what = self._pending.pop(kind)
                self._running = what
            t0 = time.perf_counter()
            try:
                job()
                self.written.append((what, time.perf_counter() - t0))
            except Exception as e:  # a full disk, a permission: say it, keep training
                self.warn(f"warning: could not write {what} ({type(e).__name__}: {first_line(e)}); "
                          "training goes on")
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    def busy(self):
        with self._cond:
            return bool(self._pending) or self._running is not None

    def wait(self):
        with self._cond:
            while self._pending or self._running is not None:
                self._cond.wait()

    def close(self):
        self.wait()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()


class BestModel(keras.callbacks.Callback):
    """ModelCheckpoint(save_best_only) for inference files: when `monitor` improves on the best value the
    run has seen (kept in `state` across phases and restarts), the classifier's weights are copied in
    memory and best.h5 (no optimizer state, the HDF5 file predict.py and server.py load) is written by
    `writer` in the background, atomically (tools/models/saving.save_model_atomic), from a twin of the
    classifier (`keras.models.clone_model`, made once a phase in the writer thread as training begins)
    that holds the copied weights. The phase's end waits for the writer: then best.h5 is exact. A write
    that fails (a full disk) is warned about by the writer, and the next epoch is compared with no best
    value, so that best.h5 is written again and the best value the backups record is never one that
    best.h5 lacks."""

    def __init__(self, path, monitor, state, phase, classifier, writer):
        super().__init__()
        self.path, self.monitor, self.state, self.phase = path, monitor, state, phase
        self.classifier, self.writer = classifier, writer
        self._twin = None
        self.failed = False  # set by the writer thread, read by the training thread

    def _make_twin(self):
        if self._twin is None:
            self._twin = keras.models.clone_model(self.classifier)

    def on_train_begin(self, logs=None):
        # the twin made while the first epoch compiles, not during the first steady one: for ResNet50 the clone
        # is ~3 s of Python in the writer thread, which held the GIL against the steps of epoch 2 (3.7 s
        # against 2.8 for the epochs after, 64 px). A best.h5 job submitted before it starts replaces it and
        # makes the twin itself.
        if self._twin is None:
            self.writer.submit(BEST, self._make_twin, "the model copy that saves the best weights")

    def _write(self, values):
        try:
            self._make_twin()
            self._twin.set_weights([np.asarray(v) for v in values])
            save_model_atomic(self._twin, self.path)
        except Exception:
            self.failed = True
            raise

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if self.failed:  # the last best.h5 did not reach the disk: the next good epoch writes it
            self.failed, self.state.best_value = False, None
        best = self.state.best_value
        if value is None or not np.isfinite(value) or (best is not None and value >= best):
            return
        values = snapshot(self.classifier.weights)
        self.writer.submit(BEST, lambda: self._write(values), os.path.basename(self.path))
        self.state.best_value, self.state.best_epoch = float(value), epoch + 1
        self.state.best_val_accuracy, self.state.best_phase = (logs or {}).get("val_accuracy"), self.phase
        log.info("epoch %d: %s improved to %.4f, saving %s", epoch + 1, self.monitor, value, self.path)
