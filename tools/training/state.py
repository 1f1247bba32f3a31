"""The run folder's bookkeeping: what a rerun of an interrupted train.py needs to continue, and history.csv.

OUTPUT_DIR/.backup holds state.json (written at each phase's end: which phases are done, best value
so far), one folder per unfinished phase with its epoch backups (tools/training/resume.py) and
phase1_end.weights.h5; OUTPUT_DIR/.history_<phase>.csv holds each phase's CSVLogger rows, merged
into history.csv at the end. Every file under .backup is replaced atomically, never rewritten.
"""

import csv
import json
import os
import shutil

from tools.training.resume import write_json_atomic

BACKUP = ".backup"


def backup_root(output_dir):
    return os.path.join(output_dir, BACKUP)


def state_path(output_dir):
    return os.path.join(output_dir, BACKUP, "state.json")


def backup_dir(output_dir, phase):
    return os.path.join(output_dir, BACKUP, phase)


def phase1_end_path(output_dir):
    """Phase 1's last weights, where phase 2 starts when phase 1 never saved a best.h5."""
    return os.path.join(output_dir, BACKUP, "phase1_end.weights.h5")


def history_path(output_dir, phase):
    return os.path.join(output_dir, f".history_{phase}.csv")


def load_state(output_dir):
    try:
        with open(state_path(output_dir)) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return {}


def save_state(output_dir, state):
    os.makedirs(os.path.dirname(state_path(output_dir)), exist_ok=True)
    write_json_atomic(state_path(output_dir), state)


def remove_backups(output_dir):
    """Delete .backup once the run is finished, state.json last: until then a rerun still sees the
    finished state and just writes the outputs again."""
    folder = backup_root(output_dir)
    for entry in os.scandir(folder) if os.path.isdir(folder) else ():
        if entry.is_dir():
            shutil.rmtree(entry.path, ignore_errors=True)
        elif entry.path != state_path(output_dir):
            os.remove(entry.path)
    shutil.rmtree(folder, ignore_errors=True)


def merge_histories(output_dir, phases):
    """history.csv from the per-phase CSVLogger files; a row repeated by a restart keeps its last copy."""
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
            writer.writerow(rows[epoch])
    return out
