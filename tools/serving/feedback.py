"""Corrections from the page become training data (server.py --collect DIR).

Why: the model is wrong on the items of *this* town, and each correction a user makes (or each
right answer confirmed) is a labelled photo the next model can learn from. With collecting on,
/predict keeps the photo in memory under a random `capture_id`; /feedback names the right class and
the photo is written to DIR in the garbage_classify_v2 layout, which train.py and
`sample.py --check` read like any other data folder:

    DIR/garbage_classify_rule.json   the classes of the model that served (from its labels.json)
    DIR/img_N.<ext> + DIR/img_N.txt  "img_N.<ext>, LABEL"; N chosen here, never by the client
    DIR/feedback.csv                 time, file, predicted label/name/probability, label, name, model sha256

Two pieces:
- CaptureStore: photos waiting for feedback, bounded by count, bytes and age. When it is full the
  oldest captures are dropped (their feedback then gets 410, like an expired one): classifying must
  never fail because earlier users walked away, and the oldest photo is the least likely to get an
  answer. Each capture takes one feedback (a second one gets 409).
- Collector: writes a pair under one lock: the next free N (no gaps, no clashes between threads),
  the image and the label file written under temporary names and renamed (image first, label file
  last: a label file never names a missing image), then the CSV row; any failure removes what was
  written. DIR is capped at `max_bytes` and the disk must keep DISK_RESERVE free (else 507).

Images are kept as the bytes that were judged, with the extension of their sniffed format
(tools.images.ACCEPTED): both pages post JPEG, so nearly every file is img_N.jpg as in the Huawei set;
a PNG or HEIC from an API client stays lossless as img_N.png / img_N.heic. The label file names the
image, and tools/data/layout.py, tools/data/check.py and the training decoder (tools/images.py) read
every accepted format, so no re-encoding (quality loss, a decode per feedback) is needed.
"""

import collections
import csv
import datetime
import errno
import io
import os
import re
import shutil
import threading
import time
import uuid

from tools.data import DataError
from tools.data.rules import RULE_FILE_NAME, load_rule_file
from tools.errors import GarbageError
from tools.files import remove_files, replace_atomic, write_json_atomic
from tools.images import ACCEPTED

CSV_NAME = "feedback.csv"
CSV_COLUMNS = ["time", "file", "predicted_label", "predicted_name", "probability", "label", "name", "model_sha256"]
#: Bytes the disk must keep free after a pair is written.
DISK_RESERVE = 20 * 1024 * 1024
_NUMBERED = re.compile(r"^img_(\d+)\.[^.]+$")
_EXTENSIONS = ("txt", *ACCEPTED.values())


class FeedbackError(GarbageError):
    """A feedback that cannot be saved; `http_status` is the HTTP status (given as `status`), the message says why."""

    def __init__(self, message, status):
        super().__init__(message, http_status=status)


class CollectError(GarbageError):
    """DIR cannot be used for collecting. `str()` names the folder (operator's console); `public`
    does not (what /healthz tells clients)."""

    def __init__(self, message, public):
        super().__init__(message)
        self.public = public


Capture = collections.namedtuple("Capture", "data ext predicted probability created")
#: What one feedback wrote: the image's file name, its label id and class name, the folder's label files.
Saved = collections.namedtuple("Saved", "file label name collected")


