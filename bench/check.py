"""How fast is `python sample.py --check`? Seconds per 1,000 images on this machine.

    python bench/check.py                  # the shared TrashNet copy + 200 generated 3000x4000 phone photos

The check hashes every file (sha256) and decodes every image fully (JPEGs at reduced scale), so its
time grows with file sizes: TrashNet's 256x192 JPEGs are small, the Huawei photos are mostly
phone-sized, hence the second, generated set. Baseline in the same run: reading the same bytes
(hash only, no decode), the least any check of every file can do.
"""

import argparse
import hashlib
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from support.datagen import make_big_jpegs  # noqa: E402
from support.trashnet import TRASHNET  # noqa: E402
from tools.data.check import check  # noqa: E402



def read_only(folder):
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "rb") as f:
            hashlib.sha256(f.read()).hexdigest()


def measure(folder, out):
    t = time.perf_counter()
    read_only(folder)
    base = time.perf_counter() - t
    t = time.perf_counter()
    report = check(folder, out_dir=out, progress=False)
    return report["images"], time.perf_counter() - t, base


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--big", type=int, default=200, help="generated 3000x4000 photos (default: %(default)s)")
    args = p.parse_args(argv)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if os.path.isdir(TRASHNET):
            rows.append(("TrashNet 256x192", *measure(TRASHNET, os.path.join(tmp, "o1"))))
        big = os.path.join(tmp, "big", "train_data_v2")
        os.makedirs(big)
        paths = make_big_jpegs(big, args.big)
        with open(os.path.join(tmp, "big", "garbage_classify_rule.json"), "w") as f:
            f.write('{"0": "可回收物/a", "1": "其他垃圾/b"}')
        for i, path in enumerate(paths):
            with open(os.path.splitext(path)[0] + ".txt", "w") as f:
                f.write(f"{os.path.basename(path)}, {i % 2}")
        rows.append(("generated 3000x4000 JPEG", *measure(big, os.path.join(tmp, "o2"))))
    print(f"\n{'data':<26} {'images':>7} {'check s':>8} {'s/1000':>7} {'read+hash s':>12}")
    for name, n, secs, base in rows:
        print(f"{name:<26} {n:>7} {secs:>8.1f} {secs / n * 1000:>7.1f} {base:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
