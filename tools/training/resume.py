"""Resuming a phase after a kill at any instant: one owner, `PhaseBackup`, for what a rerun restores and
what each epoch saves (as Keras' BackupAndRestore keeps both in one callback).

What is saved: after every epoch a snapshot of every model and optimizer variable is taken in memory
(tools/training/checkpoints.py: fast, no file); it is written to disk by the background writer when
--backup_every seconds have passed since the last backup, and at once on SIGTERM or Ctrl-C
(tools/training/interrupts.py), so a polite stop loses only the epoch under way and a SIGKILL at most
--backup_every seconds plus that epoch. A phase's end needs no backup: state.json records the phase as
done (tools/training/phases.py), with best.h5 and the phase's last weights on disk, and the backups go. Each backup is a new file
(`epoch-NNNN.npz`) written under a temporary name, fsynced and renamed; the metadata that names it
(epoch, the RunState as of that epoch, the EarlyStopping/ReduceLROnPlateau counters) is written the
same way and only afterwards, and the backup before it is kept as a fallback.

Why not keras.callbacks.BackupAndRestore: it rewrites `latest.weights.h5` in place, on the training
thread, every epoch: a SIGKILL during that write leaves a file h5py cannot open, and on an accelerator
the write costs more than the epoch.

What is restored (`PhaseBackup.restore`): the newest backup that loads (each one that does not is
reported in one line; with none the phase starts over), the RunState saved with it, the callbacks'
counters (when training begins, after they reset themselves), the random generators' states (they are
variables in the file; a phase starting afresh takes them from the phase before, as an uninterrupted
run does), the history rows of the epochs that will run again (cut), and the epoch to start from.
With fit(shuffle=False) (the loader shuffles by epoch) a resumed run repeats the uninterrupted one's
history exactly; tests/test_resume.py checks it. Backups of the version before (`epoch-NNNN.weights.h5`,
`model.save_weights` + generator states in the metadata) still restore.
"""

import glob
import json
import logging
import os
import time

import keras
import numpy as np

from models.saving import TEMP_GLOB
from tools.files import TMP, first_line, remove_files, write_json_atomic
from tools.training.checkpoints import BACKUP, assign, read_variables, snapshot, training_variables, write_variables
from tools.training.interrupts import Interrupted
from tools.training.state import RunState

log = logging.getLogger(__name__)

METADATA = "training_metadata.json"
COUNTERS = {"EarlyStopping": ("wait", "best", "best_epoch", "stopped_epoch"),
            "ReduceLROnPlateau": ("wait", "best", "cooldown_counter")}


def seed_states(model):
    """{variable path: state} of the model's random generators (for state.json between phases)."""
    return {v.path: keras.ops.convert_to_numpy(v).tolist() for v in model.variables
            if v.path.endswith("seed_generator_state")}


def set_seed_states(model, states):
    for v in model.variables:
        if v.path in states:
            v.assign(np.asarray(states[v.path], dtype=keras.backend.standardize_dtype(v.dtype)))


def remove_stale_temp_files(output_dir):
    """Delete the temporary files a killed run left in `output_dir` (best.h5's, the backups'); returns them."""
    patterns = (os.path.join(output_dir, TEMP_GLOB), os.path.join(output_dir, f"*{TMP}*"),
                os.path.join(output_dir, ".backup", f"*{TMP}*"), os.path.join(output_dir, ".backup", "*", f"*{TMP}*"))
    return remove_files(sorted({p for pattern in patterns for p in glob.glob(pattern)}))


def drop_history_rows(path, first_epoch):
    """Cut the CSVLogger file `path` before its first row of an epoch >= `first_epoch` (those epochs
    run again) or its first incomplete row; with no row left, empty it so the header is rewritten.
    One truncate, so a kill here leaves either the old file or the cut one."""
    try:
        with open(path, "r+b") as f:
            lines = f.read().splitlines(keepends=True)
            keep = len(lines[0]) if lines and lines[0].endswith(b"\n") else 0
            kept_rows = 0
            for line in lines[1:] if keep else ():
                try:
                    if not line.endswith(b"\n") or int(line.split(b",", 1)[0]) >= first_epoch:
                        break
                except ValueError:
                    break
                keep += len(line)
                kept_rows += 1
            f.truncate(keep if kept_rows else 0)
    except FileNotFoundError:
        pass