class CaptureStore:
    """Photos waiting for feedback, thread-safe, bounded by `max_count`, `max_bytes` and `ttl` seconds."""

    def __init__(self, max_count=200, max_bytes=100 * 1024 * 1024, ttl=600.0, memory=10000, clock=time.monotonic):
        self.max_count, self.max_bytes, self.ttl = int(max_count), int(max_bytes), float(ttl)
        self.clock = clock
        self._lock = threading.Lock()
        self._items = collections.OrderedDict()  # id -> Capture, oldest first
        self._bytes = 0
        # ids no longer held, remembered (bounded) to answer 410 / 409 rather than "unknown"
        self._gone = collections.OrderedDict()  # id -> "expired" | "saved" | "pending"
        self._memory = memory

    def __len__(self):
        with self._lock:
            return len(self._items)

    @property
    def bytes(self):
        with self._lock:
            return self._bytes

    def _forget(self, cid, why):
        capture = self._items.pop(cid)
        self._bytes -= len(capture.data)
        self._remember(cid, why)

    def _remember(self, cid, why):
        self._gone[cid] = why
        self._gone.move_to_end(cid)
        while len(self._gone) > self._memory:
            self._gone.popitem(last=False)

    def _expire(self, now):
        while self._items:
            cid, capture = next(iter(self._items.items()))
            if now - capture.created < self.ttl:
                break
            self._forget(cid, "expired")

    def put(self, data, ext, predicted, probability):
        """Keep a photo; its capture_id, or None when it alone is over the byte bound."""
        if len(data) > self.max_bytes or self.max_count < 1:
            return None
        cid = uuid.uuid4().hex
        with self._lock:
            now = self.clock()
            self._expire(now)
            while self._items and (len(self._items) >= self.max_count or self._bytes + len(data) > self.max_bytes):
                self._forget(next(iter(self._items)), "expired")  # the oldest make room
            self._items[cid] = Capture(bytes(data), ext, int(predicted), float(probability), now)
            self._bytes += len(data)
        return cid

    def take(self, cid):
        """The capture, now held by the caller (done() or put_back() it); FeedbackError if there is none."""
        with self._lock:
            self._expire(self.clock())
            if cid in self._items:
                capture = self._items.pop(cid)
                self._bytes -= len(capture.data)
                self._remember(cid, "pending")
                return capture
            why = self._gone.get(cid)
        if why == "expired":
            raise FeedbackError(f"capture_id has expired: photos wait {self.ttl:g} s for feedback, and the "
                                "oldest make room for new ones when many wait; take the photo again", 410)
        if why in ("saved", "pending"):
            raise FeedbackError("feedback for this capture_id was already given (one per photo)", 409)
        raise FeedbackError("unknown capture_id: send the capture_id of a /predict answer", 404)

    def done(self, cid):
        with self._lock:
            self._remember(cid, "saved")

    def put_back(self, cid, capture):
        """After a failed write: the photo waits again (a retry may succeed once there is room)."""
        with self._lock:
            self._gone.pop(cid, None)
            self._items[cid] = capture
            self._bytes += len(capture.data)


def check_rule_file(folder, labels):
    """True if `folder` holds a rule file listing `labels`, False if it holds none; CollectError if
    its rule file lists other classes (a folder collected for another model) or is unreadable."""
    rule_path = os.path.join(folder, RULE_FILE_NAME)
    if not os.path.exists(rule_path):
        return False
    try:
        existing = load_rule_file(rule_path)
    except DataError as e:
        raise CollectError(f"--collect {folder}: {e}", "the collect folder's rule file is unreadable") from None
    if existing != list(labels):
        raise CollectError(
            f"--collect {folder} already holds a {RULE_FILE_NAME} with other classes than this model's labels.json "
            f"({len(existing)} vs {len(labels)} classes): collect into another folder",
            f"the collect folder holds a {RULE_FILE_NAME} with other classes than this model")
    return True


def _folder_size(folder):
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


