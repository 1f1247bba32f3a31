"""The two training recipes, phase by phase, each phase resumable after a kill.

With pretrained weights (ImageNet or a file): phase 1 trains the top with the backbone frozen,
phase 2 fine-tunes backbone stages --unfreeze_from..5 at a lower learning rate with
BatchNormalization kept in inference mode. With --weights none: one "scratch" phase trains the
whole network under a warm-up + cosine schedule. A phase that state.json records as done is not
run again; an interrupted one continues from its last epoch backup (tools/training/resume.py).

Two models take part: `model`, the classifier that best.h5 holds, and `trainer`, what `fit` trains:
the classifier behind the augmentation block of --augment (models/augmentation.py), or the classifier
itself. They share every weight; trainable flags are set on the classifier's layers.
"""

import logging
import os
import shutil
import sys

import keras

from models.classifier import set_trainable_from
from models.saving import load_model, save_model_atomic
from tools.contract import MODEL_FILE
from tools.training.callbacks import make_callbacks
from tools.training.resume import drop_history_rows, restore, save_weights_atomic, seed_states, set_seed_states
from tools.training.state import backup_dir, history_path, phase1_end_path, save_state

log = logging.getLogger(__name__)


def header(text):
    """A section of the training log: an empty line, then "==> text"."""
    log.info("\n==> %s", text)


def compile_model(model, learning_rate, num_classes, jit, weight_decay=None):
    optimizer = (keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay) if weight_decay
                 else keras.optimizers.Adam(learning_rate))
    model.compile(optimizer=optimizer, loss="categorical_crossentropy",
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                           keras.metrics.TopKCategoricalAccuracy(k=min(5, num_classes), name="top5")],
                  jit_compile=jit)


def fit_phase(model, trainer, args, state, phase, train_seq, val_seq, initial_epoch, epochs, plateau):
    """Train epochs initial_epoch..epochs-1, or what an interrupted run left of them; returns the end epoch."""
    monitor = "val_loss" if val_seq is not None else "loss"
    folder = backup_dir(args.output_dir, phase)
    restored = restore(trainer, folder, log.warning)  # the trainer's variables include augmentation's seeds
    start = initial_epoch
    if restored is None and state.get("seeds"):
        # a phase starting afresh goes on from the random generators' states the phase before ended with,
        # as it does in an uninterrupted run (a no-op there); a rerun after a kill between phases needs it
        set_seed_states(trainer, state["seeds"])
    if restored is not None:
        state.update(restored.get("state", {}))
        start = max(initial_epoch, int(restored["epoch"]))
        if restored.get("stopped") or start >= epochs:
            log.info("%s ended after epoch %d in an earlier run (backup in %s)", phase, start, folder)
        else:
            log.info("resuming %s from epoch %d (backup in %s)", phase, start + 1, folder)
    drop_history_rows(history_path(args.output_dir, phase), start)  # epochs from `start` on run (again)
    if start >= epochs or (restored or {}).get("stopped"):
        state["seeds"] = seed_states(trainer)  # as the backup left them
        return start
    train_seq.set_epoch(start)
    # shuffle=False: the loader shuffles each epoch itself, seeded by the epoch; Keras' own shuffle of a
    # PyDataset's batch order draws from Python's global `random`, which a resumed run cannot restore.
    history = trainer.fit(train_seq, validation_data=val_seq, epochs=epochs, initial_epoch=start, shuffle=False,
                          callbacks=make_callbacks(args, state, phase, monitor, plateau, restored, model),
                          verbose=1 if sys.stdout.isatty() else 2)
    state["seeds"] = seed_states(trainer)  # for the next phase (saved in state.json by finish_phase)
    return start + len(history.epoch)


