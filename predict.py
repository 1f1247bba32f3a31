"""Classify photos: files, folders (recursive) and http(s) URLs; an interactive prompt with no argument.

    python predict.py photo.jpg
    python predict.py photos/ --csv results.csv
    python predict.py https://example.com/can.jpg --json
    python predict.py                       # asks 请输入图片的绝对路径或 URL: until EOF (Ctrl-D)
    python predict.py photo.jpg --model https://example.com/models/v3/best.h5 --model_sha256 HEX

--model also takes the URL of a published best.h5 (or .tflite) with labels.json beside it: both are
fetched once into the Keras cache (tools/model_source.py) and used from there, offline too.

Each photo is judged on deterministic crops (--crops 1/5/10) in one batched model call. A failed
input prints one line naming it and the reason; the others still run; the exit code is 1 if any
failed (2 if the model cannot be loaded).
"""

import argparse
import csv
import os
import sys

from tools.batch_predict import CSV_COLUMNS, DEFAULT_BATCH_SIZE, expand, run
from tools.contract import CROP_CHOICES, DEFAULT_CROPS, DEFAULT_MODEL, ModelFilesError
from tools.fetch import DEFAULT_DEADLINE, DEFAULT_MAX_BYTES
from tools.images import MAX_PIXELS
from tools.calibration import THRESHOLD_HELP
from tools.inference import DEFAULT_TOP_K, Classifier
from tools.model_source import add_model_arguments, resolve_model
from tools.quiet import import_keras_quietly

PROMPT = "请输入图片的绝对路径或 URL: "


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="image files, folders or http(s) URLs")
    add_model_arguments(p, DEFAULT_MODEL)
    p.add_argument("--crops", type=int, choices=CROP_CHOICES, default=DEFAULT_CROPS,
                   help="centre / +4 corners / +mirrors, averaged (default: %(default)s)")
    p.add_argument("--top_k", type=int, default=DEFAULT_TOP_K, help="alternatives shown (default: %(default)s)")
    p.add_argument("--threshold", type=float, default=None, help=THRESHOLD_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object per input")
    p.add_argument("--csv", metavar="OUT", help="also write one row per input to this CSV file")
    p.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE,
                   help="photos per model call for folders (default: %(default)s)")
    p.add_argument("--max_mb", type=float, default=DEFAULT_MAX_BYTES // (1024 * 1024),
                   help="size cap for URL downloads (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=DEFAULT_DEADLINE,
                   help="seconds one URL may take in all: connecting, waiting and downloading (default: %(default)s)")
    p.add_argument("--max_mpx", type=float, default=MAX_PIXELS / 1e6,
                   help="largest photo in megapixels decoded; larger ones are refused before decoding "
                        "(default: %(default)s)")
    return p


def main(args):
    if args.top_k < 1 or args.batch_size < 1:
        print("error: --top_k and --batch_size must be >= 1", file=sys.stderr)
        return 2
    if args.timeout <= 0 or args.max_mb <= 0 or args.max_mpx <= 0:
        print("error: --timeout, --max_mb and --max_mpx must be > 0", file=sys.stderr)
        return 2
    try:
        model_path = resolve_model(args.model, args.model_sha256)
        if os.path.isfile(model_path):  # else Classifier says so at once, before Keras' slow import
            import_keras_quietly()
        clf = Classifier(model_path, crops=args.crops, top_k=args.top_k, unsure_threshold=args.threshold,
                         max_pixels=int(args.max_mpx * 1e6))
    except ModelFilesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    options = dict(batch_size=args.batch_size, as_json=args.json, max_bytes=int(args.max_mb * 1024 * 1024),
                   deadline=args.timeout)
    csv_file = open(args.csv, "w", newline="", encoding="utf-8") if args.csv else None
    writer = csv.writer(csv_file) if csv_file else None
    if writer:
        writer.writerow(CSV_COLUMNS)
    failed = 0
    try:
        if args.inputs:
            failed = run(clf, expand(args.inputs), writer=writer, **options)
        else:
            while True:
                try:
                    line = input(PROMPT).strip()
                except EOFError:
                    print()
                    break
                if line:
                    failed += run(clf, expand([line]), writer=writer, **options)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if csv_file:
            csv_file.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
