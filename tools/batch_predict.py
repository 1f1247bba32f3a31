"""predict.py's work on many inputs: files, folders (recursive), file:// and http(s) URLs, in batches.

Each photo is read and decoded on a thread pool while the model judges the batch before it, so a
folder runs at nearly the model's own batched rate (bench/serve.py measures it). A failed input
prints one line naming it and the reason; the others still run. What can be told without reading
an input (no such file, an empty folder, a URL scheme not read) is told by `problem`, which
predict.py asks before it loads the model.
"""

import concurrent.futures
import json
import os
import re
import sys
import urllib.parse

from tools.fetch import DEFAULT_DEADLINE, DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, FetchError, fetch_image
from tools.files import is_url
from tools.images import ImageDecodeError, is_image_file
from tools.names import bin_name, item_name

#: Photos per model call.
DEFAULT_BATCH_SIZE = 16
#: The columns of predict.py's --csv file, one row per input.
CSV_COLUMNS = ["input", "label", "name", "category", "probability", "unsure", "error"]
#: "scheme://" at the start of an input: a URL (a Windows path C:\... has a one-letter "scheme").
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
#: The words of the printed answer in each language (tools.names.LANGS).
WORDS = {"zh": {"bin": "投放到", "unsure": "不太确定", "bins": "各垃圾桶", "top": "前 {k} 名"},
         "en": {"bin": "bin", "unsure": "not sure", "bins": "bins", "top": "top-{k}"}}


def file_url_path(url):
    """The local path of a file:// URL (file:///home/me/p.jpg, file:///C:/p.jpg), None for another host's."""
    import urllib.request  # url2pathname: the platform's own rules (drive letters on Windows)

    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        return None
    return urllib.request.url2pathname(parts.path)


def expand(inputs):
    """Files, folders (recursive, images only, sorted) and URLs -> list of (input, kind): kind "url",
    "file", "empty-dir" or "unsupported" (a URL predict.py does not read). A file:// URL becomes its path."""
    out = []
    for item in map(str, inputs):
        if _URL.match(item) and not os.path.exists(item):
            if is_url(item):
                out.append((item, "url"))
                continue
            path = file_url_path(item) if item[:7].lower() == "file://" else None
            if path is None:
                out.append((item, "unsupported"))
                continue
            item = path
        if os.path.isdir(item):
            found = sorted(os.path.join(root, f) for root, _, files in os.walk(item) for f in files if is_image_file(f))
            if not found:
                out.append((item, "empty-dir"))
            out.extend((f, "file") for f in found)
        else:
            out.append((item, "file"))
    return out


def problem(item, kind):
    """Why the input (item, kind) of expand() cannot be judged, told without reading it; None if it may be."""
    if kind == "empty-dir":
        return "folder holds no images"
    if kind == "unsupported":
        scheme = urllib.parse.urlsplit(item).scheme.lower()
        if scheme == "file":
            return "a file:// URL of another computer: give a path, or file:///path on this one"
        return f"unsupported URL scheme {scheme}:// (give a file, a folder, or an http(s):// or file:// URL)"
    if kind == "file" and not os.path.exists(item):
        return "no such file"
    return None


def read_input(item, kind, max_bytes=DEFAULT_MAX_BYTES, deadline=DEFAULT_DEADLINE):
    """The bytes of one input of expand(); OSError (FetchError for URLs) naming what went wrong."""
    why = problem(item, kind)
    if why:
        raise OSError(why)
    if kind == "url":
        return fetch_image(item, timeout=(DEFAULT_TIMEOUT[0], min(DEFAULT_TIMEOUT[1], deadline)), max_bytes=max_bytes,
                           deadline=deadline)
    with open(item, "rb") as f:
        return f.read()


def prepare(clf, item, kind, **read_options):
    """(crops, None) or (None, error message)."""
    try:
        return clf.prepare(read_input(item, kind, **read_options)), None
    except (OSError, ImageDecodeError, FetchError) as e:
        return None, str(e)


def show(item, result, as_json=False, out=None, lang="zh"):
    """Print one result: a JSON object (the model's own names), or the answer line, the probability
    per bin when it is unsure, and its top-k line, with the names in `lang` (tools.names)."""
    out = out or sys.stdout
    if as_json:
        print(json.dumps({"input": item, **result}, ensure_ascii=False), file=out, flush=True)
        return
    words = WORDS[lang]
    pct = lambda p: f"{p * 100:.1f}%"
    flag = f"  ({words['unsure']})" if result["unsure"] else ""
    print(f"{item}: {result['label']} {item_name(result['name'], lang)} | {words['bin']} "
          f"{bin_name(result['category'], lang)} | {pct(result['probability'])}{flag}", file=out)
    if result["unsure"]:  # which bin is clear even when the item is not
        print(f"    {words['bins']}: " + " | ".join(f"{bin_name(b, lang)} {pct(p)}" for b, p in result["bins"].items()),
              file=out)
    alts = " | ".join(f"{t['label']} {item_name(t['name'], lang)} ({bin_name(t['category'], lang)}) "
                      f"{pct(t['probability'])}" for t in result["top_k"])
    print(f"    {words['top'].format(k=len(result['top_k']))}: {alts}", file=out, flush=True)


def report(item, result, err, as_json=False, writer=None, lang="zh"):
    """One input's outcome: the result shown (show), or its error as one line on stderr (and a JSON
    object with --json); a CSV row to `writer` either way."""
    if err is not None:
        if as_json:
            print(json.dumps({"input": item, "error": err}, ensure_ascii=False), flush=True)
        print(f"error: {item}: {err}", file=sys.stderr, flush=True)
    else:
        show(item, result, as_json, lang=lang)
    if writer:
        r = result or {}
        writer.writerow([item, r.get("label", ""), r.get("name", ""), r.get("category", ""), r.get("probability", ""),
                         r.get("unsure", ""), err or ""])


def run(clf, items, batch_size=DEFAULT_BATCH_SIZE, as_json=False, writer=None, lang="zh", **read_options):
    """Predict `items` (from expand) in batches of `batch_size` photos, decoding overlapped with the
    model, printing each result in `lang` (and a CSV row to `writer`); returns the number failed.

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
                failed += err is not None
                bar.clear()
                report(items[i][0], results.get(i), err, as_json, writer, lang)
                bar.update(1)
    bar.close()
    return failed
