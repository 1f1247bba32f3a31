"""Train the garbage classifier (ResNet50 + custom top) on garbage_classify_v2 or your own photos.

    python train.py                                  # Huawei data in ./garbage_classify_v2/train_data_v2
    python train.py --data_dir my_photos --weights none --input_size 128 --epochs 30
    python train.py --test_only --model output/best.h5 --data_dir other_labelled_dir

With ImageNet weights training runs in two phases: (1) the backbone is frozen and the top learns;
(2) backbone stages from --unfreeze_from on are fine-tuned at a lower learning rate with
BatchNormalization kept in inference mode. With --weights none the whole network trains from the
first epoch under a warm-up + cosine schedule. Killing the process at any moment and rerunning the
same command continues from the last finished epoch (a finished phase is not run again); --no_resume
starts over. Outputs (see --output_dir): best.h5, labels.json, history.csv/png, report.json/txt,
confusion_matrix.png.
"""

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time

from tools.quiet import import_keras_quietly

DEFAULT_DATA_DIR = "./garbage_classify_v2/train_data_v2"
log = logging.getLogger("train")


def get_args_parser(add_help=True):
    p = argparse.ArgumentParser(description=__doc__, add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data_dir", action="append", default=None,
                   help="img_N.jpg + img_N.txt folder, or one sub-folder per class; repeat it to train on several "
                        "folders that share one rule file, e.g. the photos server.py --collect gathered "
                        f"(default: {DEFAULT_DATA_DIR})")
    g.add_argument("--rule_file", default=None,
                   help="id -> 'category/name' JSON (default: garbage_classify_rule.json in data_dir or beside it)")
    g.add_argument("--num_classes", type=int, default=None,
                   help="number of classes; checked against the rule file (default: from the rule file)")
    g.add_argument("--val_split", type=float, default=0.1, help="validation share, stratified (default: %(default)s)")
    g.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="loader threads (default: %(default)s = CPU cores, at most 8)")
    g.add_argument("--label_smoothing", type=float, default=0.005, help="as in the original (default: %(default)s)")
    g = p.add_argument_group("model")
    g.add_argument("--input_size", type=int, default=224, help="square input side, >= 32 (default: %(default)s)")
    g.add_argument("--weights", default="imagenet",
                   help="backbone weights: imagenet (Keras cache ~/.keras/models), none (from scratch), "
                        "or PATH of a ResNet50 .h5 file (default: %(default)s)")
    g.add_argument("--mixed_precision", choices=("off", "float16", "bfloat16"), default="off",
                   help="compute dtype: float16 for NVIDIA GPUs, bfloat16 for TPUs/H100 (default: %(default)s)")
    g = p.add_argument_group("training")
    g.add_argument("--jit_compile", choices=("auto", "on", "off"), default="auto",
                   help="XLA compilation; auto = off on TensorFlow without a GPU (slower there), else on "
                        "(default: %(default)s)")
    g.add_argument("--batch_size", type=int, default=32,
                   help="images per step and device; the global batch is this x devices (default: %(default)s)")
    g.add_argument("--learning_rate", type=float, default=1e-3,
                   help="Adam learning rate for one device; multiplied by the number of devices "
                        "(linear scaling rule) under --strategy (default: %(default)s)")
    g.add_argument("--strategy", choices=("none", "mirrored", "multiworker", "data_parallel"), default="none",
                   help="several devices: mirrored = all GPUs of this machine (TensorFlow), multiworker = "
                        "several machines via TF_CONFIG (TensorFlow), data_parallel = all devices (JAX) "
                        "(default: %(default)s)")
    g.add_argument("--cpu_devices", type=int, default=0,
                   help="split the CPU into this many logical devices (to try --strategy without GPUs)")
    g.add_argument("--epochs", type=int, default=8,
                   help="epochs of phase 1 (head only), or of the whole run with --weights none (default: %(default)s)")
    g.add_argument("--fine_tune_epochs", type=int, default=4,
                   help="epochs of phase 2 (fine-tuning); ignored with --weights none (default: %(default)s)")
    g.add_argument("--fine_tune_lr", type=float, default=None, help="phase 2 learning rate (default: learning_rate / 10)")
    g.add_argument("--unfreeze_from", type=int, default=4, choices=range(1, 6),
                   help="phase 2 trains backbone stages from this one on, 1..5 (default: %(default)s)")
    g.add_argument("--patience", type=int, default=5, help="EarlyStopping patience in epochs (default: %(default)s)")
    g.add_argument("--seed", type=int, default=233, help="split, shuffling, augmentation, init (default: %(default)s)")
    g = p.add_argument_group("output and evaluation")
    g.add_argument("--output_dir", default="./output/", help="where best.h5 and the reports go (default: %(default)s)")
    g.add_argument("--test_only", action="store_true",
                   help="only evaluate --model on every image of --data_dir and write the report")
    g.add_argument("--model", default=None,
                   help="model for --test_only: a path or an http(s) URL of a published best.h5 (default: "
                        "OUTPUT_DIR/best.h5)")
    g.add_argument("--model_sha256", metavar="HEX", default=None,
                   help="sha256 the --model file must have; a URL's download that differs is refused and not cached")
    g.add_argument("--report_dir", default=None,
                   help="where --test_only writes its report (default: OUTPUT_DIR/test_<data folder name>/, never "
                        "over the training run's report)")
    g.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard logs (train and validation scalars, learning rate) to "
                        "OUTPUT_DIR/logs/: tensorboard --logdir output/logs")
    g.add_argument("--no_resume", action="store_true",
                   help="start over even if a run was interrupted (by default a rerun of the same command "
                        "continues from the last finished epoch kept in OUTPUT_DIR/.backup)")
    return p


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


