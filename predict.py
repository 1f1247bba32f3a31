"""Classify photos: files, folders (recursive), file:// and http(s) URLs; an interactive prompt with no argument.

    python predict.py photo.jpg
    python predict.py photos/ --csv results.csv --lang en
    python predict.py https://example.com/can.jpg --json
    python predict.py                       # asks 请输入图片的绝对路径或 URL: until EOF (Ctrl-D)
    python predict.py photo.jpg --model output     # the folder train.py names: output/best.h5
    python predict.py photo.jpg --model https://example.com/models/v3/best.h5 --model_sha256 HEX

--model also takes the URL of a published best.h5 (or .tflite) with labels.json beside it: both are
fetched once into the Keras cache (tools/model_source.py) and used from there, offline too.

Each photo is judged on deterministic crops (--crops 1/5/10) in one batched model call. Names are
printed in --lang: zh (the class names) or en (garbage_classify_v2/names_en.json), by default the
locale's. A failed input prints one line naming it and the reason; the others still run; the exit
code is 1 if any failed (2 for bad flags or a model that cannot be loaded). Inputs that cannot be
judged whatever the model (no such file, an unsupported URL) are told before the model is loaded.
"""

import argparse
import contextlib
import csv
import os
import sys

from tools.batch_predict import CSV_COLUMNS, DEFAULT_BATCH_SIZE, expand, problem, report, run
from tools.contract import CROP_CHOICES, DEFAULT_CROPS, DEFAULT_MODEL
from tools.errors import UsageError, guarded
from tools.fetch import DEFAULT_DEADLINE, DEFAULT_MAX_BYTES
from tools.images import MAX_PIXELS
from tools.calibration import THRESHOLD_HELP, check_threshold
from tools.inference import DEFAULT_TOP_K, Classifier
from tools.model_source import add_model_arguments, resolve_model
from tools.names import LANGS, NAMES_FILE, default_lang, english_names
from tools.quiet import import_keras_quietly

#: The interactive prompt in each language (the original's is the Chinese one).
PROMPT = {"zh": "请输入图片的绝对路径或 URL: ", "en": "Path or URL of a photo: "}


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
    p.add_argument("--lang", choices=LANGS, default=None,
                   help="language of the names printed: zh, the class names, or en, their English names from "
                        f"{os.path.relpath(NAMES_FILE, os.path.dirname(os.path.abspath(__file__)))} (default: the "
                        f"locale's, here {default_lang()})")
    return p


def unquote(line):
    """A path as typed or pasted at the prompt: surrounding quotes go ("Copy as path" on Windows adds "...")."""
    line = line.strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'":
        return line[1:-1].strip()
    return line


@guarded
def main(args):
    if args.top_k < 1 or args.batch_size < 1:
        raise UsageError("--top_k and --batch_size must be >= 1")
    if args.timeout <= 0 or args.max_mb <= 0 or args.max_mpx <= 0:
        raise UsageError("--timeout, --max_mb and --max_mpx must be > 0")
    check_threshold(args.threshold)
    lang = args.lang or default_lang()
    if lang == "en":
        english_names()  # a broken names file (NamesFileError) is said now, not after the model has loaded
    items = expand(args.inputs)
    if items and all(problem(item, kind) for item, kind in items):  # nothing to judge: no model needed
        with csv_rows(args.csv) as writer:
            for item, kind in items:
                report(item, None, problem(item, kind), args.json, writer, lang)
        return 1
    return predict(args, items, lang)


@contextlib.contextmanager
def csv_rows(path):
    """A csv.writer on `path` with CSV_COLUMNS written, closed afterwards; None without a path."""
    if not path:
        yield None
        return
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        yield writer


def predict(args, items, lang):
    """Load the model (ModelFilesError when it cannot be), then judge `items` (or the prompt's lines when
    there are none); the exit code."""
    model_path = resolve_model(args.model, args.model_sha256)
    if os.path.isfile(model_path):  # else Classifier says so at once, before Keras' slow import
        import_keras_quietly()
    clf = Classifier(model_path, crops=args.crops, top_k=args.top_k, unsure_threshold=args.threshold,
                     max_pixels=int(args.max_mpx * 1e6))
    options = dict(batch_size=args.batch_size, as_json=args.json, max_bytes=int(args.max_mb * 1024 * 1024),
                   deadline=args.timeout, lang=lang)
    with csv_rows(args.csv) as writer:
        try:
            return 1 if prompt_or_run(clf, items, writer, options) else 0
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130


def prompt_or_run(clf, items, writer, options):
    """Judge `items`, or with none the paths and URLs typed at the prompt until EOF; how many failed."""
    if items:
        return run(clf, items, writer=writer, **options)
    failed = 0
    while True:
        try:
            line = unquote(input(PROMPT[options["lang"]]))
        except EOFError:
            print()
            return failed
        if line:
            failed += run(clf, expand([line]), writer=writer, **options)


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
