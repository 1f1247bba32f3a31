"""Writing a file so that no kill, crash or power cut leaves half of it; deleting without caring; short error text.

Standard library only: models/saving.py, the training run and the server all import it, cheaply.
Every writer names its temporary file as before (cleanup code and tests look for those names): by
default `<path>.tmp-<pid>` (TMP), else the name the caller gives.
"""

import contextlib
import json
import os
import urllib.parse

#: In the name of every temporary file the training run writes besides best.h5's (backups, state, JSON):
#: tools/training/resume.remove_stale_temp_files finds what a killed run left by it.
TMP = ".tmp-"


def replace_atomic(tmp, path):
    """os.replace(tmp, path) once tmp's bytes are on disk, then the rename itself where the OS allows:
    a kill, crash or power cut at any instant leaves either the old file or the complete new one."""
    fd = os.open(tmp, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its renames need no such flush
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, tmp=None):
    """A temporary path beside `path` (default `<path>.tmp-<pid>`) to write the new file to; when the block
    ends, that file replaces `path` (replace_atomic). On an error it is removed and `path` stays as it was."""
    tmp = tmp or f"{path}{TMP}{os.getpid()}"
    try:
        yield tmp
        replace_atomic(tmp, path)
    finally:
        remove_quietly(tmp)


def write_atomic(path, data, tmp=None):
    """Write the bytes `data` to `path` through atomic_path: never a half-written file."""
    with atomic_path(path, tmp) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_json_atomic(path, obj, indent=None, tmp=None):
    """Write `obj` as JSON (UTF-8, not ASCII-escaped; numpy numbers as floats) to `path` through atomic_path."""
    with atomic_path(path, tmp) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, default=float, ensure_ascii=False, indent=indent)


def remove_quietly(path):
    """Delete `path` if it can be deleted (gone already, or in use elsewhere: left); True when it was."""
    try:
        os.remove(path)
        return True
    except OSError:
        return False


def remove_files(paths):
    """remove_quietly each of `paths`; returns those deleted. For what a killed run left (temporary
    files) and caches that are out of date."""
    return [path for path in paths if remove_quietly(path)]


def is_url(text):
    """Whether `text` (a --model, an image argument) is an http(s) URL rather than a local path."""
    return urllib.parse.urlsplit(str(text)).scheme in ("http", "https")


def first_line(error, limit=None):
    """The first line of `error`'s message (its type's name when the message is empty), at most `limit`
    characters: what a one-line error or warning quotes of an exception from elsewhere."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:limit]