def check_args(args):
    if args.input_size < 32:
        raise UsageError(f"--input_size must be >= 32, got {args.input_size}")
    for name in ("batch_size", "workers"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.epochs < 1 or args.fine_tune_epochs < 0:
        raise UsageError("--epochs must be >= 1 and --fine_tune_epochs >= 0")
    if not 0 <= args.val_split < 1:
        raise UsageError(f"--val_split must be in [0, 1), got {args.val_split}")
    if args.learning_rate <= 0:
        raise UsageError(f"--learning_rate must be > 0, got {args.learning_rate}")
    if not 0 <= args.label_smoothing < 1:
        raise UsageError(f"--label_smoothing must be in [0, 1), got {args.label_smoothing}")
    if args.weights not in ("imagenet", "none") and not os.path.isfile(args.weights):
        raise UsageError(f"--weights must be imagenet, none or an existing .h5 file; no file at {args.weights}")


def no_data_message(data_dir, reason):
    from tools.data.check import HUAWEI_URL

    return (f"{reason}.\nPut the Huawei garbage_classify_v2 images there (img_N.jpg + img_N.txt, "
            f"garbage_classify_rule.json beside the folder): download {HUAWEI_URL} and unzip it into "
            f"./garbage_classify_v2/, or point --data_dir at your own photos (one sub-folder per class). "
            f"See README.md, section Data.")


def phase_header(text):
    log.info("\n==> %s", text)


# --------------------------------------------------------------------------- callbacks
def make_callbacks(keras, args, state, phase, monitor, plateau, restored=None):
    """Callbacks of one phase. Defined here (not at import) so importing train.py loads no Keras.
    `restored`: the backup the phase resumes from (tools.training.resume.restore), for the callbacks' counters."""
    from models.saving import save_model_atomic
    from tools.training.resume import EpochBackup

    class AtomicBestCheckpoint(keras.callbacks.Callback):
        """ModelCheckpoint(save_best_only) that writes best.h5 for inference (no optimizer state)
        through a temporary file and os.replace, so a crash mid-write never leaves a broken file,
        and remembers the best value across phases and restarts in `state` (which each epoch
        backup and, at a phase's end, state.json carry)."""

        def __init__(self, path):
            super().__init__()
            self.path = path

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(monitor)
            if value is None or not math.isfinite(value) or value >= state.get("best_value", math.inf):
                return
            save_model_atomic(self.model, self.path)
            state.update(best_value=float(value), best_epoch=epoch + 1,
                         best_val_accuracy=(logs or {}).get("val_accuracy"), best_phase=phase)
            log.info("epoch %d: %s improved to %.4f, saved %s", epoch + 1, monitor, value, self.path)

    class Throughput(keras.callbacks.Callback):
        """Training images/s, counting only the training batches (not validation)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.last = time.perf_counter(), None

        def on_train_batch_end(self, batch, logs=None):
            self.last = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if self.last is not None:
                state["train_seconds"] = state.get("train_seconds", 0.0) + (self.last - self.start)
                state["train_images"] = state.get("train_images", 0) + state["images_per_epoch"]

    counters = [keras.callbacks.EarlyStopping(monitor=monitor, patience=args.patience)]
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        AtomicBestCheckpoint(os.path.join(args.output_dir, "best.h5")),
        counters[0],
        keras.callbacks.CSVLogger(history_path(args.output_dir, phase), append=True),
        Throughput(),
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


# --------------------------------------------------------------------------- run state
# OUTPUT_DIR/.backup holds what a rerun needs: state.json (written at each phase's end: which phases
# are done, best value so far), one folder per unfinished phase with its epoch backups
# (tools/training/resume.py), phase1_end.weights.h5. Every file there is replaced atomically, never rewritten.
def state_path(output_dir):
    return os.path.join(output_dir, ".backup", "state.json")


def backup_dir(output_dir, phase):
    return os.path.join(output_dir, ".backup", phase)


def history_path(output_dir, phase):
    return os.path.join(output_dir, f".history_{phase}.csv")


def load_state(output_dir):
    try:
        with open(state_path(output_dir)) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return {}


def save_state(output_dir, state):
    from tools.training.resume import write_json_atomic

    os.makedirs(os.path.dirname(state_path(output_dir)), exist_ok=True)
    write_json_atomic(state_path(output_dir), state)


def remove_backups(output_dir):
    """Delete .backup once the run is finished, state.json last: until then a rerun still sees the
    finished state and just writes the outputs again."""
    folder = os.path.join(output_dir, ".backup")
    for entry in os.scandir(folder) if os.path.isdir(folder) else ():
        if entry.is_dir():
            shutil.rmtree(entry.path, ignore_errors=True)
        elif entry.path != state_path(output_dir):
            os.remove(entry.path)
    shutil.rmtree(folder, ignore_errors=True)


def merge_histories(output_dir, phases):
    """history.csv from the per-phase CSVLogger files; a row repeated by a restart keeps its last copy."""
    import csv

    rows, fields = {}, ["epoch"]
    for phase in phases:
        path = history_path(output_dir, phase)
        if not os.path.exists(path):
            continue
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                rows[int(row["epoch"])] = row
                fields += [k for k in row if k not in fields]
    out = os.path.join(output_dir, "history.csv")
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for epoch in sorted(rows):
            writer.writerow(rows[epoch])
    return out


# --------------------------------------------------------------------------- phases
def use_jit(keras, choice):
    if choice != "auto":
        return choice == "on"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # only to ask whether a GPU is present

        return bool(tf.config.list_physical_devices("GPU"))
    return True


def compile_model(keras, model, learning_rate, num_classes, jit, weight_decay=None):
    optimizer = (keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay) if weight_decay
                 else keras.optimizers.Adam(learning_rate))
    model.compile(optimizer=optimizer, loss="categorical_crossentropy",
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                           keras.metrics.TopKCategoricalAccuracy(k=min(5, num_classes), name="top5")],
                  jit_compile=jit)


def fit_phase(keras, model, args, state, phase, train_seq, val_seq, initial_epoch, epochs, plateau):
    """Train epochs initial_epoch..epochs-1, or what an interrupted run left of them; returns the end epoch."""
    from tools.training.resume import drop_history_rows, restore

    monitor = "val_loss" if val_seq is not None else "loss"
    folder = backup_dir(args.output_dir, phase)
    restored = restore(model, folder, log.warning)
    start = initial_epoch
    if restored is not None:
        state.update(restored.get("state", {}))
        start = max(initial_epoch, int(restored["epoch"]))
        if restored.get("stopped") or start >= epochs:
            log.info("%s ended after epoch %d in an earlier run (backup in %s)", phase, start, folder)
        else:
            log.info("resuming %s from epoch %d (backup in %s)", phase, start + 1, folder)
    drop_history_rows(history_path(args.output_dir, phase), start)  # epochs from `start` on run (again)
    if start >= epochs or (restored or {}).get("stopped"):
        return start
    train_seq.set_epoch(start)
    history = model.fit(train_seq, validation_data=val_seq, epochs=epochs, initial_epoch=start,
                        callbacks=make_callbacks(keras, args, state, phase, monitor, plateau, restored),
                        verbose=1 if sys.stdout.isatty() else 2)
    return start + len(history.epoch)


def finish_phase(model, args, state, phase, end):
    """Record `phase` as done in state.json (so a rerun does not train it again), then drop its backups."""
    from models.saving import save_model_atomic

    best = os.path.join(args.output_dir, "best.h5")
    if not os.path.exists(best):  # no epoch ever improved (NaN): the outputs still need a model
        save_model_atomic(model, best)
    state.update({f"{phase}_done": True, f"{phase}_epochs": end})
    save_state(args.output_dir, state)
    shutil.rmtree(backup_dir(args.output_dir, phase), ignore_errors=True)


def train(args):
    import keras

    from tools.data.layout import DataError, data_flow

    t0 = time.time()
    scope, replicas = distribution(keras, args)
    os.makedirs(args.output_dir, exist_ok=True)
    if args.no_resume and os.path.isdir(os.path.join(args.output_dir, ".backup")):
        shutil.rmtree(os.path.join(args.output_dir, ".backup"))
    from tools.training.resume import remove_stale_temp_files

    stale = remove_stale_temp_files(args.output_dir)
    if stale:
        log.info("removed %d temporary file(s) an interrupted run left: %s", len(stale),
                 ", ".join(os.path.relpath(p, args.output_dir) for p in stale))
    keras.utils.set_random_seed(args.seed)
    if args.mixed_precision != "off":
        keras.mixed_precision.set_global_policy(f"mixed_{args.mixed_precision}")

    phase_header(f"Data: {', '.join(args.data_dir)}")
    if replicas > 1:
        log.info("%d devices (%s): global batch %d x %d = %d, learning rate %g x %d = %g", replicas, args.strategy,
                 args.batch_size, replicas, args.batch_size * replicas, args.learning_rate, replicas,
                 args.learning_rate * replicas)
        args.learning_rate *= replicas
        if args.fine_tune_lr:
            args.fine_tune_lr *= replicas
    try:
        train_seq, val_seq, ds = data_flow(
            args.data_dir if len(args.data_dir) > 1 else args.data_dir[0], args.rule_file, args.num_classes, batch_size=args.batch_size * replicas,
            input_size=args.input_size, val_split=args.val_split, seed=args.seed,
            label_smoothing=args.label_smoothing, workers=args.workers, print_fn=log.info)
    except DataError as e:
        raise UsageError(str(e)) from None
    num_classes = len(ds.class_names)
    from tools.contract import write_labels

    write_labels(args.output_dir, ds.class_names, args.input_size)

    with scope:
        return _train_in_scope(keras, args, t0, train_seq, val_seq, ds, num_classes)


def _train_in_scope(keras, args, t0, train_seq, val_seq, ds, num_classes):
    """Model building and both phases; under a distribution strategy's scope when one is used."""
    from models.classifier import build_classifier, set_trainable_from
    from models.weights import WeightsUnavailableError
    from models.saving import load_model, save_model_atomic
    from tools.training.resume import save_weights_atomic

    from_scratch = args.weights == "none"
    jit = use_jit(keras, args.jit_compile)
    phase_header(f"Model: ResNet50 + custom top, {num_classes} classes, {args.input_size}px, "
                 f"weights={args.weights}, backend={keras.backend.backend()}, jit_compile={jit}")
    try:
        model = build_classifier(num_classes, args.input_size, weights=None if from_scratch else args.weights)
    except WeightsUnavailableError as e:
        raise UsageError(str(e)) from None
    except ValueError as e:
        raise UsageError(f"--weights {args.weights}: {e}") from None

    state = load_state(args.output_dir)
    state["images_per_epoch"] = len(train_seq.paths)
    phases = []
    if from_scratch:
        phases.append("scratch")
        if state.get("scratch_done"):
            log.info("training finished in an earlier run (%d epochs); going on with the outputs",
                     state["scratch_epochs"])
        else:
            steps = len(train_seq) * args.epochs
            schedule = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=args.learning_rate / 10, decay_steps=steps, alpha=0.01,
                warmup_target=args.learning_rate, warmup_steps=max(1, int(0.1 * steps)))
            phase_header(f"Training from scratch: all layers, {args.epochs} epochs, warm-up + cosine to lr "
                         f"{args.learning_rate:g} (--fine_tune_epochs is not used without pretrained weights)")
            set_trainable_from(model, 1)
            for layer in model.layers:  # BN learns its statistics when nothing is pretrained
                layer.trainable = True
            compile_model(keras, model, schedule, num_classes, jit, weight_decay=1e-4)
            end = fit_phase(keras, model, args, state, "scratch", train_seq, val_seq, 0, args.epochs,
                            plateau=False)
            state["phase1_epochs"] = end
            finish_phase(model, args, state, "scratch", end)
    else:
        phases.append("phase1")
        if state.get("phase1_done"):
            log.info("phase 1 finished in an earlier run (%d epochs); going on with phase 2", state["phase1_epochs"])
            end = state["phase1_epochs"]
        else:
            phase_header(f"Phase 1/2: train the top, backbone frozen, {args.epochs} epochs, "
                         f"Adam lr {args.learning_rate:g}")
            set_trainable_from(model, 6)
            compile_model(keras, model, args.learning_rate, num_classes, jit)
            end = fit_phase(keras, model, args, state, "phase1", train_seq, val_seq, 0, args.epochs, plateau=True)
            save_weights_atomic(model, os.path.join(args.output_dir, ".backup", "phase1_end.weights.h5"))
            finish_phase(model, args, state, "phase1", end)
        if args.fine_tune_epochs:
            phases.append("phase2")
            if state.get("phase2_done"):
                log.info("phase 2 finished in an earlier run (%d epochs in all); going on with the outputs",
                         state["phase2_epochs"])
            else:
                lr = args.fine_tune_lr or args.learning_rate / 10
                phase_header(f"Phase 2/2: fine-tune stages {args.unfreeze_from}..5 + top, BatchNorm frozen, "
                             f"{args.fine_tune_epochs} epochs, Adam lr {lr:g}")
                best = os.path.join(args.output_dir, "best.h5")
                start = os.path.join(args.output_dir, ".backup", "phase1_end.weights.h5")
                if os.path.exists(best):
                    model.set_weights(load_model(best).get_weights())
                elif os.path.exists(start):
                    model.load_weights(start)
                set_trainable_from(model, args.unfreeze_from)
                compile_model(keras, model, lr, num_classes, jit)
                end2 = fit_phase(keras, model, args, state, "phase2", train_seq, val_seq, end,
                                 end + args.fine_tune_epochs, plateau=True)
                finish_phase(model, args, state, "phase2", end2)

    phase_header("Outputs")
    history_csv = merge_histories(args.output_dir, phases)
    from tools.training.report import plot_history, read_history

    plot_history(read_history(history_csv), os.path.join(args.output_dir, "history.png"),
                 phase_boundary=state.get("phase1_epochs") if len(phases) > 1 else None)
    best_path = os.path.join(args.output_dir, "best.h5")
    if not os.path.exists(best_path):  # every epoch NaN / no improvement ever recorded
        save_model_atomic(model, best_path)
    if val_seq is not None:
        best_model = load_model(best_path)
        report = evaluate(best_model, val_seq, ds.class_names, args.output_dir)
        log.info("validation: top-1 %.4f, per-class mean %.4f, bin accuracy %.4f",
                 report["top1"], report["per_class_mean_accuracy"], report["bin_accuracy"])
    wall = time.time() - t0
    ips = state.get("train_images", 0) / state["train_seconds"] if state.get("train_seconds") else float("nan")
    state["finished"] = True
    save_state(args.output_dir, state)
    remove_backups(args.output_dir)
    acc = state.get("best_val_accuracy")
    print(f"best val_accuracy {acc if acc is None else f'{acc:.4f}'} at epoch {state.get('best_epoch')} | "
          f"wall {wall / 60:.1f} min | {ips:.1f} training images/s | outputs in {args.output_dir}", flush=True)
    return 0


