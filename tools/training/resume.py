"""Epoch backups that let training resume after a kill at any instant, even one during a backup's write.

Why not keras.callbacks.BackupAndRestore: it rewrites `latest.weights.h5` in place, so a SIGKILL (OOM
killer, preemption, a second Ctrl-C) during that write leaves a file h5py cannot open, and every rerun
dies on it until the user deletes the backup by hand. Here each epoch's backup is a new file
(epoch-NNNN.weights.h5), written under a temporary name, flushed and renamed into place; the metadata
that names it (epoch, the caller's resume state, EarlyStopping/ReduceLROnPlateau counters) is written
the same way and only afterwards, and the backup before it is kept as a fallback. `restore` loads the
newest backup that loads, reports each one that does not in one line, and with none leaves the model
as it was (the phase starts over). A backup holds what BackupAndRestore's holds, `model.save_weights`:
the model's and the optimizer's variables, step count and learning rate included; and what that file
leaves out, the states of the model's random generators (Dropout's SeedGenerator), which the metadata
keeps: without them a resumed epoch draws other dropout masks than the uninterrupted run would.
With them (and fit(shuffle=False), phases.fit_phase) a resumed run repeats the uninterrupted one's
history exactly; tests/test_resume.py checks it.
"""

import glob
import json
import os

import keras
import numpy as np

from models.saving import TEMP_GLOB, remove_files, replace_atomic

METADATA = "training_metadata.json"
TMP = ".tmp-"  # in the name of every temporary file written here: `remove_stale_temp_files` finds them by it
COUNTERS = {"EarlyStopping": ("wait", "best", "best_epoch", "stopped_epoch"),
            "ReduceLROnPlateau": ("wait", "best", "cooldown_counter")}


def seed_states(model):
    """{variable path: state} of the model's random generators, which `model.save_weights` does not save."""
    return {v.path: keras.ops.convert_to_numpy(v).tolist() for v in model.variables
            if v.path.endswith("seed_generator_state")}


def set_seed_states(model, states):
    for v in model.variables:
        if v.path in states:
            v.assign(np.asarray(states[v.path], dtype=keras.backend.standardize_dtype(v.dtype)))


def write_json_atomic(path, obj):
    """Write `obj` as JSON to `path` through a temporary file + os.replace: never a half-written file."""
    tmp = f"{path}{TMP}{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, default=float)
        replace_atomic(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_weights_atomic(model, path):
    """model.save_weights (model + optimizer variables) to `path` (*.weights.h5) through a temporary file."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, name.replace(".weights.h5", f"{TMP}{os.getpid()}.weights.h5"))
    try:
        model.save_weights(tmp)
        replace_atomic(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stale_temp_files(output_dir):
    """Delete the temporary files a killed run left in `output_dir` (best.h5's, the backups'); returns them."""
    patterns = (os.path.join(output_dir, TEMP_GLOB), os.path.join(output_dir, ".backup", f"*{TMP}*"),
                os.path.join(output_dir, ".backup", "*", f"*{TMP}*"))
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
    text = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def restore(model, backup_dir, warn):
    """Load the newest readable backup in `backup_dir` into `model` (weights and optimizer state).

    Returns that backup's metadata (its "epoch" is the number of finished epochs), or None: no backup,
    or none readable, in which case the model keeps the variables it had. Each backup that cannot be
    used is reported by one call of `warn(line)`; nothing raises.
    """
    meta_path = os.path.join(backup_dir, METADATA)
    if not os.path.exists(meta_path):
        return None
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        entries = [meta] + ([meta["previous"]] if meta.get("previous") else [])
        for entry in entries:
            int(entry["epoch"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        warn(f"warning: backup metadata {meta_path} is unreadable ({_reason(e)}); starting the phase over")
        return None
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)  # its variables must exist to be loaded into
    variables = list({id(v): v for v in [*model.variables, *(optimizer.variables if optimizer else [])]}.values())
    snapshot = None
    for i, entry in enumerate(entries):
        # "weights" is absent in the metadata Keras' BackupAndRestore wrote (before this module)
        entry = dict(entry, weights=entry.get("weights", "latest.weights.h5"))
        path = os.path.join(backup_dir, entry["weights"])
        try:
            size = os.path.getsize(path)
            if entry.get("bytes") not in (None, size):
                raise OSError(f"{size} bytes, {entry['bytes']} were written")
            if snapshot is None:
                snapshot = [keras.ops.convert_to_numpy(v) for v in variables]
            model.load_weights(path)
            set_seed_states(model, entry.get("seeds", {}))
            return entry
        except Exception as e:  # any failure to load means: use the next backup, or none
            if snapshot is not None:  # a load that failed half-way may have set some variables
                for v, value in zip(variables, snapshot):
                    v.assign(value)
            then = (f"trying the one before it (epoch {entries[i + 1]['epoch']})" if i + 1 < len(entries)
                    else "starting the phase over")
            warn(f"warning: backup {path} is unreadable ({_reason(e)}); {then}")
    return None


class EpochBackup(keras.callbacks.Callback):
    """Backs up the training state at the end of every epoch into `backup_dir`, as `restore` reads it.

    Put it last among the callbacks: an epoch then counts as done (is not run again on resume) only
    once every other callback has finished with it. `state` (a JSON-able dict) is saved with each
    backup and returned by `restore`; the `counters` callbacks (EarlyStopping, ReduceLROnPlateau) have
    their counters saved, and set back from `restored` (the metadata `restore` returned) when training
    begins, after they have reset themselves.
    """

    def __init__(self, backup_dir, state=None, counters=(), restored=None):
        super().__init__()
        self.backup_dir = backup_dir
        self.state = state if state is not None else {}
        self.counters = list(counters)
        self.restored = restored
        self.last = {k: v for k, v in restored.items() if k != "previous"} if restored else None

    def on_train_begin(self, logs=None):
        saved = (self.restored or {}).get("callbacks", [])
        for callback, values in zip(self.counters, saved):
            if values.get("class") == type(callback).__name__:
                for key in COUNTERS.get(values["class"], ()):
                    if key in values:
                        setattr(callback, key, values[key])

    def on_epoch_end(self, epoch, logs=None):
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        path = os.path.join(self.backup_dir, name)
        save_weights_atomic(self.model, path)
        entry = {"epoch": epoch + 1, "weights": name, "bytes": os.path.getsize(path),
                 "stopped": bool(self.model.stop_training), "state": dict(self.state),
                 "seeds": seed_states(self.model),
                 "callbacks": [{"class": type(c).__name__,
                                **{k: getattr(c, k, None) for k in COUNTERS.get(type(c).__name__, ())}}
                               for c in self.counters]}
        previous = self.last if self.last and self.last["weights"] != name else None
        write_json_atomic(os.path.join(self.backup_dir, METADATA), dict(entry, previous=previous))
        self.last = entry
        keep = {name, previous["weights"] if previous else None}
        for old in glob.glob(os.path.join(self.backup_dir, "*.weights.h5")):
            if os.path.basename(old) not in keep and TMP not in os.path.basename(old):
                os.remove(old)
