"""The callbacks of one training phase: best.h5, early stopping, learning-rate drops, history rows,
throughput, TensorBoard, and last the epoch backup that makes the phase resumable."""

import logging
import math
import os
import time

import keras

from models.saving import save_model_atomic
from tools.contract import MODEL_FILE
from tools.training.resume import EpochBackup
from tools.training.state import backup_dir, history_path

log = logging.getLogger(__name__)


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """ModelCheckpoint(save_best_only) that writes best.h5 for inference (no optimizer state)
    through a temporary file and os.replace, so a crash mid-write never leaves a broken file,
    and remembers the best value across phases and restarts in `state` (which each epoch
    backup and, at a phase's end, state.json carry)."""

    def __init__(self, path, monitor, state, phase, saved_model=None):
        super().__init__()
        self.path, self.monitor, self.state, self.phase = path, monitor, state, phase
        self.saved_model = saved_model  # the classifier, when fit trains it behind an augmentation block

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value) or value >= self.state.get("best_value", math.inf):
            return
        save_model_atomic(self.saved_model or self.model, self.path)
        self.state.update(best_value=float(value), best_epoch=epoch + 1,
                          best_val_accuracy=(logs or {}).get("val_accuracy"), best_phase=self.phase)
        log.info("epoch %d: %s improved to %.4f, saved %s", epoch + 1, self.monitor, value, self.path)


class Throughput(keras.callbacks.Callback):
    """Training images/s, counting only the training batches (not validation), summed in `state`; the
    seconds of each epoch but the first of every fit() call (which compiles) in `state["steady_seconds"]`."""

    def __init__(self, state):
        super().__init__()
        self.state = state

    def on_train_begin(self, logs=None):
        self.first = True  # the first epoch of each fit() call compiles the train step

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.last = time.perf_counter(), None

    def on_train_batch_end(self, batch, logs=None):
        self.last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.last is not None:
            seconds = self.last - self.start
            self.state["train_seconds"] = self.state.get("train_seconds", 0.0) + seconds
            self.state["train_images"] = self.state.get("train_images", 0) + self.state["images_per_epoch"]
            # the epochs that compiled nothing, apart: the steady rate train.py prints beside the overall one
            if not self.first:
                self.state.setdefault("steady_seconds", []).append(round(seconds, 4))
            self.first = False


def make_callbacks(args, state, phase, monitor, plateau, restored=None, saved_model=None):
    """Callbacks of one phase. `restored`: the backup the phase resumes from (tools.training.resume.restore),
    for the counters of EarlyStopping and ReduceLROnPlateau (`plateau`). `saved_model`: what best.h5 holds,
    when it is not the model `fit` trains (the classifier without its augmentation block)."""
    counters = [keras.callbacks.EarlyStopping(monitor=monitor, patience=args.patience)]
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        AtomicBestCheckpoint(os.path.join(args.output_dir, MODEL_FILE), monitor, state, phase, saved_model),
        counters[0],
        keras.callbacks.CSVLogger(history_path(args.output_dir, phase), append=True),
        Throughput(state),
    ]
    if plateau:
        counters.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.2,
                                                          patience=max(1, args.patience // 2), min_lr=1e-7))
        callbacks.append(counters[-1])
    if args.tensorboard:  # epoch scalars of both phases in one log, epochs numbered on
        callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(args.output_dir, "logs"), write_graph=False))
    # Last, so an epoch is marked done only once its history row and best.h5 are on disk, and the state
    # it backs up (best value, EarlyStopping/ReduceLROnPlateau counters) includes that epoch.
    callbacks.append(EpochBackup(backup_dir(args.output_dir, phase), state, counters, restored))
    return callbacks