def distribution(keras, args):
    """(scope, number of devices) for --strategy; logical CPU devices for --cpu_devices."""
    import contextlib

    backend = keras.backend.backend()
    if args.strategy in ("mirrored", "multiworker") and backend != "tensorflow":
        raise UsageError(f"--strategy {args.strategy} needs the TensorFlow backend; on {backend} use "
                         f"--strategy data_parallel")
    if args.strategy == "data_parallel" and backend != "jax":
        raise UsageError("--strategy data_parallel is the JAX backend's; on TensorFlow use --strategy mirrored")
    if backend == "tensorflow" and args.cpu_devices > 1:
        import tensorflow as tf  # tf.distribute is what this is for

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.cpu_devices)
    if args.strategy == "none":
        return contextlib.nullcontext(), 1
    if args.strategy == "data_parallel":
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        return contextlib.nullcontext(), len(devices)
    import tensorflow as tf

    if args.strategy == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices)
    return strategy.scope(), strategy.num_replicas_in_sync


def evaluate(model, sequence, class_names, output_dir):
    """Predict every batch of `sequence` and write report.json/txt + confusion_matrix.png."""
    import numpy as np

    from tools.training.report import classification_report, write_report

    probs = model.predict(sequence, verbose=0)
    y_true = np.asarray(sequence.labels)[np.asarray(sequence.order)]
    report = classification_report(y_true, np.asarray(probs, dtype=np.float64), class_names)
    write_report(report, output_dir, class_names)
    return report


