"""Decode every training photo once: a cache of uint8 squares the loader crops from.

Each image is decoded, resized so its shorter side is `resize_size(input_size)` (R: 256 for 224)
and centre-cropped to an R x R square (`decode_square`); the loader then takes a random
`input_size` crop of the square (training) or its centre crop (validation, the same pixels as
`center_crop(load_resized(...))` of the whole photo). The squares live in one (N, R, R, 3) uint8
array:

- "ram": a numpy array in memory (15,000 photos at R=256 are ~2.9 GB);
- "disk": a `np.lib.format.open_memmap` file in a folder (train.py: <output_dir>/cache), named after
  R and a manifest hash (every path with its size and mtime, R, input_size, the format version), so
  a changed, added or removed photo gives another file, rebuilt from scratch; older cache files of
  the same name in the folder are removed when a new one is created. The per-image state is saved
  beside it (atomically: tools.files.atomic_path, every FLUSH_EVERY fills and at each epoch end), so the
  next run starts warm;
- "auto": RAM when the array takes under a quarter of the available memory, else disk (RAM when no
  folder is given);
- "none": no cache, every image decoded on every use (open_cache returns None).

Per image the state is 0 (not decoded yet), 1 (cached) or 2 (unreadable: the decoder's error is
raised again without decoding while the file is unchanged). Slots are filled on first use by
PyDataset's worker threads; each thread writes its own slot and a lock guards only the bookkeeping.
Worker processes (use_multiprocessing) each fill their own copy: the cache is made for threads.
"""

import copy
import glob
import hashlib
import logging
import os
import shutil
import threading

import numpy as np

from tools.files import atomic_path, remove_files
from tools.contract import resize_size
from tools.images import ImageDecodeError, load_resized

_log = logging.getLogger(__name__)

CACHE_MODES = ("auto", "ram", "disk", "none")
#: Bump when what a slot holds changes (decoder, crop rule): every disk cache is rebuilt.
FORMAT_VERSION = 2  # 2: the decoder refuses shapes and sizes it accepted before (tools/images.py budgets)
#: The state file of a disk cache is rewritten after this many fills (and at every epoch end).
FLUSH_EVERY = 500
#: Free disk space kept beyond the cache file: a memmap write on a full disk kills the process (SIGBUS).
DISK_MARGIN = 256 << 20

NOT_YET, CACHED, UNREADABLE = 0, 1, 2


def decode_square(path, input_size):
    """The R x R uint8 square of one photo (R = resize_size(input_size)): resized so the shorter
    side is R, then cropped along the longer side so that the square's centre `input_size` crop is
    exactly `center_crop(load_resized(path, input_size), input_size)`.

    A plain centre square would be off by one pixel from that when R - input_size and the overhang
    are both odd (R=37 for 32): the square starts at (W-S)//2 - (R-S)//2, not at (W-R)//2.
    Raises what load_resized raises (ImageDecodeError, OSError).
    """
    img = load_resized(path, input_size)
    side, size = resize_size(input_size), int(input_size)
    h, w = img.shape[:2]
    top = (h - size) // 2 - (side - size) // 2
    left = (w - size) // 2 - (side - size) // 2
    return np.ascontiguousarray(img[top:top + side, left:left + side])


def available_memory():
    """Bytes of memory free for new allocations, or None when the system does not say.

    /proc/meminfo's MemAvailable (Linux: free memory plus the page cache that can be reclaimed); else
    os.sysconf SC_AVPHYS_PAGES * SC_PAGE_SIZE (free pages only); else half of the physical memory
    (macOS has SC_PHYS_PAGES only); None on systems without sysconf.
    """
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (AttributeError, ValueError, OSError):
        return None


#: Threshold used by "auto" when available_memory() is None.
UNKNOWN_MEMORY_RAM_LIMIT = 1 << 30


