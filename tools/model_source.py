"""A trained model by URL: `--model https://.../best.h5` fetches it and its labels.json into the Keras cache.

Why: predict.py and server.py are useless until someone has downloaded the photos and trained for
hours. A team that has trained once publishes `best.h5` (or a `.tflite` from tools.export) and
`labels.json` side by side at any static URL (a GitHub release, a web server, a bucket); everyone
else passes that URL to --model, with --model_sha256 to pin exactly that file.

    resolve_model("output/best.h5")                                     -> "output/best.h5" (unchanged)
    resolve_model("output")                                             -> "output/best.h5" (a model folder)
    resolve_model("https://example.com/m/v3/best.h5", sha256="ab12...") -> "~/.keras/models/garbage/<key>/best.h5"

The files go through `keras.utils.get_file` into a folder of the Keras cache ($KERAS_HOME, else
~/.keras) that is specific to the URL's folder (`<key>` = 16 hex digits of its sha256); labels.json
lies beside the model there, where tools.inference.Classifier looks for it.

- A cached model is used without any network access when no --model_sha256 is given, or when it
  matches. Offline with a cached copy therefore works.
- A model whose sha256 is not --model_sha256 is an error and is never kept: each download goes
  into a fresh temporary folder and moves into place only when the model and labels.json have both
  arrived and the hash matches. So get_file never sees a cached file: it cannot delete a good copy
  when a re-download fails (what it does with a cached file whose hash differs), and a half-written
  or rejected file never appears under the cached name.
- A cached copy whose hash differs from the one given is downloaded again (the team published a
  new model at the same URL); if that fails, the old copy stays cached and the error says so.
- labels.json has no hash of its own: it is fetched together with the model file and kept with it,
  so a cached (or pinned) model always comes with the labels downloaded alongside it, and a later
  change on the server never pairs new labels with an old model. Classifier then checks that it is
  a labels file and that it lists as many classes as the model has outputs.
- With no cached copy and no network: one line naming the URL and the cache folder, so the files
  can also be copied there by hand.
"""

import contextlib
import hashlib
import os
import posixpath
import shutil
import sys
import tempfile
import urllib.parse

from tools.contract import LABELS_FILE, ModelFilesError, model_file
from tools.files import first_line, is_url, replace_atomic

#: Folder of the Keras cache that holds the models fetched by URL, one subfolder per URL folder.
CACHE_SUBDIR = os.path.join("models", "garbage")
#: The model files a URL may name; labels.json (LABELS_FILE) is fetched from the same folder.
MODEL_SUFFIXES = (".h5", ".keras", ".tflite")


class ModelSourceError(ModelFilesError):
    """The model cannot be fetched, or is not the file --model_sha256 names (one-line message).

    `url` and `cache_path` say what was asked for and where it would be cached (None where they do
    not apply), so a server can keep them out of what it tells its clients.
    """

    def __init__(self, message, url=None, cache_path=None):
        super().__init__(message)
        self.url, self.cache_path = url, cache_path


def model_file_name(spec):
    """The model's file name (`best.h5`) for a local path or a URL; never a folder, host or query."""
    if is_url(spec):
        return urllib.parse.unquote(posixpath.basename(urllib.parse.urlsplit(str(spec)).path))
    return os.path.basename(str(spec))


def check_sha256(sha256):
    """The hash in lower case (None stays None); ModelSourceError unless it is 64 hex digits."""
    if sha256 is None or sha256 == "":
        return None
    value = str(sha256).strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ModelSourceError(f"--model_sha256 must be the 64 hex digits that sha256sum prints, not {sha256!r}")
    return value


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_folder(url, cache_dir=None):
    """The cache folder of a model URL: <Keras cache>/models/garbage/<16 hex of the URL's folder>."""
    parts = urllib.parse.urlsplit(url)
    folder_url = urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(),
                                          posixpath.dirname(parts.path) + "/", "", ""))
    key = hashlib.sha256(folder_url.encode("utf-8")).hexdigest()[:16]
    if cache_dir is None:
        try:  # models.weights needs h5py, which an install that only runs .tflite files may lack
            from models.weights import keras_cache_dir
        except ImportError as e:
            raise ModelSourceError(f"a model by URL needs Keras and h5py ({e}); download {url} and its "
                                   "labels.json by hand and pass the local path to --model", url) from None
        cache_dir = keras_cache_dir()
    return os.path.join(os.path.expanduser(cache_dir), CACHE_SUBDIR, key)