def test_only(args):
    from tools.data.layout import DataError, load_datasets
    from tools.training.loader import GarbageClassifySequence
    from models.saving import load_model
    from tools.model_source import ModelSourceError, resolve_model

    try:
        model_path = resolve_model(args.model or os.path.join(args.output_dir, "best.h5"), args.model_sha256)
    except ModelSourceError as e:
        raise UsageError(str(e)) from None
    labels_path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "labels.json")
    if not os.path.isfile(model_path):
        raise UsageError(f"no model at {model_path}; train one first or pass --model")
    if not os.path.isfile(labels_path):
        raise UsageError(f"no labels.json beside {model_path}")
    with open(labels_path, encoding="utf-8") as f:
        meta = json.load(f)
    try:
        ds = load_datasets(args.data_dir, args.rule_file, args.num_classes)
    except DataError as e:
        raise UsageError(str(e)) from None
    if ds.class_names != meta["labels"]:
        raise UsageError(f"the classes of {', '.join(args.data_dir)} ({len(ds.class_names)}) differ from the model's "
                         f"labels.json ({len(meta['labels'])})")
    report_dir = args.report_dir or os.path.join(args.output_dir, "test_" + "+".join(map(data_name, args.data_dir)))
    phase_header(f"Test only: {model_path} on {len(ds.paths)} images of {', '.join(args.data_dir)}")
    model = load_model(model_path)
    size = int(model.input_shape[1])
    seq = GarbageClassifySequence(ds.paths, ds.labels, len(ds.class_names), batch_size=args.batch_size,
                                  input_size=size, training=False, workers=args.workers)
    os.makedirs(report_dir, exist_ok=True)
    report = evaluate(model, seq, ds.class_names, report_dir)
    print(f"test top-1 {report['top1']:.4f} | per-class mean {report['per_class_mean_accuracy']:.4f} | "
          f"bin accuracy {report['bin_accuracy']:.4f} | {report['images']} images | report in {report_dir}",
          flush=True)
    return 0


