"""The served model: loaded in a background thread, then judging uploads through the micro-batcher.

Why in the background: the server answers at once (/healthz says 503 "loading", or "error" with
what went wrong) while Keras is imported, a model URL is fetched and the model is loaded and warmed
up; nothing is loaded before create_app() asks for it. What clients are told about a failed load names the model
by its file name only; the whole message (URL, cache path) is for the operator's console.
"""

import os
import threading
import time

from tools.images import ACCEPTED, ACCEPTED_NAMES, ImageDecodeError, sniff
from tools.inference import Classifier
from tools.model_source import file_sha256, model_file_name, resolve_model
from tools.quiet import import_keras_quietly
from tools.serving.batcher import MicroBatcher
from tools.serving.feedback import CollectError
from tools.serving.uploads import BadImage


def _number_or_none(value):
    """A float setting that may be unset (None, or an empty GARBAGE_* variable)."""
    return None if value in (None, "") else float(value)


class ModelHolder:
    """Loads the classifier in a background thread (fetching a URL model first); `ready`, `error` and
    `batcher` tell the routes. `error` names the model by file name only; `detail` is the whole message
    (URL, cache path) for the operator's console."""

    def __init__(self, config, on_ready=None):
        self.config = config
        self.on_ready = on_ready  # called with the holder once the model is loaded; may raise CollectError
        self.ready = threading.Event()
        self.error = self.detail = None
        self.classifier = self.batcher = None
        self.sha256 = None
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def _load(self):
        path = None
        try:
            import_keras_quietly()  # here, while the server answers; TensorFlow's start-up noise hidden
            path = resolve_model(self.config["MODEL"], self.config.get("MODEL_SHA256"))
            if os.path.isfile(path):
                self.sha256 = file_sha256(path)
            self.classifier = Classifier(path, crops=int(self.config["CROPS"]),
                                         top_k=int(self.config["TOP_K"]),
                                         unsure_threshold=_number_or_none(self.config["UNSURE_THRESHOLD"]),
                                         max_pixels=int(self.config["MAX_PIXELS"]))
            self.batcher = MicroBatcher(self.classifier, int(self.config["BATCH_MAX"]),
                                        float(self.config["BATCH_WAIT_MS"]))
            if self.on_ready is not None:
                self.on_ready(self)
            self.ready.set()
        except CollectError as e:  # the collect folder: its path goes to the console only
            self.detail, self.error = str(e), e.public
        except Exception as e:  # reported by /healthz and /predict, the server keeps answering
            self.detail = str(e)
            # the model's file name only: clients are not told where it lives on the server, nor its URL
            cached = getattr(e, "cache_path", None)
            hidden = {self.config["MODEL"], os.path.abspath(self.config["MODEL"]), path and os.path.abspath(path),
                      cached, cached and os.path.abspath(cached), cached and os.path.dirname(os.path.abspath(cached))}
            message = self.detail
            for text in sorted(filter(None, hidden), key=len, reverse=True):
                message = message.replace(text, self.model_name)
            self.error = message

    @property
    def model_name(self):
        return model_file_name(self.config["MODEL"])

    def wait(self, poll_s=0.05):
        """Block until the model is ready (True) or has failed to load (False)."""
        while not self.ready.is_set() and self.error is None:
            time.sleep(poll_s)
        return self.ready.is_set()

    def judge(self, data):
        """Sniff, decode, classify (micro-batched): (the classifier's result, milliseconds taken, the
        image's file extension); BadImage for anything that is not a usable photo."""
        fmt, accepted = sniff(data)
        if fmt is None:
            raise BadImage(f"not an image (the bytes are no {ACCEPTED_NAMES})")
        if not accepted:
            raise BadImage(f"unsupported image type {fmt}: send {ACCEPTED_NAMES}", 415)
        start = time.perf_counter()
        try:
            prepared = self.classifier.prepare(data)
        except ImageDecodeError as e:
            raise BadImage(str(e), e.http_status) from None
        result = self.batcher.submit(prepared)
        return result, round((time.perf_counter() - start) * 1000, 1), ACCEPTED[fmt]
