"""The callbacks of one training phase, in the order they run: the progress bar, the clock's start, then
(each timed) NaN stop, best.h5, early stopping, history rows, learning-rate drops, TensorBoard, and last
the epoch backup that makes the phase resumable; the clock's end."""

import os

import keras

from tools.contract import MODEL_FILE
from tools.training.checkpoints import BestModel
from tools.training.clock import EpochClock
from tools.training.state import history_path


def make_callbacks(config, state, spec, monitor, classifier, writer, backup, images_per_epoch, chief=True):
    """Callbacks of the phase `spec` (a PhaseSpec) watching `monitor` ("val_loss", or "loss" without
    validation). `backup`: its PhaseBackup (restore already done), whose counters it fills with
    EarlyStopping's and ReduceLROnPlateau's. `classifier`: what best.h5 holds (fit may train it behind an
    augmentation block). Only the `chief` writes files (best.h5, history, TensorBoard); every worker of a
    multi-machine run stops early and lowers the rate alike, from the same (all-reduced) figures."""
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience)
    named = [("nan", keras.callbacks.TerminateOnNaN()),
             ("best.h5", BestModel(os.path.join(config.output_dir, MODEL_FILE), monitor, state, spec.name,
                                   classifier, writer)),
             ("early stop", stop),
             ("history", keras.callbacks.CSVLogger(history_path(config.output_dir, spec.name), append=True))]
    if not chief:
        named = [item for item in named if item[0] not in ("best.h5", "history")]
    backup.counters = [stop]
    if spec.plateau:
        plateau = keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.2,
                                                    patience=max(1, config.patience // 2), min_lr=1e-7)
        named.append(("lr drop", plateau))
        backup.counters.append(plateau)
    if config.tensorboard and chief:  # epoch scalars of every phase in one log, epochs numbered on
        named.append(("tensorboard", keras.callbacks.TensorBoard(log_dir=os.path.join(config.output_dir, "logs"),
                                                                 write_graph=False)))
    # Last, so an epoch is marked done only once its history row and best.h5 are queued or on disk, and the
    # state it backs up (best value, EarlyStopping/ReduceLROnPlateau counters) includes that epoch.
    named.append(("backup", backup))
    # The progress bar first: its epoch line is complete before best.h5's line is printed.
    return EpochClock(state, spec.name, images_per_epoch).around(named, first=[keras.callbacks.ProgbarLogger()])
