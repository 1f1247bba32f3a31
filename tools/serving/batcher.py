"""Micro-batching: photos arriving together are judged in one model call.

Request threads decode their photo in parallel, then hand the crops to one batching thread, which
waits up to `max_wait_ms` for more (at most `max_batch` photos) and runs a single forward pass.
With one client this adds at most the short wait; with many, throughput grows towards the model's
batch throughput instead of queueing one model call per request.
"""

import concurrent.futures
import queue
import threading
import time


class MicroBatcher:
    def __init__(self, classifier, max_batch=8, max_wait_ms=5.0):
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("`max_batch` must be at least 1 and `max_wait_ms` at least 0. "
                             f"Received: max_batch={max_batch!r}, max_wait_ms={max_wait_ms!r}")
        self.classifier = classifier
        self.max_batch, self.max_wait = int(max_batch), max_wait_ms / 1000.0
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, prepared, timeout=60):
        """Result dict for one prepared photo (crops), blocking until its batch has run."""
        future = concurrent.futures.Future()
        self._queue.put((prepared, future))
        return future.result(timeout=timeout)

    def _loop(self):
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            try:
                results = self.classifier.predict_prepared([prepared for prepared, _ in batch])
                for (_, future), result in zip(batch, results):
                    future.set_result(result)
            except Exception as e:  # never let one bad batch kill the thread
                for _, future in batch:
                    future.set_exception(e)
