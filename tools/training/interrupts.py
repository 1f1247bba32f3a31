"""SIGTERM and Ctrl-C during training: finish the batch, save the last finished epoch, then stop.

Why: preemptible machines, `docker stop`, systemd and a user's Ctrl-C all send a signal and give the
process a few seconds; the epoch backups are written only every --backup_every seconds, so without this
a polite stop would lose up to that much work. The handler only records the signal (nothing is done
inside a signal handler); the epoch backup callback (tools/training/resume.py) checks it after every
batch, saves and raises `Interrupted`. A second Ctrl-C stops at once, as Python's default does.
"""

import contextlib
import signal


class Interrupted(Exception):
    """Training stopped on a signal; `signum` is that signal (None: another worker of a multi-machine run got
    one), `saved` the epoch on disk to resume from, `others`: this worker is not the chief, which saved."""

    def __init__(self, signum, saved=None, others=False):
        super().__init__(signal.Signals(signum).name if signum else "a signal to another worker")
        self.signum, self.saved = signum, saved
        self.others = others  # a worker that is not the chief: the chief saved

    @property
    def exit_code(self):
        return 128 + (self.signum or signal.SIGTERM)


class Signals:
    """The signal received since `catching()` began, or None."""

    def __init__(self):
        self.received = None

    def check(self):
        """Raise Interrupted if a signal came."""
        if self.received is not None:
            raise Interrupted(self.received)

    @contextlib.contextmanager
    def catching(self):
        """Record SIGTERM and the first SIGINT while the block runs (main thread only; elsewhere a no-op)."""
        def record(signum, frame):
            if signum == signal.SIGINT and self.received is not None:
                raise KeyboardInterrupt  # the second Ctrl-C: now
            self.received = signum

        try:
            old = {s: signal.signal(s, record) for s in (signal.SIGTERM, signal.SIGINT)}
        except ValueError:  # not the main thread: signals cannot be caught here
            yield self
            return
        try:
            yield self
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
