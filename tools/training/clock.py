"""An honest clock for training: where each epoch's wall time goes.

Why: a rate measured from an epoch's start to its last training batch leaves out validation and every
save at the epoch's end, which is what a user waits for too. `EpochClock.around(callbacks)` returns
the phase's callbacks with the clock's two markers around them and each named callback timed:

    wall        from one epoch's begin to the next's (the last: to the end of training, so the
                phase-end save counts)
    data        waiting for the next batch (between one batch's end and the next one's begin; on the
                TensorFlow backend tf.data fetches inside the step, so it shows there as steps)
    steps       the training steps
    validation  the validation pass
    <callback>  each epoch-end (and train-end) callback by name: best.h5, backup, history, ...
    other       the rest (Keras' own bookkeeping, the progress bar)

One EpochTime per epoch goes into the RunState (tools/training/state.py), saved with the backups;
`RunState.rates()` gives the run's images/s over whole epochs and in its steps alone.
"""

import time

import keras

from tools.training.state import EpochTime


class _Timed(keras.callbacks.Callback):
    """`inner` with the seconds of its on_epoch_end and on_train_end added to the clock under `name`."""

    def __init__(self, inner, name, clock):
        super().__init__()
        self.inner, self.name, self.clock = inner, name, clock

    def set_model(self, model):
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.inner.set_params(params)

    def _timed(self, method, *args):
        self.clock.mark()  # the epoch's wall so far: what a backup taken by `inner` records
        t0 = time.perf_counter()
        try:
            return getattr(self.inner, method)(*args)
        finally:
            self.clock.add(self.name, time.perf_counter() - t0)

    def on_epoch_end(self, epoch, logs=None):
        self._timed("on_epoch_end", epoch, logs)

    def on_train_end(self, logs=None):
        self._timed("on_train_end", logs)


# Everything else the inner callback does is forwarded untimed.
for _hook in ("on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end",
              "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
              "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end"):
    setattr(_Timed, _hook, (lambda hook: lambda self, *a, **k: getattr(self.inner, hook)(*a, **k))(_hook))


class EpochClock:
    """Times the epochs of fit() calls into `state.epochs` (EpochTime); `phase` names them,
    `images_per_epoch` is what the steps process in one epoch."""

    def __init__(self, state, phase, images_per_epoch):
        self.state, self.phase, self.images = state, phase, int(images_per_epoch)
        self.current = None
        self.first = True

    def add(self, name, seconds):
        if self.current is not None:
            self.current.callbacks[name] = self.current.callbacks.get(name, 0.0) + seconds

    def mark(self):
        """Set the current epoch's wall time to now (provisional until the epoch closes)."""
        if self.current is not None:
            self.current.wall = time.perf_counter() - self._begin

    def _close(self, now):
        if self.current is not None:
            self.current.wall = now - self._begin
            self.current = None

    def around(self, callbacks, first=()):
        """[*first, start marker, each (name, callback) timed, end marker]: `first` untimed (the progress bar,
        so its epoch line is complete before other callbacks print)."""
        return [*first, _Start(self), *(_Timed(c, name, self) for name, c in callbacks), _End(self)]


class _Start(keras.callbacks.Callback):
    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def on_train_begin(self, logs=None):
        self.clock.first = True

    def on_epoch_begin(self, epoch, logs=None):
        c = self.clock
        now = time.perf_counter()
        c._close(now)
        c._begin = c._last = now
        c.current = EpochTime(phase=c.phase, epoch=epoch + 1, images=c.images, wall=0.0, compiled=c.first)
        c.first = False
        c.state.epochs.append(c.current)

    def on_train_batch_begin(self, batch, logs=None):
        c = self.clock
        now = time.perf_counter()
        if c.current is not None:
            c.current.data += now - c._last
        c._last = now

    def on_train_batch_end(self, batch, logs=None):
        c = self.clock
        now = time.perf_counter()
        if c.current is not None:
            c.current.steps += now - c._last
        c._last = now

    def on_test_begin(self, logs=None):
        self.clock._test = time.perf_counter()

    def on_test_end(self, logs=None):
        c = self.clock
        if c.current is not None:
            c.current.validation += time.perf_counter() - c._test


class _End(keras.callbacks.Callback):
    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def on_epoch_end(self, epoch, logs=None):
        self.clock.mark()

    def on_train_end(self, logs=None):
        self.clock._close(time.perf_counter())
