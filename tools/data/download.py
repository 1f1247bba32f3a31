"""Getting the Huawei data set into the project's layout, and placing image files without copying them.

`download` goes through `keras.utils.get_file` (the Keras cache, an optional hash, extraction) and
links the extracted images into DEST/train_data_v2 with `link_or_copy`, which `sample.py` uses too:
a hard link where the file system allows (no extra disk space), else a copy.
"""

import os
import shutil

from models.weights import keras_cache_dir
from tools.data.rules import RULE_FILE_NAME, find_rule_file
from tools.errors import GarbageError
from tools.files import first_line

HUAWEI_URL = ("https://modelarts-competitions.obs.cn-north-1.myhuaweicloud.com/"
              "garbage_classify/dataset/garbage_classify_v2.zip")
ZIP_NAME = "garbage_classify_v2.zip"


class DownloadError(GarbageError, OSError):
    """The data set could not be fetched or unpacked (the message gives the manual steps)."""

    exit_code = 1


def link_or_copy(src, dst, hardlink=True):
    """Put the file `src` at `dst` (its folder is made): a hard link if `hardlink` and the file system
    allows it, else a copy. Returns True when it was linked."""
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    if hardlink:
        try:
            os.link(src, dst)
            return True
        except OSError:
            pass
    shutil.copy2(src, dst)
    return False


def copy_rule_file(data_dir, dest):
    """Copy the rule file of `data_dir` (in it or beside it) into the folder `dest`; the path it was found at, or None."""
    rule = find_rule_file(data_dir)
    if rule:
        shutil.copy2(rule, os.path.join(dest, RULE_FILE_NAME))
    return rule


def manual_steps(url, dest):
    return (f"Manual steps: download {url} in a browser, unzip it, and put the img_N.jpg + img_N.txt files "
            f"in {os.path.join(dest, 'train_data_v2')} (the rule file {RULE_FILE_NAME} goes in {dest}).")


def _find_image_folder(root):
    """The folder under `root` that holds the most img_N.txt label files."""
    best, count = None, 0
    for folder, _, files in os.walk(root):
        n = sum(1 for f in files if f.endswith(".txt"))
        if n > count:
            best, count = folder, n
    return best


def download(url=HUAWEI_URL, dest="./garbage_classify_v2", file_hash=None, cache_dir=None):
    """Fetch and unpack the zip via the Keras cache, then hard-link its images into DEST/train_data_v2.

    Returns (data_dir, number of files placed). Raises DownloadError with the manual steps.
    """
    import keras  # heavy: only a download needs keras.utils.get_file

    cache_dir = cache_dir or keras_cache_dir()
    archive = os.path.join(cache_dir, "datasets", ZIP_NAME)
    os.makedirs(os.path.dirname(archive), exist_ok=True)
    try:
        extracted = keras.utils.get_file(ZIP_NAME, url, cache_subdir="datasets", cache_dir=cache_dir,
                                         file_hash=file_hash, extract=True)
    except Exception as e:  # network errors are bare Exceptions; a wrong hash is a ValueError
        if os.path.exists(archive):  # get_file keeps a file that failed its hash: never reuse it
            os.remove(archive)
        reason = first_line(e)
        raise DownloadError(f"could not download {url} ({reason}). {manual_steps(url, dest)}") from None
    source = _find_image_folder(extracted) if os.path.isdir(extracted) else None
    if source is None:
        if os.path.exists(archive):
            os.remove(archive)  # a broken download must not be reused from the cache next time
        raise DownloadError(f"{url} did not unpack into labelled images (broken download or not the "
                            f"garbage_classify_v2 zip); the cached copy was removed, try again. "
                            f"{manual_steps(url, dest)}")
    target = os.path.join(dest, "train_data_v2")
    os.makedirs(target, exist_ok=True)
    placed = 0
    for name in os.listdir(source):
        src, dst = os.path.join(source, name), os.path.join(target, name)
        if not os.path.isfile(src) or os.path.exists(dst):
            continue
        link_or_copy(src, dst)
        placed += 1
    copy_rule_file(source, dest)
    return target, placed
