"""The training recipes as data (a list of PhaseSpec per --weights) and the one function that runs a phase.

With pretrained weights (ImageNet or a file): phase 1 trains the top with the backbone frozen,
phase 2 fine-tunes backbone stages --unfreeze_from..5 at a lower learning rate with
BatchNormalization kept in inference mode, starting from phase 1's best weights. With --weights none:
one "scratch" phase trains the whole network under a warm-up + cosine schedule with AdamW. Epochs are
numbered on across phases. A phase that the RunState records as done is not run again; an
interrupted one continues from its last epoch backup (tools/training/resume.py).

Two models take part: `model`, the classifier that best.h5 holds, and `trainer`, what `fit` trains:
the classifier behind the augmentation block of --augment (models/augmentation.py), or the classifier
itself. They share every weight; trainable flags are set on the classifier's layers.
"""

import contextlib
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field

import keras

from models.classifier import set_trainable_from
from models.saving import read_weights, save_model_atomic
from tools.contract import MODEL_FILE
from tools.training.callbacks import make_callbacks
from tools.training.checkpoints import assign, read_variables, write_variables
from tools.training.feed import EpochEnds
from tools.distributed.devices import Placement
from tools.training.interrupts import Interrupted, Signals
from tools.training.resume import PhaseBackup, seed_states
from tools.training.state import backup_dir, history_path, phase_end_path, save_state

log = logging.getLogger(__name__)

WARMUP_SHARE = 0.1  # of the steps, in the from-scratch schedule
FINAL_LR_SHARE = 0.01  # the cosine ends at this share of the learning rate


def header(text):
    """A section of the training log: an empty line, then "==> text"."""
    log.info("\n==> %s", text)


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class PhaseSpec:
    """One phase of a recipe: what trains, for how long, how fast."""
    name: str  # names its backup folder, history file and RunState entry
    label: str  # what the log calls it ("phase 1")
    title: str  # the log's header for it
    epochs: int
    learning_rate: float
    schedule: str = "constant"  # or "warmup_cosine" (10% linear warm-up from lr/10, cosine down to lr/100)
    train_from: int = 6  # models.classifier.set_trainable_from: backbone stages >= this train, 6 = head only
    batchnorm: bool = False  # backbone BatchNormalization trains too (only when nothing is pretrained)
    plateau: bool = True  # ReduceLROnPlateau
    weight_decay: float = None  # AdamW's; None = Adam
    start_from_best: bool = False  # load best.h5 (or the phase before's last weights) first
    keep_end_weights: bool = False  # keep this phase's last weights for the next phase (when no best.h5)


def recipe(config):
    """The phases --weights asks for, from the (device-scaled) config."""
    if not config.pretrained:
        return [PhaseSpec(
            "scratch", "training", f"Training from scratch: all layers, {plural(config.epochs, 'epoch')}, warm-up + cosine to "
            f"lr {config.scaled_learning_rate:g} (--fine_tune_epochs is not used without pretrained weights)",
            config.epochs, config.scaled_learning_rate, schedule="warmup_cosine", train_from=1, batchnorm=True,
            plateau=False, weight_decay=1e-4)]
    phases = [PhaseSpec(
        "phase1", "phase 1", f"Phase 1/2: train the top, backbone frozen, {plural(config.epochs, 'epoch')}, Adam lr "
        f"{config.scaled_learning_rate:g}", config.epochs, config.scaled_learning_rate, keep_end_weights=True)]
    if config.fine_tune_epochs:
        phases.append(PhaseSpec(
            "phase2", "phase 2", f"Phase 2/2: fine-tune stages {config.unfreeze_from}..5 + top, BatchNorm frozen, "
            f"{plural(config.fine_tune_epochs, 'epoch')}, Adam lr {config.scaled_fine_tune_lr:g}",
            config.fine_tune_epochs, config.scaled_fine_tune_lr, train_from=config.unfreeze_from,
            start_from_best=True))
    return phases


def compile_model(model, learning_rate, num_classes, jit, weight_decay=None):
    optimizer = (keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay) if weight_decay
                 else keras.optimizers.Adam(learning_rate))
    # weighted_metrics: validation's padding has sample weight 0 (tools/training/loader.py); plain `metrics`
    # would ignore the weights and count it
    model.compile(optimizer=optimizer, loss="categorical_crossentropy",
                  weighted_metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                           keras.metrics.TopKCategoricalAccuracy(k=min(5, num_classes), name="top5")],
                  jit_compile=jit)


def _learning_rate(spec, steps_per_epoch):
    if spec.schedule == "constant":
        return spec.learning_rate
    if spec.schedule == "warmup_cosine":
        steps = steps_per_epoch * spec.epochs
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=spec.learning_rate / 10, decay_steps=steps, alpha=FINAL_LR_SHARE,
            warmup_target=spec.learning_rate, warmup_steps=max(1, int(WARMUP_SHARE * steps)))
    raise ValueError(f"`schedule` must be 'constant' or 'warmup_cosine'. Received: schedule={spec.schedule!r}")


