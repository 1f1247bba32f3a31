"""Does calibration hold on photos it was not fitted on? train.py on part of the TrashNet copy (its
validation split fits the temperature and chooses the threshold), then train.py --test_only on other
TrashNet photos of the same classes: the expected calibration error before (temperature 1) and after,
and the share answered and their accuracy at the stored threshold, against --target_accuracy.

    python bench/calibration.py                        # as CI trains: 8 photos/class, 32 px, 1 epoch (~3 min)
    python bench/calibration.py --per_class 80 --test_per_class 0 --input_size 48 --epochs 12   # longer
    python bench/calibration.py --held_out_share 0.3 --input_size 48 --epochs 6     # 70 % of every class trains

The baseline is the same model without its temperature (ECE before), on the same held-out photos
in the same run.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from support.trashnet import TRASHNET  # noqa: E402
from tools.data.layout import load_dataset  # noqa: E402
from tools.data.rules import find_rule_file  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data_dir", default=TRASHNET, help="labelled photos (garbage_classify_v2 layout)")
    p.add_argument("--per_class", type=int, default=8, help="photos per class for train.py (training + validation)")
    p.add_argument("--test_per_class", type=int, default=50, help="other photos per class, held out; 0 = all the rest")
    p.add_argument("--held_out_share", type=float, default=0.0,
                   help="instead of --per_class/--test_per_class: hold out this share of every class, train on the rest")
    p.add_argument("--val_split", type=float, default=0.25, help="train.py --val_split: the photos T is fitted on")
    p.add_argument("--input_size", type=int, default=32, help="train.py --input_size")
    p.add_argument("--epochs", type=int, default=1, help="train.py --epochs")
    p.add_argument("--weights", default="none", help="train.py --weights")
    p.add_argument("--target_accuracy", type=float, default=0.9, help="train.py --target_accuracy")
    p.add_argument("--output_dir", default=None, help="where train.py writes (default: a temporary folder)")
    return p


def split(data_dir, per_class, test_per_class, dest, held_out_share=0.0):
    """Links to the first `per_class` photos of each class in dest/train/train_data_v2 and to the next
    `test_per_class` (0: all the rest) in dest/held_out/train_data_v2, rule file beside each; with
    `held_out_share`, the last share of each class is held out and the rest trains. The two folders."""
    ds = load_dataset(data_dir)
    if held_out_share:
        counts = np.bincount(ds.labels)
        per_class = {label: int(round(n * (1 - held_out_share))) for label, n in enumerate(counts)}
    else:
        per_class = dict.fromkeys(range(len(ds.class_names)), per_class)
    rule = find_rule_file(data_dir)
    folders = {}
    for part in ("train", "held_out"):
        folders[part] = os.path.join(dest, part, "train_data_v2")
        os.makedirs(folders[part])
        if rule:
            os.symlink(os.path.abspath(rule), os.path.join(dest, part, os.path.basename(rule)))
    seen = {}
    for path, label in zip(ds.paths, ds.labels):
        n = seen[label] = seen.get(label, 0) + 1
        part = "train" if n <= per_class[label] else "held_out"
        if part == "held_out" and test_per_class and not held_out_share and n > per_class[label] + test_per_class:
            continue
        for src in (path, os.path.splitext(path)[0] + ".txt"):
            os.symlink(os.path.abspath(src), os.path.join(folders[part], os.path.basename(src)))
    return folders["train"], folders["held_out"]


def _run(cmd):
    print("$ " + " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-3000:] + r.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"error: {cmd[1]} exited with {r.returncode}")
    return time.perf_counter() - start


def _line(name, report):
    c = report["calibration"]
    answered = "-" if c["accuracy_answered"] is None else f"{c['accuracy_answered']:.3f}"
    return (f"{name:<28} {report['images']:>6}  {report['top1']:>6.3f}  {c['ece_before']:>10.4f}  {c['ece_after']:>9.4f}"
            f"  {c['coverage']:>8.3f}  {answered:>8}")


def main(args):
    if not os.path.isdir(args.data_dir):
        print(f"error: no data at {args.data_dir} (the shared TrashNet copy, or pass --data_dir)", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="bench_calibration_")
    out = args.output_dir or os.path.join(tmp, "out")
    train_dir, held_out = split(args.data_dir, args.per_class, args.test_per_class, tmp, args.held_out_share)
    train = [sys.executable, "train.py", "--data_dir", train_dir, "--weights", args.weights, "--input_size",
             str(args.input_size), "--epochs", str(args.epochs), "--val_split", str(args.val_split),
             "--target_accuracy", str(args.target_accuracy), "--output_dir", out, "--no_resume"]
    seconds = _run(train)
    report_dir = os.path.join(out, "held_out")
    seconds += _run([sys.executable, "train.py", "--test_only", "--model", os.path.join(out, "best.h5"), "--data_dir",
                     held_out, "--report_dir", report_dir])
    reports = {}
    for name, folder in (("validation (T fitted here)", out), ("held out (not fitted on)", report_dir)):
        with open(os.path.join(folder, "report.json"), encoding="utf-8") as f:
            reports[name] = json.load(f)
    c = reports["validation (T fitted here)"]["calibration"]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; train.py and --test_only "
          f"ran {seconds / 60:.1f} min; temperature {c['temperature']:.3f}, threshold {c['threshold']:.3f} for "
          f"target accuracy {c['target_accuracy']}")
    print(f"{'photos':<28} {'images':>6}  {'top-1':>6}  {'ECE before':>10}  {'ECE after':>9}  {'coverage':>8}  "
          f"{'accuracy':>8}")
    for name, report in reports.items():
        print(_line(name, report))
    held = reports["held out (not fitted on)"]["calibration"]
    print(f"held out: ECE after / before = {held['ece_after'] / held['ece_before']:.2f} "
          f"({'lower' if held['ece_after'] < held['ece_before'] else 'NOT lower'} after calibration)")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