def manifest_key(paths, input_size):
    """sha256 hex of the format version, input_size, R and every (absolute path, size, mtime_ns).

    A missing file counts as size -1: if it appears later, the key changes.
    """
    h = hashlib.sha256(f"garbage-cache v{FORMAT_VERSION}\n{int(input_size)}\n{resize_size(input_size)}\n".encode())
    for p in paths:
        try:
            st = os.stat(p)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, 0
        h.update(os.fsencode(os.path.abspath(p)))
        h.update(f"\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


def _detached(error):
    """A copy of `error` without its traceback (which holds the frames, batches included, it passed)."""
    try:
        return copy.copy(error).with_traceback(None)
    except Exception:  # an exception class copy cannot rebuild
        return ImageDecodeError(str(error))


def _mb(n):
    return n / (1 << 20)


def _size_text(n):
    mb = _mb(n)
    return f"{mb:.0f} MB" if mb >= 10 else f"{mb:.1f} MB"


class DecodedCache:
    """The decoded squares of `paths` for `input_size`, filled on first use.

    Use open_cache() to make one. `get(i)` returns the (R, R, 3) uint8 square of paths[i]
    (read-only; copy it to change it) or raises the decoder's error for an unreadable image.
    """

    def __init__(self, paths, input_size, kind="ram", file=None, name="images"):
        self.paths = [os.fspath(p) for p in paths]
        self.input_size = int(input_size)
        self.side = resize_size(self.input_size)
        self.kind = kind
        self.file = file
        self.name = name
        self.state_file = None if file is None else file[:-len(".npy")] + ".state.npy"
        shape = (len(self.paths), self.side, self.side, 3)
        self.hits = self.misses = 0
        self._fills = 0
        self._errors = {}  # index -> the decoder's exception, in this process
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        if kind == "ram":
            self.data = np.empty(shape, dtype=np.uint8)  # pages are only taken as slots are filled
            self.state = np.zeros(len(self.paths), dtype=np.uint8)
        elif kind == "disk":
            self.data, self.state = self._open_disk(shape)
        else:
            raise ValueError(f"`kind` must be 'ram' or 'disk'. Received: kind={kind!r}")

    def _open_disk(self, shape):
        if os.path.exists(self.file):
            try:
                data = np.lib.format.open_memmap(self.file, mode="r+")
                if data.shape == shape and data.dtype == np.uint8:
                    state = np.zeros(shape[0], dtype=np.uint8)
                    try:
                        saved = np.load(self.state_file)
                        if saved.shape == state.shape and saved.dtype == np.uint8:
                            state = saved.copy()
                    except (OSError, ValueError, EOFError):
                        pass  # no or damaged state: the slots are filled again
                    return data, state
                del data
            except (OSError, ValueError):
                pass
        for stale in (self.state_file, self.file):
            if os.path.exists(stale):
                os.remove(stale)
        data = np.lib.format.open_memmap(self.file, mode="w+", dtype=np.uint8, shape=shape)  # sparse file
        return data, np.zeros(shape[0], dtype=np.uint8)

    def __len__(self):
        return len(self.paths)

    @property
    def nbytes(self):
        return len(self.paths) * self.side * self.side * 3

    def counts(self):
        """(cached, unreadable) images so far."""
        states = np.bincount(self.state, minlength=3)
        unsaved = sum(1 for i in list(self._errors) if self.state[i] != UNREADABLE)
        return int(states[CACHED]), int(states[UNREADABLE]) + unsaved

    def describe(self):
        """One line: where, how big, how full, hits and misses."""
        cached, bad = self.counts()
        where = "RAM" if self.kind == "ram" else f"disk ({self.file})"
        return (f"{self.name} cache: {where}, {len(self)} images at {self.side}x{self.side}, "
                f"{_size_text(self.nbytes)}; {cached} cached, {bad} unreadable; {self.hits} hits, {self.misses} misses")

    def _view(self, i):
        v = self.data[i]
        v.flags.writeable = False
        return v

    def get(self, i):
        """The square of paths[i], decoded on the first call; raises the decoder's error when unreadable."""
        state = self.state[i]
        if state == CACHED:
            with self._lock:
                self.hits += 1
            return self._view(i)
        error = self._errors.get(i)
        if error is not None:
            raise _detached(error)  # a fresh one: re-raising one object would grow its traceback forever
        if state == UNREADABLE:
            raise ImageDecodeError("unreadable when the cache was filled, and unchanged since")
        try:
            square = decode_square(self.paths[i], self.input_size)
        except (ImageDecodeError, OSError) as e:
            with self._lock:
                self.misses += 1
                self._errors[i] = _detached(e)  # raised again by this process without decoding; no traceback kept
                if isinstance(e, ImageDecodeError):
                    self.state[i] = UNREADABLE  # saved: known bad while the file is unchanged
                # missing file, permissions (OSError): not saved, tried again by the next run
            raise
        self.data[i] = square
        with self._lock:
            self.misses += 1
            self.state[i] = CACHED  # after the pixels are in: a reader never sees a half-written slot
            self._fills += 1
            due = self.kind == "disk" and self._fills % FLUSH_EVERY == 0
        if due:
            self.flush()
        return self._view(i)

    def flush(self):
        """Disk: write the filled pixels out, then the state (atomic_path), so a next run starts warm."""
        if self.kind != "disk":
            return
        with self._flush_lock:
            with self._lock:
                state = self.state.copy()  # only slots whose pixels are already written
            self.data.flush()
            with atomic_path(self.state_file, self.state_file + ".tmp") as tmp, open(tmp, "wb") as f:
                np.save(f, state)


def _disk_free(folder):
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _remove_older(folder, name, keep):
    """Every cache file of `name` in `folder` but those in `keep` (other sides, other keys, stale tmp files)."""
    pattern = os.path.join(glob.escape(folder), f"{glob.escape(name)}_*px_*.npy*")
    return remove_files(p for p in glob.glob(pattern) if os.path.basename(p) not in keep)


def open_cache(paths, input_size, mode="auto", folder=None, name="images", log=_log.info):
    """A DecodedCache for `paths` at `input_size` (see the module's docstring), or None for mode "none".

    `folder` is where a disk cache lives (needed for "disk"; "auto" without it stays in RAM);
    `name` tells apart caches sharing one folder (data_flow: "train" and "val"). One line saying
    which kind and how many MB goes to `log`. A disk cache that would not fit on the disk (a memmap
    write on a full disk kills the process) gives no cache (None), with a line saying so.
    """
    if mode not in CACHE_MODES:
        raise ValueError(f"`mode` must be one of {', '.join(CACHE_MODES)}. Received: mode={mode!r}")
    if mode == "none":
        return None
    if mode == "disk" and folder is None:
        raise ValueError("a disk cache needs `folder`. Received: folder=None")
    side = resize_size(input_size)
    nbytes = len(paths) * side * side * 3
    size = f"{len(paths)} images at {side}x{side}, {_size_text(nbytes)}"
    why = ""
    if mode == "auto":
        avail = available_memory()
        limit = UNKNOWN_MEMORY_RAM_LIMIT if avail is None else avail // 4
        fits = nbytes < limit
        mode = "ram" if fits or folder is None else "disk"
        known = "memory unknown" if avail is None else f"{_mb(avail):.0f} MB available"
        why = f" (auto: {'under' if fits else 'over'} {_mb(limit):.0f} MB, {known})"
    if mode == "disk":
        os.makedirs(folder, exist_ok=True)
        key = manifest_key(paths, input_size)[:16]
        file = os.path.join(folder, f"{name}_{side}px_{key}.npy")
        # blocks already on disk: the memmap file is sparse, its size says nothing of what is written
        have = os.stat(file).st_blocks * 512 if os.path.exists(file) else 0
        free = _disk_free(folder)
        if free is not None and free + have < nbytes + DISK_MARGIN:
            log(f"{name} cache: {size} does not fit on the disk of {folder} ({_mb(free):.0f} MB free){why}: "
                "no cache, images decoded on every use")
            return None
        cache = DecodedCache(paths, input_size, "disk", file=file, name=name)
        removed = _remove_older(folder, name, {os.path.basename(file), os.path.basename(cache.state_file)})
        cached, bad = cache.counts()
        log(f"{name} cache: disk, {size} in {file}{why}; {cached} already cached, {bad} known unreadable"
            + (f"; removed {len(removed)} older cache file(s)" if removed else ""))
        return cache
    log(f"{name} cache: RAM, {size}{why}")
    return DecodedCache(paths, input_size, "ram", name=name)