def _reason(error):
    text = f"{type(error).__name__}: {first_line(error)}" if str(error).strip() else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class PhaseBackup(keras.callbacks.Callback):
    """The epoch backups of one phase in `folder`: `restore()` before fit, then as a callback (put it
    last, so an epoch counts as done only once every other callback has finished with it) the snapshot
    after each epoch, written every `every` seconds (0: every epoch) by `writer`, and on a signal
    recorded by `signals` (tools.training.interrupts.Signals: `save_latest` then, by the caller).

    `state` (a RunState) is saved with each backup and set back by restore; the `counters` callbacks
    (EarlyStopping, ReduceLROnPlateau) have their counters saved and set back when training begins.
    """

    def __init__(self, folder, trainer, state, writer, counters=(), every=0.0, history=None, signals=None,
                 clock=time.monotonic, collective=None, chief=True):
        super().__init__()
        # --strategy multiworker: the chief alone keeps backups; it hands what it restored to the other workers,
        # and all stop together at an epoch's end when any was signalled (multiworker.Collective)
        self.collective, self.chief = collective, chief
        self.folder, self.trainer, self.state, self.writer = folder, trainer, state, writer
        self.counters, self.every, self.history, self.signals = list(counters), float(every), history, signals
        self.clock = clock
        self.restored = None  # the metadata restore() loaded
        self.on_disk = None  # metadata of the newest backup written (set by the writer thread)
        self.queued = 0  # the newest epoch handed to the writer
        self.latest = None  # (entry, variable names, snapshot) of the newest finished epoch, in memory
        self.last_write = clock()

    # ------------------------------------------------------------------ restore
    def restore(self, initial_epoch, epochs, name):
        """Load the newest readable backup into the trainer; returns the epoch to start from (>= epochs, or
        `self.stopped`, when the phase had ended in an earlier run)."""
        optimizer = self.trainer.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.trainer.trainable_variables)  # its variables must exist to be loaded into
        keyed = training_variables(self.trainer)
        meta, values = self._load_newest(keyed) if self.chief else (None, None)
        if self.collective is not None:  # the other workers keep no backup: they take the chief's
            meta = self.collective.chief_json(meta)
        if meta is not None:
            assign([v for _, v in keyed], values, self.collective)
        start = initial_epoch
        if meta is None and self.state.seeds:
            # a phase starting afresh goes on from the generators' states the phase before ended with, as it
            # does in an uninterrupted run (a no-op there); a rerun after a kill between phases needs it
            set_seed_states(self.trainer, self.state.seeds)
        if meta is not None:
            self.state.__dict__.update(RunState.from_json(meta.get("state")).__dict__)
            start = max(initial_epoch, int(meta["epoch"]))
            if meta.get("stopped") or start >= epochs:
                log.info("%s ended after epoch %d in an earlier run (backup in %s)", name, start, self.folder)
            else:
                log.info("resuming %s from epoch %d (backup in %s)", name, start + 1, self.folder)
        self.restored = meta
        self.on_disk = {k: v for k, v in meta.items() if k != "previous"} if meta else None
        self.queued = int(meta["epoch"]) if meta else 0
        if self.history and self.chief:
            drop_history_rows(self.history, start)  # epochs from `start` on run (again)
        return start

    @property
    def stopped(self):
        return bool((self.restored or {}).get("stopped"))

    def _load_newest(self, keyed):
        """(metadata, values for `keyed`) of the newest backup that reads, or (None, None). Nothing is assigned
        for an .npz backup; a backup of the version before (.weights.h5) is loaded into the trainer (values
        then read back from it)."""
        meta_path = os.path.join(self.folder, METADATA)
        if not os.path.exists(meta_path):
            return None, None
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            entries = [meta] + ([meta["previous"]] if meta.get("previous") else [])
            for entry in entries:
                int(entry["epoch"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("warning: backup metadata %s is unreadable (%s); starting the phase over", meta_path, _reason(e))
            return None, None
        variables = [v for _, v in keyed]
        for i, entry in enumerate(entries):
            # "weights" is absent in the metadata Keras' BackupAndRestore wrote (two versions back)
            entry = dict(entry, weights=entry.get("weights", "latest.weights.h5"))
            path = os.path.join(self.folder, entry["weights"])
            before = None
            try:
                size = os.path.getsize(path)
                if entry.get("bytes") not in (None, size):
                    raise OSError(f"{size} bytes, {entry['bytes']} were written")
                if path.endswith(".npz"):
                    return entry, read_variables(path, keyed)
                # a backup of the version before: model.save_weights + generator states beside it
                before = [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
                self.trainer.load_weights(path)
                set_seed_states(self.trainer, entry.get("seeds", {}))
                return entry, [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
            except Exception as e:  # any failure to load means: use the next backup, or none
                if before is not None:  # a load that failed half-way may have set some variables
                    for v, value in zip(variables, before):
                        v.assign(value)
                then = (f"trying the one before it (epoch {entries[i + 1]['epoch']})" if i + 1 < len(entries)
                        else "starting the phase over")
                log.warning("warning: backup %s is unreadable (%s); %s", path, _reason(e), then)
        return None, None

    # ------------------------------------------------------------------ save
    def on_train_begin(self, logs=None):
        saved = (self.restored or {}).get("callbacks", [])
        for callback, values in zip(self.counters, saved):
            if values.get("class") == type(callback).__name__:
                for key in COUNTERS.get(values["class"], ()):
                    if key in values:
                        setattr(callback, key, values[key])
        self.last_write = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        if self.signals is not None and self.collective is None:
            self.signals.check()

    def on_test_batch_end(self, batch, logs=None):
        if self.signals is not None and self.collective is None:
            self.signals.check()

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1, "weights": f"epoch-{epoch + 1:04d}.npz",
                 "stopped": bool(self.model.stop_training), "state": self.state.to_json(),
                 "callbacks": [{"class": type(c).__name__,
                                **{k: getattr(c, k, None) for k in COUNTERS.get(type(c).__name__, ())}}
                               for c in self.counters]}
        if self.chief:
            keyed = training_variables(self.trainer)
            self.latest = (entry, [k for k, _ in keyed], snapshot([v for _, v in keyed]))
            if self.every <= 0 or self.clock() - self.last_write >= self.every:
                self.save_latest()
        if self.signals is None:
            return
        if self.collective is None:
            self.signals.check()
        elif self.collective.any(self.signals.received is not None):  # every worker stops after this epoch
            raise Interrupted(self.signals.received)

    def on_train_end(self, logs=None):
        """Training's end: wait for best.h5 and any backup under way (the phase's end is then recorded as done)."""
        self.writer.wait()

    def save_latest(self, wait=False):
        """Queue the newest finished epoch for writing, unless it is queued or on disk already; with `wait`,
        return once it (and best.h5) is written. Returns the newest epoch on disk, or None."""
        if self.latest is not None and self.latest[0]["epoch"] > self.queued:
            entry, names, values = self.latest
            self.writer.submit(BACKUP, lambda: self._write(entry, names, values),
                               f"the backup of epoch {entry['epoch']}")
            self.queued, self.last_write = entry["epoch"], self.clock()
        if wait:
            self.writer.wait()
        return self.on_disk["epoch"] if self.on_disk else None

    def _write(self, entry, names, values):
        """In the writer thread: the variables' file, then the metadata naming it (and the backup before
        it, the fallback), then older files go."""
        path = os.path.join(self.folder, entry["weights"])
        entry = dict(entry, bytes=write_variables(path, names, values))
        previous = self.on_disk if self.on_disk and self.on_disk["weights"] != entry["weights"] else None
        write_json_atomic(os.path.join(self.folder, METADATA), dict(entry, previous=previous))
        self.on_disk = entry
        keep = {entry["weights"], previous["weights"] if previous else None}
        for old in glob.glob(os.path.join(self.folder, "epoch-*")):
            if os.path.basename(old) not in keep and TMP not in os.path.basename(old):
                os.remove(old)
