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
import concurrent.futures
import csv
import json
import os
import sys

from tools.fetch import DEFAULT_DEADLINE
from tools.images import MAX_PIXELS
from tools.quiet import import_keras_quietly

PROMPT = "请输入图片的绝对路径或 URL: "


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="image files, folders or http(s) URLs")
    p.add_argument("--model", default="output/best.h5",
                   help="model written by train.py, or the http(s) URL of a published one with labels.json beside "
                        "it, fetched into the Keras cache (default: %(default)s)")
    p.add_argument("--model_sha256", metavar="HEX",
                   help="sha256 the model file must have (sha256sum best.h5); a URL's download that differs is "
                        "refused and not cached")
    p.add_argument("--crops", type=int, choices=(1, 5, 10), default=5,
                   help="centre / +4 corners / +mirrors, averaged (default: %(default)s)")
    p.add_argument("--top_k", type=int, default=5, help="alternatives shown (default: %(default)s)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="below this top probability the answer is marked unsure (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object per input")
    p.add_argument("--csv", metavar="OUT", help="also write one row per input to this CSV file")
    p.add_argument("--batch_size", type=int, default=16, help="photos per model call for folders (default: %(default)s)")
    p.add_argument("--max_mb", type=float, default=20, help="size cap for URL downloads (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=DEFAULT_DEADLINE,
                   help="seconds one URL may take in all: connecting, waiting and downloading (default: %(default)s)")
    p.add_argument("--max_mpx", type=float, default=MAX_PIXELS / 1e6,
                   help="largest photo in megapixels decoded; larger ones are refused before decoding "
                        "(default: %(default)s)")
    return p


def expand(inputs):
    """Files, folders (recursive, images only, sorted) and URLs -> list of (input, kind)."""
    from tools.fetch import is_url
    from tools.images import is_image_file

    out = []
    for item in inputs:
        if is_url(item):
            out.append((item, "url"))
        elif os.path.isdir(item):
            found = sorted(os.path.join(root, f) for root, _, files in os.walk(item) for f in files if is_image_file(f))
            if not found:
                out.append((item, "empty-dir"))
            out.extend((f, "file") for f in found)
        else:
            out.append((item, "file"))
    return out


def read_input(item, kind, args):
    from tools.fetch import fetch_image

    if kind == "url":
        return fetch_image(item, timeout=(5.0, min(15.0, args.timeout)), max_bytes=int(args.max_mb * 1024 * 1024),
                           deadline=args.timeout)
    if kind == "empty-dir":
        raise OSError("folder holds no images")
    if not os.path.exists(item):
        raise OSError("no such file")
    with open(item, "rb") as f:
        return f.read()


def prepare(clf, item, kind, args):
    """(crops, None) or (None, error message)."""
    from tools.fetch import FetchError
    from tools.images import ImageDecodeError

    try:
        return clf.prepare(read_input(item, kind, args)), None
    except (OSError, ImageDecodeError, FetchError) as e:
        return None, str(e)


def show(item, result, args, out=None):
    out = out or sys.stdout
    if args.json:
        print(json.dumps({"input": item, **result}, ensure_ascii=False), file=out, flush=True)
        return
    flag = "  (not sure)" if result["unsure"] else ""
    print(f"{item}: {result['label']} {result['name']} | bin {result['category']} | "
          f"{result['probability'] * 100:.1f}%{flag}", file=out)
    alts = " | ".join(f"{t['label']} {t['name']} {t['probability'] * 100:.1f}%" for t in result["top_k"])
    print(f"    top-{len(result['top_k'])}: {alts}", file=out, flush=True)


def run(clf, items, args, writer=None):
    """Predict `items` in batches (decoding overlapped with the model); returns the number failed."""
    from tqdm import tqdm

    failed = 0
    bar = tqdm(total=len(items), unit="img", disable=len(items) < 2 or None, file=sys.stderr)
    with concurrent.futures.ThreadPoolExecutor(max(2, os.cpu_count() or 1)) as pool:
        futures = [pool.submit(prepare, clf, item, kind, args) for item, kind in items]
        for start in range(0, len(items), args.batch_size):
            chunk = list(range(start, min(start + args.batch_size, len(items))))
            prepared = [futures[i].result() for i in chunk]
            good = [i for i, (crops, _) in zip(chunk, prepared) if crops is not None]
            crops = {i: c for i, (c, _) in zip(chunk, prepared) if c is not None}
            results = dict(zip(good, clf.predict_prepared([crops[i] for i in good]))) if good else {}
            for i, (_, err) in zip(chunk, prepared):
                item = items[i][0]
                if err is not None:
                    failed += 1
                    bar.clear()
                    if args.json:
                        print(json.dumps({"input": item, "error": err}, ensure_ascii=False), flush=True)
                    print(f"error: {item}: {err}", file=sys.stderr, flush=True)
                else:
                    bar.clear()
                    show(item, results[i], args)
                if writer:
                    r = results.get(i, {})
                    writer.writerow([item, r.get("label", ""), r.get("name", ""), r.get("category", ""),
                                     r.get("probability", ""), r.get("unsure", ""), err or ""])
                bar.update(1)
    bar.close()
    return failed


def main(args):
    from tools.inference import Classifier, ModelFilesError
    from tools.model_source import resolve_model

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
    csv_file = open(args.csv, "w", newline="", encoding="utf-8") if args.csv else None
    writer = csv.writer(csv_file) if csv_file else None
    if writer:
        writer.writerow(["input", "label", "name", "category", "probability", "unsure", "error"])
    failed = 0
    try:
        if args.inputs:
            failed = run(clf, expand(args.inputs), args, writer)
        else:
            while True:
                try:
                    line = input(PROMPT).strip()
                except EOFError:
                    print()
                    break
                if line:
                    failed += run(clf, expand([line]), args, writer)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if csv_file:
            csv_file.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