def resolve_model(spec, sha256=None, cache_dir=None):
    """A local path for `--model`: a path is returned as it is (a folder as its best.h5), a URL is
    fetched into the Keras cache.

    Args:
        spec: a local model path (a model folder stands for the best.h5 in it), or an http(s) URL
            of a `.h5`/`.keras`/`.tflite` file with labels.json in the same URL folder.
        sha256: the model file's sha256 (64 hex digits), or None. A cached copy is used only if it
            matches; a download that does not match is an error and is not kept. For a local
            path, the file is checked against it too.
        cache_dir: the Keras cache folder (default: $KERAS_HOME, else ~/.keras).

    Returns the local path of the model file (labels.json beside it).
    Raises ModelSourceError (one line) when the hash is malformed or does not match, or the files
    cannot be fetched and are not cached.
    """
    sha256 = check_sha256(sha256)
    spec = os.fspath(spec)
    if not is_url(spec):
        spec = model_file(spec)
        got = file_sha256(spec) if sha256 and os.path.isfile(spec) else sha256
        if got != sha256:
            raise ModelSourceError(f"{spec} has sha256 {got}, not the --model_sha256 {sha256} given", cache_path=spec)
        return spec
    name = model_file_name(spec)
    if not name.endswith(MODEL_SUFFIXES) or name.startswith(".") or "/" in name or "\\" in name:
        raise ModelSourceError(f"a model URL must name a {', '.join(MODEL_SUFFIXES)} file (labels.json beside it), "
                               f"not {spec}", url=spec)
    folder = cache_folder(spec, cache_dir)
    target, labels = os.path.join(folder, name), os.path.join(folder, LABELS_FILE)
    if os.path.isfile(target) and os.path.isfile(labels) and (sha256 is None or file_sha256(target) == sha256):
        return target  # no network: the cached copy is the one asked for
    labels_url = urllib.parse.urljoin(spec, LABELS_FILE)
    try:
        os.makedirs(folder, exist_ok=True)  # get_file silently caches in /tmp/.keras when the folder is missing
        tmp = tempfile.mkdtemp(prefix=".download-", dir=folder)
    except OSError as e:
        raise ModelSourceError(f"cannot write to the model cache {folder}: {e.strerror or e}", spec, target) from None
    try:
        fetched_model = None
        if not os.path.isfile(target) or sha256 is not None:  # absent, or cached with another hash
            fetched_model = _get_file(name, spec, tmp, sha256, target,
                                      f"the copy cached at {target} has another sha256" if os.path.isfile(target)
                                      else f"no copy is cached at {target}")
        fetched_labels = _get_file(LABELS_FILE, labels_url, tmp, None, target, f"no copy is cached beside {target}")
        replace_atomic(fetched_labels, labels)  # the labels first: a cached model file means a complete pair
        if fetched_model:
            replace_atomic(fetched_model, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _get_file(fname, url, tmp, sha256, target, no_copy):
    """`keras.utils.get_file` into the empty folder `tmp`; ModelSourceError with one line on failure
    (`no_copy` says why the cache cannot stand in)."""
    try:
        import keras
    except ImportError:
        raise ModelSourceError(f"fetching a model by URL needs Keras (keras.utils.get_file); download {url} and "
                               f"its labels.json by hand and pass the local path to --model", url, target) from None
    try:
        # get_file prints its progress to stdout, which holds predict.py's results (--json)
        with contextlib.redirect_stdout(sys.stderr):
            return keras.utils.get_file(fname, url, file_hash=sha256, hash_algorithm="sha256", cache_subdir=tmp)
    except Exception as e:  # get_file raises a bare Exception for network and HTTP failures
        downloaded = os.path.join(tmp, fname)
        if isinstance(e, ValueError) and sha256 and os.path.isfile(downloaded):
            # the download's hash differs: say what it is; the file goes with `tmp`
            raise ModelSourceError(f"{url} has sha256 {file_sha256(downloaded)}, not the --model_sha256 {sha256} "
                                   "given: not used, not cached", url, target) from None
        reason = first_line(e).replace(f"URL fetch failure on {url}: ", "").replace("None -- ", "")
        raise ModelSourceError(f"cannot download {url} ({reason}) and {no_copy}", url, target) from None


def add_model_arguments(parser, default, what="model written by train.py (best.h5 or .tflite, labels.json beside it)"):
    """--model and --model_sha256, worded alike in every script that loads a model."""
    parser.add_argument("--model", default=default,
                        help=f"{what}, or the http(s) URL of a published one with labels.json beside it, fetched "
                             "once into the Keras cache (default: %(default)s)")
    parser.add_argument("--model_sha256", metavar="HEX", default=None,
                        help="sha256 the model file must have (sha256sum best.h5); a URL's download that differs is "
                             "refused and not cached")
