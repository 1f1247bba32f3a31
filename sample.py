"""Copy a reproducible random sample of a labelled image folder, e.g. 3,000 of the ~15,000 Huawei images;
also download the Huawei data set and check a data folder.

    python sample.py garbage_classify_v2/train_data_v2 garbage_small/train_data_v2 3000 --stratified
    python sample.py --download [--url URL] [--dest ./garbage_classify_v2] [--sha256 HASH]
    python sample.py --check garbage_classify_v2/train_data_v2 [--out data_check/garbage_classify_v2]

Each image travels with its label file (garbage_classify_v2 layout) or keeps its class folder
(class-per-folder layout); the rule file is copied along. Files are hard-linked where the file
system allows (no extra disk space), else copied. The same --seed picks the same files.
"""

import argparse
import os
import sys

import numpy as np
from tqdm import tqdm

from tools.data.check import CHECK_ROOT, check, default_out_dir
from tools.data.download import HUAWEI_URL, copy_rule_file, download, link_or_copy
from tools.data import DataError
from tools.data.layout import load_dataset
from tools.data.split import stratified_split
from tools.errors import UsageError, guarded
from tools.quiet import import_keras_quietly


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", nargs="?", help="labelled folder: img_N.jpg + img_N.txt, or one sub-folder per class")
    p.add_argument("dst", nargs="?", help="folder to create (must not hold images already)")
    p.add_argument("n", nargs="?", type=int, help="number of images to copy")
    p.add_argument("--seed", type=int, default=233, help="picks the sample (default: %(default)s)")
    p.add_argument("--stratified", action="store_true", help="keep each class's share of the images")
    p.add_argument("--copy", action="store_true", help="always copy, never hard-link")
    g = p.add_argument_group("getting and checking the data")
    g.add_argument("--download", action="store_true",
                   help="fetch the garbage_classify_v2 zip through the Keras cache and unpack it into --dest")
    g.add_argument("--url", default=None, help="zip to fetch (default: the competition's published URL)")
    g.add_argument("--dest", default="./garbage_classify_v2", help="where train_data_v2/ goes (default: %(default)s)")
    g.add_argument("--sha256", default=None, help="expected hash of the zip (checked after the download)")
    g.add_argument("--check", metavar="DIR", help="check a labelled folder; exit 1 on errors")
    g.add_argument("--rule_file", default=None, help="with --check: rule file (default: in or beside DIR)")
    g.add_argument("--out", default=None, help="with --check: where the manifest, report and chart go (default: "
                                                "a folder named after DIR in ./" + CHECK_ROOT + ")")
    return p


def run_download(args):
    url = args.url or HUAWEI_URL
    import_keras_quietly()  # the download goes through keras.utils.get_file
    folder, placed = download(url, args.dest, file_hash=args.sha256)  # DownloadError: exit 1
    print(f"{placed} files placed in {folder}; check them with: python sample.py --check {folder}")
    return 0


def run_check(args):
    report = check(args.check, args.rule_file, args.out)  # DataError: exit 2
    for line in report["warnings"]:
        print(f"warning: {line}")
    for line in report["errors"]:
        print(f"error: {line}")
    out = args.out or default_out_dir(args.check)
    print(f"{report['images']} images, {report['classes']} classes ({report['layout']} layout): "
          f"{len(report['errors'])} errors, {len(report['warnings'])} warnings; manifest sha256 "
          f"{report['manifest_sha256'][:16]}; report, manifest.csv and class_counts.png in {out}")
    return 1 if report["errors"] else 0


def pick(labels, n, seed, stratified):
    """Indices of the sample, sorted."""
    total = len(labels)
    if not stratified:
        return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    if n == total:
        return np.arange(total)
    _, chosen = stratified_split(labels, n / total, seed)
    rng = np.random.default_rng(seed)
    if len(chosen) > n:  # rounding per class can overshoot by a few: drop at random
        chosen = np.sort(rng.choice(chosen, size=n, replace=False))
    elif len(chosen) < n:
        rest = np.setdiff1d(np.arange(total), chosen)
        chosen = np.sort(np.concatenate([chosen, rng.choice(rest, size=n - len(chosen), replace=False)]))
    return chosen


@guarded
def main(args):
    if args.download or args.check:
        if args.download and args.check:
            raise UsageError("--download and --check are separate steps; run one, then the other")
        return run_download(args) if args.download else run_check(args)
    if args.src is None or args.dst is None or args.n is None:
        raise UsageError("give SRC DST N to sample, or --download, or --check DIR (see --help)")
    try:
        if args.n < 1:
            raise DataError(f"N must be >= 1, got {args.n}")
        if os.path.abspath(args.src) == os.path.abspath(args.dst):
            raise DataError("SRC and DST are the same folder")
        ds = load_dataset(args.src)
        if args.n > len(ds.paths):
            raise DataError(f"asked for {args.n} images but {args.src} has only {len(ds.paths)} usable ones")
        if os.path.isdir(args.dst) and any(os.scandir(args.dst)):
            raise DataError(f"{args.dst} is not empty; choose a new folder")
    except OSError as e:  # a folder that cannot be read (DataError: the guard's)
        raise UsageError(str(e)) from None
    chosen = pick(ds.labels, args.n, args.seed, args.stratified)
    os.makedirs(args.dst, exist_ok=True)
    linked = 0
    for i in tqdm(chosen, desc="sampling", unit="img", disable=None):
        path = ds.paths[i]
        if ds.layout == "txt":
            target = os.path.join(args.dst, os.path.basename(path))
            linked += link_or_copy(path, target, not args.copy)
            txt = os.path.splitext(path)[0] + ".txt"
            link_or_copy(txt, os.path.splitext(target)[0] + ".txt", not args.copy)
        else:
            rel = os.path.relpath(path, args.src)
            linked += link_or_copy(path, os.path.join(args.dst, rel), not args.copy)
    copy_rule_file(args.src, args.dst)
    counts = np.bincount(ds.labels[chosen], minlength=len(ds.class_names))
    print(f"{len(chosen)} of {len(ds.paths)} images -> {args.dst} ({linked} hard-linked, "
          f"{len(chosen) - linked} copied); per class: {counts.tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