def tensorboard_available():
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("tensorflow", "tensorboard"))


def data_name(data_dir):
    """A data folder's name for the report folder: its parent's when it is the layout's train_data_v2."""
    parts = os.path.normpath(os.path.abspath(data_dir)).split(os.sep)
    return parts[-2] if parts[-1] == "train_data_v2" and len(parts) > 1 else parts[-1]


def main(args):
    if args.cpu_devices > 1 and os.environ.get("KERAS_BACKEND") == "jax":  # must precede importing jax
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.cpu_devices}").strip()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("tools").setLevel(logging.INFO)
    args.data_dir = args.data_dir or [DEFAULT_DATA_DIR]
    try:
        check_args(args)
        if not args.test_only:
            for data_dir in args.data_dir:
                if not os.path.isdir(data_dir):
                    raise UsageError(no_data_message(data_dir, f"No training data at {data_dir}"))
                if not any(os.scandir(data_dir)):
                    raise UsageError(no_data_message(data_dir, f"The data folder {data_dir} is empty"))
        if args.tensorboard and not tensorboard_available():
            raise UsageError("--tensorboard writes through TensorFlow's tf.summary and the tensorboard package: "
                             "pip install -r requirements.txt, or leave --tensorboard out")
        import_keras_quietly()
        return test_only(args) if args.test_only else train(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to continue from the last finished epoch", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