class Collector:
    """Writes confirmed or corrected photos into `folder`; see the module docstring.

    start(labels, model_sha256) must be called (once the model is known) before save().
    """

    def __init__(self, folder, max_bytes, store=None):
        self.folder = folder
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self.store = store if store is not None else CaptureStore()
        self.labels = None
        self.model_sha256 = None
        self.collected = 0  # label files in the folder
        self._size = 0
        self._next = 1
        self._lock = threading.Lock()

    def start(self, labels, model_sha256=None):
        """Create the folder, write (or check) its rule file, count what is there. Raises CollectError."""
        rule_path = os.path.join(self.folder, RULE_FILE_NAME)
        try:
            os.makedirs(self.folder, exist_ok=True)
            if not check_rule_file(self.folder, labels):
                write_json_atomic(rule_path, {str(i): n for i, n in enumerate(labels)}, indent=1,
                                  tmp=os.path.join(self.folder, f".{RULE_FILE_NAME}.{uuid.uuid4().hex[:8]}.tmp"))
            numbers = [int(m.group(1)) for m in map(_NUMBERED.match, os.listdir(self.folder)) if m]
            self.collected = sum(1 for n in os.listdir(self.folder) if _NUMBERED.match(n) and n.endswith(".txt"))
            self._size = _folder_size(self.folder)
        except OSError as e:
            raise CollectError(f"--collect {self.folder}: {e.strerror or e}",
                               "the collect folder cannot be used") from None
        self._next = max(numbers, default=0) + 1
        self.labels = list(labels)
        self.model_sha256 = model_sha256

    def check_label(self, label):
        """The label as an int; FeedbackError 400 unless it is an id of the rule file."""
        if isinstance(label, bool) or not isinstance(label, int):
            raise FeedbackError(f"label must be an integer class id (0..{len(self.labels) - 1}), "
                                f"got {label!r:.40}", 400)
        if not 0 <= label < len(self.labels):
            raise FeedbackError(f"label {label} is not in the rule file (0..{len(self.labels) - 1})", 400)
        return label

    def feedback(self, capture_id, label):
        """Save the capture under `label`: a Saved (file, label, name, collected). Raises FeedbackError."""
        if not isinstance(capture_id, str) or not capture_id:
            raise FeedbackError("capture_id must be the string a /predict answer gave", 400)
        label = self.check_label(label)
        capture = self.store.take(capture_id)
        try:
            name = self.save(capture, label)
        except BaseException:
            self.store.put_back(capture_id, capture)
            raise
        self.store.done(capture_id)
        return Saved(name, label, self.labels[label], self.collected)

    def save(self, capture, label):
        """Write img_N.<ext> + img_N.txt + the CSV row; the image's file name. Nothing half-written on failure."""
        with self._lock:
            n = self._next
            while any(os.path.exists(os.path.join(self.folder, f"img_{n}.{e}")) for e in _EXTENSIONS):
                n += 1  # a file someone put there meanwhile
            image_name, label_name = f"img_{n}.{capture.ext}", f"img_{n}.txt"
            label_text = f"{image_name}, {label}".encode("utf-8")
            row = io.StringIO()
            csv_path = os.path.join(self.folder, CSV_NAME)
            new_csv = not os.path.exists(csv_path)
            writer = csv.writer(row, lineterminator="\n")
            if new_csv:
                writer.writerow(CSV_COLUMNS)
            writer.writerow([datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), image_name,
                             capture.predicted, self.labels[capture.predicted], f"{capture.probability:.6f}", label,
                             self.labels[label], self.model_sha256 or ""])
            row = row.getvalue().encode("utf-8")
            needed = len(capture.data) + len(label_text) + len(row)
            if self.max_bytes is not None and self._size + needed > self.max_bytes:
                limit = round(self.max_bytes / 2 ** 20, 2)
                raise FeedbackError(f"the collect folder is full (its limit is {limit:g} MB): nothing was saved", 507)
            try:
                free = shutil.disk_usage(self.folder).free
            except OSError:
                free = None
            if free is not None and free < needed + DISK_RESERVE:
                raise FeedbackError("the server's disk is full: nothing was saved", 507)
            image, label_file = os.path.join(self.folder, image_name), os.path.join(self.folder, label_name)
            token = uuid.uuid4().hex[:8]
            tmp_image = os.path.join(self.folder, f".{image_name}.{token}.tmp")
            tmp_label = os.path.join(self.folder, f".{label_name}.{token}.tmp")
            written = []
            try:
                for path, data in ((tmp_image, capture.data), (tmp_label, label_text)):
                    written.append(path)
                    with open(path, "wb") as f:
                        f.write(data)
                replace_atomic(tmp_image, image)
                written.append(image)
                replace_atomic(tmp_label, label_file)
                written.append(label_file)
                with open(csv_path, "ab") as f:
                    f.write(row)
            except OSError as e:
                remove_files(reversed(written))
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise FeedbackError("the server's disk is full: nothing was saved", 507) from None
                raise FeedbackError(f"the photo could not be saved ({e.strerror or type(e).__name__}): "
                                    "nothing was saved", 500) from None
            self._next = n + 1
            self._size += needed
            self.collected += 1
            return image_name