@dataclass
class Training:
    """What every phase of one run works on."""
    config: object  # TrainConfig (device-scaled)
    model: object  # the classifier (best.h5)
    trainer: object  # what fit trains
    train_seq: object
    val_seq: object
    num_classes: int
    jit: bool
    state: object  # RunState
    writer: object  # checkpoints.BackgroundWriter
    place: object = field(default_factory=lambda: Placement(contextlib.nullcontext()))  # devices.Placement
    phases: list = field(default_factory=list)  # the names of the phases run (history.csv)

    def feed(self, seq):
        """What fit takes for the loader `seq` (Placement.feed)."""
        return self.place.feed(seq, self.config.workers)


def run_recipe(t, specs):
    """Run each phase of `specs` in turn, epochs numbered on; returns the names of the phases (history.csv)."""
    end = 0
    for i, spec in enumerate(specs):
        then = specs[i + 1].label if i + 1 < len(specs) else "the outputs"
        end = run_phase(t, spec, end, then)
    return [spec.name for spec in specs]


def run_phase(t, spec, initial_epoch, then="the outputs"):
    """Train `spec` for its epochs from `initial_epoch` on, or what an interrupted run left of them, and
    record it as done; returns the epoch it ended at."""
    if spec.name in t.state.phases_done:
        end = t.state.phases_done[spec.name]
        log.info("%s finished in an earlier run (%s%s); going on with %s", spec.label, plural(end, "epoch"),
                 " in all" if initial_epoch else "", then)
        return end
    header(spec.title)
    output_dir, chief, collective = t.config.output_dir, t.place.chief, t.place.collective
    if spec.start_from_best:  # phase 1's best weights, else its last; read by the chief, taken by every worker
        best, end_weights = os.path.join(output_dir, MODEL_FILE), phase_end_path(output_dir, "phase1")
        keyed = [(v.path, v) for v in t.model.weights]
        values = None
        if chief and os.path.exists(best):
            values = read_weights(best, t.model)
        elif chief and os.path.exists(end_weights):
            values = read_variables(end_weights, keyed)
        if collective is not None:
            if collective.chief_json(values is not None):
                assign(t.model.weights, values, collective)
        elif values is not None:
            assign(t.model.weights, values)
    set_trainable_from(t.model, spec.train_from, batchnorm=spec.batchnorm)
    compile_model(t.trainer, _learning_rate(spec, len(t.train_seq)), t.num_classes, t.jit, spec.weight_decay)
    epochs = initial_epoch + spec.epochs
    signals = Signals()
    backup = PhaseBackup(backup_dir(output_dir, spec.name), t.trainer, t.state, t.writer,
                         every=t.config.backup_every, history=history_path(output_dir, spec.name), signals=signals,
                         collective=collective, chief=chief)
    start = backup.restore(initial_epoch, epochs, spec.name)
    if start < epochs and not backup.stopped:
        t.train_seq.set_epoch(start)
        log.info("compiling the training step: its first epoch takes longer...")
        monitor = "val_loss" if t.val_seq is not None else "loss"
        callbacks = make_callbacks(t.config, t.state, spec, monitor, t.model, t.writer, backup,
                                   len(t.train_seq) * t.train_seq.batch_size * t.place.workers, chief)
        train_input, val_input = t.feed(t.train_seq), t.feed(t.val_seq)
        # Keras ends the epoch of a loader it is given itself; of a pipeline made from one, EpochEnds does
        callbacks.append(EpochEnds([s for s, fed in ((t.train_seq, train_input), (t.val_seq, val_input))
                                    if fed is not s]))
        try:
            with signals.catching():
                # shuffle=False: the loader shuffles each epoch itself, seeded by the epoch; Keras' own shuffle
                # of a PyDataset's batch order draws from Python's global `random`, which a rerun cannot restore.
                history = t.trainer.fit(train_input, validation_data=val_input, epochs=epochs,
                                        initial_epoch=start, shuffle=False, callbacks=callbacks,
                                        verbose=1 if sys.stdout.isatty() else 2)
        except Interrupted as e:
            e.saved, e.others = (backup.save_latest(wait=True), False) if chief else (None, True)
            raise
        start += len(history.epoch)
    # a signal after the last epoch's check (while the last writes were waited for): the phase is finished
    # and recorded first, then the run stops, on every worker alike
    stop = signals.received is not None
    if collective is not None:
        stop = collective.any(stop)
    t.state.seeds = seed_states(t.trainer)  # where the next phase's generators start
    if spec.keep_end_weights and chief:
        write_variables(phase_end_path(output_dir, spec.name), [v.path for v in t.model.weights],
                        [keras.ops.convert_to_numpy(v) for v in t.model.weights])
    _finish(t, spec, start)
    if stop:
        raise Interrupted(signals.received, saved=start if chief else None, others=not chief)
    return start


def _finish(t, spec, end):
    """Record `spec` as done in state.json (so a rerun does not train it again), then drop its backups."""
    t.writer.wait()  # best.h5 and the last backup are on disk
    t.state.phases_done[spec.name] = end
    if not t.place.chief:
        return
    best = os.path.join(t.config.output_dir, MODEL_FILE)
    if not os.path.exists(best):  # no epoch ever improved (NaN): the outputs still need a model
        save_model_atomic(t.model, best)
    save_state(t.config.output_dir, t.state)
    shutil.rmtree(backup_dir(t.config.output_dir, spec.name), ignore_errors=True)
