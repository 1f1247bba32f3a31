"""The run folder's bookkeeping: the run's state (what a rerun needs to continue), where each file lives,
and history.csv.

OUTPUT_DIR/.backup holds state.json (the RunState, written at each phase's end: which phases are done,
the best value so far, the random generators' states, the epochs' clock), one folder per unfinished
phase with its epoch backups (tools/training/resume.py) and phase1_end.weights.h5;
OUTPUT_DIR/.history_<phase>.csv holds each phase's CSVLogger rows (Keras numbers epochs from 0
there), merged into history.csv (epochs from 1) at the end. OUTPUT_DIR/run.json is the finished
run's record: its settings and state; a rerun of a finished command reads it and says so.
Every file here is replaced atomically, never rewritten.
"""

import csv
import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field

from tools.files import write_json_atomic

BACKUP = ".backup"
RUN_RECORD = "run.json"


def backup_root(output_dir):
    return os.path.join(output_dir, BACKUP)


def state_path(output_dir):
    return os.path.join(output_dir, BACKUP, "state.json")


def backup_dir(output_dir, phase):
    return os.path.join(output_dir, BACKUP, phase)


def phase_end_path(output_dir, phase):
    """A phase's last weights, where the next phase starts when the phase never saved a best.h5."""
    return os.path.join(output_dir, BACKUP, f"{phase}_end.npz")


def history_path(output_dir, phase):
    return os.path.join(output_dir, f".history_{phase}.csv")


def run_record_path(output_dir):
    return os.path.join(output_dir, RUN_RECORD)


@dataclass
class EpochTime:
    """Where one epoch's wall time went, in seconds: waiting for batches (`data`), the training steps,
    validation, each epoch-end callback by name, and the rest (`wall` minus all of those)."""
    phase: str
    epoch: int  # 1-based, numbered on across phases
    images: int  # training images the steps processed
    wall: float
    data: float = 0.0
    steps: float = 0.0
    validation: float = 0.0
    callbacks: dict = field(default_factory=dict)
    compiled: bool = False  # the first epoch of a fit() call, which compiles the steps

    @property
    def other(self):
        return self.wall - self.data - self.steps - self.validation - sum(self.callbacks.values())


@dataclass
class RunState:
    """What a training run has done so far; saved with every epoch backup and in state.json."""
    phases_done: dict = field(default_factory=dict)  # phase name -> the epoch it ended at
    best_value: float = None
    best_epoch: int = None
    best_val_accuracy: float = None
    best_phase: str = None
    seeds: dict = field(default_factory=dict)  # random generators' states where the last phase ended
    epochs: list = field(default_factory=list)  # EpochTime of every epoch trained, in order
    finished: bool = False

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj):
        """From to_json's dict; also reads the state.json of the version before (free string keys)."""
        obj = dict(obj or {})
        if "phases_done" not in obj:  # older state.json: "<phase>_done": true, "<phase>_epochs": N
            obj["phases_done"] = {k[:-5]: int(obj.get(k[:-5] + "_epochs", 0)) for k, v in obj.items()
                                  if k.endswith("_done") and v}
        names = {f.name for f in dataclasses.fields(cls)}
        state = cls(**{k: v for k, v in obj.items() if k in names})
        state.epochs = [e if isinstance(e, EpochTime) else EpochTime(**e) for e in state.epochs]
        return state

    def steady(self):
        """The epochs that compiled nothing: the honest rate is theirs."""
        return [e for e in self.epochs if not e.compiled]

    def rates(self):
        """(images/s over whole epochs, images/s in their steps alone) of the steady epochs, or of all
        epochs when none is steady; (None, None) before any epoch."""
        epochs = self.steady() or self.epochs
        images, wall, steps = (sum(getattr(e, k) for e in epochs) for k in ("images", "wall", "steps"))
        return (images / wall if wall > 0 else None), (images / steps if steps > 0 else None)


def load_state(output_dir):
    try:
        with open(state_path(output_dir)) as f:
            return RunState.from_json(json.load(f))
    except (OSError, ValueError, TypeError):
        return RunState()


def save_state(output_dir, state):
    os.makedirs(os.path.dirname(state_path(output_dir)), exist_ok=True)
    write_json_atomic(state_path(output_dir), state.to_json())


def finished_run(output_dir):
    """The RunState of the finished run OUTPUT_DIR/run.json records, or None."""
    try:
        with open(run_record_path(output_dir), encoding="utf-8") as f:
            state = RunState.from_json(json.load(f)["state"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if state.finished else None


def finished_message(output_dir, state):
    acc = state.best_val_accuracy
    return (f"{output_dir} holds a finished run (best val_accuracy {acc if acc is None else f'{acc:.4f}'} at epoch "
            f"{state.best_epoch}; {run_record_path(output_dir)}): nothing to do. Rerun with --no_resume to train "
            "again from the start (its outputs are replaced), or choose another --output_dir")


def save_run_record(output_dir, config, state, writes=()):
    """run.json: the settings, the RunState and the background writes of this process ((what, seconds))."""
    record = {"config": dataclasses.asdict(config), "state": state.to_json(),
              "writes": [{"what": what, "seconds": seconds} for what, seconds in writes]}
    write_json_atomic(run_record_path(output_dir), record)


def remove_backups(output_dir):
    """Delete .backup once the run is finished (run.json says so), state.json last: until then a rerun
    still sees the finished state and just writes the outputs again."""
    folder = backup_root(output_dir)
    for entry in os.scandir(folder) if os.path.isdir(folder) else ():
        if entry.is_dir():
            shutil.rmtree(entry.path, ignore_errors=True)
        elif entry.path != state_path(output_dir):
            os.remove(entry.path)
    shutil.rmtree(folder, ignore_errors=True)


def merge_histories(output_dir, phases):
    """history.csv from the per-phase CSVLogger files, epochs numbered from 1; a row repeated by a restart
    keeps its last copy."""
    rows, fields = {}, ["epoch"]
    for phase in phases:
        path = history_path(output_dir, phase)
        if not os.path.exists(path):
            continue
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                rows[int(row["epoch"])] = row
                fields += [k for k in row if k not in fields]
    out = os.path.join(output_dir, "history.csv")
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for epoch in sorted(rows):
            writer.writerow(dict(rows[epoch], epoch=epoch + 1))
    return out
