"""predict.py's work on many inputs: files, folders (recursive) and http(s) URLs, in batches.

Each photo is read and decoded on a thread pool while the model judges the batch before it, so a
folder runs at nearly the model's own batched rate (bench/serve.py measures it). A failed input
prints one line naming it and the reason; the others still run.
"""

import concurrent.futures
import json
import os
import sys

from tools.fetch import DEFAULT_DEADLINE, DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, FetchError, fetch_image, is_url
from tools.images import ImageDecodeError, is_image_file

#: Photos per model call.
DEFAULT_BATCH_SIZE = 16
#: The columns of predict.py's --csv file, one row per input.
CSV_COLUMNS = ["input", "label", "name", "category", "probability", "unsure", "error"]


def expand(inputs):
    """Files, folders (recursive, images only, sorted) and URLs -> list of (input, kind)."""
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


def read_input(item, kind, max_bytes=DEFAULT_MAX_BYTES, deadline=DEFAULT_DEADLINE):
    """The bytes of one input of expand(); OSError (FetchError for URLs) naming what went wrong."""
    if kind == "url":
        return fetch_image(item, timeout=(DEFAULT_TIMEOUT[0], min(DEFAULT_TIMEOUT[1], deadline)), max_bytes=max_bytes,
                           deadline=deadline)
    if kind == "empty-dir":
        raise OSError("folder holds no images")
    if not os.path.exists(item):
        raise OSError("no such file")
    with open(item, "rb") as f:
        return f.read()


def prepare(clf, item, kind, **read_options):
    """(crops, None) or (None, error message)."""
    try:
        return clf.prepare(read_input(item, kind, **read_options)), None
    except (OSError, ImageDecodeError, FetchError) as e:
        return None, str(e)


def show(item, result, as_json=False, out=None):
    """Print one result: a JSON object, or the answer line and its top-k line."""
    out = out or sys.stdout
    if as_json:
        print(json.dumps({"input": item, **result}, ensure_ascii=False), file=out, flush=True)
        return
    flag = "  (not sure)" if result["unsure"] else ""
    print(f"{item}: {result['label']} {result['name']} | bin {result['category']} | "
          f"{result['probability'] * 100:.1f}%{flag}", file=out)
    alts = " | ".join(f"{t['label']} {t['name']} {t['probability'] * 100:.1f}%" for t in result["top_k"])
    print(f"    top-{len(result['top_k'])}: {alts}", file=out, flush=True)


def run(clf, items, batch_size=DEFAULT_BATCH_SIZE, as_json=False, writer=None, **read_options):
    """Predict `items` (from expand) in batches of `batch_size` photos, decoding overlapped with the
    model, printing each result (and a CSV row to `writer`); returns the number failed.

    `read_options` (max_bytes, deadline) go to read_input.
    """
    from tqdm import tqdm  # 0.1 s to import: paid when photos are run, not by `predict.py --help`

    failed = 0
    bar = tqdm(total=len(items), unit="img", disable=len(items) < 2 or None, file=sys.stderr)
    with concurrent.futures.ThreadPoolExecutor(max(2, os.cpu_count() or 1)) as pool:
        futures = [pool.submit(prepare, clf, item, kind, **read_options) for item, kind in items]
        for start in range(0, len(items), batch_size):
            chunk = list(range(start, min(start + batch_size, len(items))))
            prepared = [futures[i].result() for i in chunk]
            good = [i for i, (crops, _) in zip(chunk, prepared) if crops is not None]
            crops = {i: c for i, (c, _) in zip(chunk, prepared) if c is not None}
            results = dict(zip(good, clf.predict_prepared([crops[i] for i in good]))) if good else {}
            for i, (_, err) in zip(chunk, prepared):
                item = items[i][0]
                if err is not None:
                    failed += 1
                    bar.clear()
                    if as_json:
                        print(json.dumps({"input": item, "error": err}, ensure_ascii=False), flush=True)
                    print(f"error: {item}: {err}", file=sys.stderr, flush=True)
                else:
                    bar.clear()
                    show(item, results[i], as_json)
                if writer:
                    r = results.get(i, {})
                    writer.writerow([item, r.get("label", ""), r.get("name", ""), r.get("category", ""),
                                     r.get("probability", ""), r.get("unsure", ""), err or ""])
                bar.update(1)
    bar.close()
    return failed