def finish_phase(model, args, state, phase, end):
    """Record `phase` as done in state.json (so a rerun does not train it again), then drop its backups."""
    best = os.path.join(args.output_dir, MODEL_FILE)
    if not os.path.exists(best):  # no epoch ever improved (NaN): the outputs still need a model
        save_model_atomic(model, best)
    state.update({f"{phase}_done": True, f"{phase}_epochs": end})
    save_state(args.output_dir, state)
    shutil.rmtree(backup_dir(args.output_dir, phase), ignore_errors=True)


def run_recipe(model, trainer, args, state, train_seq, val_seq, num_classes, jit):
    """Train `model` (through `trainer`) by the recipe of --weights; returns the names of its phases (for history.csv)."""
    if args.weights == "none":
        _scratch(model, trainer, args, state, train_seq, val_seq, num_classes, jit)
        return ["scratch"]
    end = _phase1(model, trainer, args, state, train_seq, val_seq, num_classes, jit)
    if not args.fine_tune_epochs:
        return ["phase1"]
    _phase2(model, trainer, args, state, train_seq, val_seq, num_classes, jit, end)
    return ["phase1", "phase2"]


def _scratch(model, trainer, args, state, train_seq, val_seq, num_classes, jit):
    if state.get("scratch_done"):
        log.info("training finished in an earlier run (%d epochs); going on with the outputs", state["scratch_epochs"])
        return
    steps = len(train_seq) * args.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=args.learning_rate / 10, decay_steps=steps, alpha=0.01,
        warmup_target=args.learning_rate, warmup_steps=max(1, int(0.1 * steps)))
    header(f"Training from scratch: all layers, {args.epochs} epochs, warm-up + cosine to lr "
           f"{args.learning_rate:g} (--fine_tune_epochs is not used without pretrained weights)")
    set_trainable_from(model, 1, batchnorm=True)  # BN learns its statistics when nothing is pretrained
    compile_model(trainer, schedule, num_classes, jit, weight_decay=1e-4)
    end = fit_phase(model, trainer, args, state, "scratch", train_seq, val_seq, 0, args.epochs, plateau=False)
    state["phase1_epochs"] = end
    finish_phase(model, args, state, "scratch", end)


def _phase1(model, trainer, args, state, train_seq, val_seq, num_classes, jit):
    """Phase 1 (or its record from an earlier run); returns the epoch it ended at."""
    if state.get("phase1_done"):
        log.info("phase 1 finished in an earlier run (%d epochs); going on with phase 2", state["phase1_epochs"])
        return state["phase1_epochs"]
    header(f"Phase 1/2: train the top, backbone frozen, {args.epochs} epochs, Adam lr {args.learning_rate:g}")
    set_trainable_from(model, 6)
    compile_model(trainer, args.learning_rate, num_classes, jit)
    end = fit_phase(model, trainer, args, state, "phase1", train_seq, val_seq, 0, args.epochs, plateau=True)
    save_weights_atomic(model, phase1_end_path(args.output_dir))
    finish_phase(model, args, state, "phase1", end)
    return end


def _phase2(model, trainer, args, state, train_seq, val_seq, num_classes, jit, start_epoch):
    if state.get("phase2_done"):
        log.info("phase 2 finished in an earlier run (%d epochs in all); going on with the outputs",
                 state["phase2_epochs"])
        return
    lr = args.fine_tune_lr or args.learning_rate / 10
    header(f"Phase 2/2: fine-tune stages {args.unfreeze_from}..5 + top, BatchNorm frozen, "
           f"{args.fine_tune_epochs} epochs, Adam lr {lr:g}")
    best, start = os.path.join(args.output_dir, MODEL_FILE), phase1_end_path(args.output_dir)
    if os.path.exists(best):
        model.set_weights(load_model(best).get_weights())
    elif os.path.exists(start):
        model.load_weights(start)
    set_trainable_from(model, args.unfreeze_from)
    compile_model(trainer, lr, num_classes, jit)
    end = fit_phase(model, trainer, args, state, "phase2", train_seq, val_seq, start_epoch,
                    start_epoch + args.fine_tune_epochs, plateau=True)
    finish_phase(model, args, state, "phase2", end)
