"""Does training learn on real photos? train.py on the shared TrashNet copy, scored against always
answering the largest class (the baseline, measured on the same validation split in the same run).

    python bench/learning.py                            # from scratch, 48 px, 6 epochs (~25 min, 2 cores)
    python bench/learning.py --input_size 64 --epochs 12 --weights imagenet

This used to be a test; on a 2-core machine it took 20+ minutes, so it lives here and the tests
only check that real photos go through a whole run (tests/test_train.py).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from support.trashnet import TRASHNET  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data_dir", default=TRASHNET, help="labelled photos (garbage_classify_v2 layout)")
    p.add_argument("--input_size", type=int, default=48, help="square input side")
    p.add_argument("--epochs", type=int, default=6, help="training epochs")
    p.add_argument("--weights", default="none", help="train.py --weights")
    p.add_argument("--output_dir", default=None, help="where train.py writes (default: a temporary folder)")
    return p


def main(args):
    if not os.path.isdir(args.data_dir):
        print(f"error: no data at {args.data_dir} (the shared TrashNet copy, or pass --data_dir)", file=sys.stderr)
        return 2
    out = args.output_dir or tempfile.mkdtemp(prefix="bench_learning_")
    cmd = [sys.executable, "train.py", "--data_dir", args.data_dir, "--weights", args.weights, "--input_size",
           str(args.input_size), "--epochs", str(args.epochs), "--output_dir", out, "--no_resume"]
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT)
    seconds = time.perf_counter() - start
    if r.returncode != 0:
        print(f"error: train.py exited with {r.returncode}", file=sys.stderr)
        return 1
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    support = [c["support"] for c in report["per_class"]]
    majority = max(support) / sum(support)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"command: {' '.join(cmd[1:])}")
    print(f"train.py ran {seconds / 60:.1f} min; validation: {sum(support)} photos")
    print(f"top-1 {report['top1']:.3f} vs largest class {majority:.3f}: {report['top1'] / majority:.2f}x the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
