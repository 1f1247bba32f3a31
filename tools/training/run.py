"""train.py's work once its flags are checked: a training run (set-up, data, model, the recipe, outputs)
or --test_only's evaluation of a model on a labelled folder.

Importing this loads Keras: train.py does it only after tools.quiet has hidden TensorFlow's start-up noise.
"""

import logging
import os
import shutil
import time

import keras

from models.augmentation import build_augmentation, training_model
from models.classifier import build_classifier
from models.saving import load_model, save_model_atomic
from models.weights import WeightsUnavailableError
from tools.contract import (CAFFE, MODEL_FILE, ModelFilesError, calibration_of, input_contract, load_labels,
                            write_calibration, write_labels)
from tools.data.layout import DataError, data_flow, load_datasets
from tools.inference import check_input_dtype
from tools.model_source import ModelSourceError, resolve_model
from tools.training.devices import backend_devices, device_report, distribution, nvidia_smi_gpus, use_jit
from tools.training.loader import GarbageClassifySequence
from tools.training.phases import header, run_recipe
from tools.training.report import calibration_summary, evaluate, plot_history, read_history
from tools.training.resume import remove_stale_temp_files
from tools.training.state import backup_root, load_state, merge_histories, remove_backups, save_state
from tools.training.usage import UsageError

log = logging.getLogger(__name__)


def main(args):
    """--test_only's evaluation, else training; UsageError for bad input found on the way."""
    return test_only(args) if args.test_only else train(args)


def train(args):
    t0 = time.time()
    scope, replicas = distribution(args)
    os.makedirs(args.output_dir, exist_ok=True)
    if args.no_resume and os.path.isdir(backup_root(args.output_dir)):
        shutil.rmtree(backup_root(args.output_dir))
    _refuse_an_older_interrupted_run(args.output_dir)
    stale = remove_stale_temp_files(args.output_dir)
    if stale:
        log.info("removed %d temporary file(s) an interrupted run left: %s", len(stale),
                 ", ".join(os.path.relpath(p, args.output_dir) for p in stale))
    keras.utils.set_random_seed(args.seed)
    if args.mixed_precision != "off":
        keras.mixed_precision.set_global_policy(f"mixed_{args.mixed_precision}")

    header(f"Data: {', '.join(args.data_dir)}")
    if replicas > 1:
        log.info("%d devices (%s): global batch %d x %d = %d, learning rate %g x %d = %g", replicas, args.strategy,
                 args.batch_size, replicas, args.batch_size * replicas, args.learning_rate, replicas,
                 args.learning_rate * replicas)
        args.learning_rate *= replicas
        if args.fine_tune_lr:
            args.fine_tune_lr *= replicas
    try:
        train_seq, val_seq, ds = data_flow(
            args.data_dir if len(args.data_dir) > 1 else args.data_dir[0], args.rule_file, args.num_classes,
            batch_size=args.batch_size * replicas, input_size=args.input_size, val_split=args.val_split,
            seed=args.seed, label_smoothing=args.label_smoothing, workers=args.workers, print_fn=log.info,
            cache=args.cache, cache_dir=os.path.join(args.output_dir, "cache"))
    except DataError as e:
        raise UsageError(str(e)) from None
    write_labels(args.output_dir, ds.class_names, args.input_size)
    with scope:
        return _train_in_scope(args, t0, train_seq, val_seq, ds)


def _refuse_an_older_interrupted_run(output_dir):
    """An interrupted run whose model takes preprocessed floats (written before models took uint8 pixels)
    cannot go on with this version: its best.h5 and backups have another input. UsageError saying what to do."""
    if not os.path.isdir(backup_root(output_dir)):
        return
    try:
        _, meta = load_labels(os.path.join(output_dir, MODEL_FILE))
        older = input_contract(meta) == CAFFE
    except ModelFilesError:
        return  # no readable labels.json: nothing trained that this run could mix with
    if older:
        raise UsageError(f"{output_dir} holds an interrupted run of an older version (its model takes preprocessed "
                         "floats): finish it with that version, or start over here with --no_resume, or use another "
                         "--output_dir")


def _train_in_scope(args, t0, train_seq, val_seq, ds):
    """Model building, the recipe's phases and the outputs; under a distribution strategy's scope when one is used."""
    num_classes = len(ds.class_names)
    jit = use_jit(args.jit_compile)
    header(f"Model: ResNet50 + custom top, {num_classes} classes, {args.input_size}px, "
           f"weights={args.weights}, backend={keras.backend.backend()}, jit_compile={jit}, augment={args.augment}")
    line, warning = device_report(*backend_devices(), nvidia_smi_gpus(), keras.backend.backend())
    log.info(line)
    if warning:
        log.warning(warning)
    try:
        model = build_classifier(num_classes, args.input_size, weights=None if args.weights == "none" else args.weights)
    except WeightsUnavailableError as e:
        raise UsageError(str(e)) from None
    except ValueError as e:
        raise UsageError(f"--weights {args.weights}: {e}") from None

    state = load_state(args.output_dir)
    state["images_per_epoch"] = len(train_seq.paths)
    # The augmentation block runs inside the train step, on the device; best.h5 is the classifier without it.
    trainer = training_model(model, build_augmentation(args.augment, args.input_size, seed=args.seed))
    phases = run_recipe(model, trainer, args, state, train_seq, val_seq, num_classes, jit)

    header("Outputs")
    history_csv = merge_histories(args.output_dir, phases)
    plot_history(read_history(history_csv), os.path.join(args.output_dir, "history.png"),
                 phase_boundary=state.get("phase1_epochs") if len(phases) > 1 else None)
    best_path = os.path.join(args.output_dir, MODEL_FILE)
    if not os.path.exists(best_path):  # every epoch NaN / no improvement ever recorded
        save_model_atomic(model, best_path)
    if val_seq is not None:
        report = evaluate(load_model(best_path), val_seq, ds.class_names, args.output_dir,
                          target_accuracy=args.target_accuracy)
        c = report["calibration"]
        write_calibration(args.output_dir, c["temperature"], c["threshold"], c["target_accuracy"])
        log.info("validation: top-1 %.4f, per-class mean %.4f, bin accuracy %.4f (always the most common bin: %.4f)",
                 report["top1"], report["per_class_mean_accuracy"], report["bin_accuracy"],
                 report["bin_majority_baseline"])
        log.info(calibration_summary(c))
    wall = time.time() - t0
    ips = state.get("train_images", 0) / state["train_seconds"] if state.get("train_seconds") else float("nan")
    seconds = state.get("steady_seconds", [])
    steady = (f" ({state['images_per_epoch'] * len(seconds) / sum(seconds):.1f} after the first epoch, "
              "which compiles)" if seconds and sum(seconds) > 0 else "")
    state["finished"] = True
    save_state(args.output_dir, state)
    remove_backups(args.output_dir)
    acc = state.get("best_val_accuracy")
    print(f"best val_accuracy {acc if acc is None else f'{acc:.4f}'} at epoch {state.get('best_epoch')} | "
          f"wall {wall / 60:.1f} min | {ips:.1f} training images/s{steady} | outputs in {args.output_dir}", flush=True)
    return 0


def data_name(data_dir):
    """A data folder's name for the report folder: its parent's when it is the layout's train_data_v2."""
    parts = os.path.normpath(os.path.abspath(data_dir)).split(os.sep)
    return parts[-2] if parts[-1] == "train_data_v2" and len(parts) > 1 else parts[-1]


def test_only(args):
    """Score --model on every image of --data_dir; the report goes to --report_dir."""
    try:
        model_path = resolve_model(args.model or os.path.join(args.output_dir, MODEL_FILE), args.model_sha256)
    except ModelSourceError as e:
        raise UsageError(str(e)) from None
    if not os.path.isfile(model_path):
        raise UsageError(f"no model at {model_path}; train one first or pass --model")
    try:
        labels, meta = load_labels(model_path)
        ds = load_datasets(args.data_dir, args.rule_file, args.num_classes)
    except (ModelFilesError, DataError) as e:
        raise UsageError(str(e)) from None
    if ds.class_names != labels:
        raise UsageError(f"the classes of {', '.join(args.data_dir)} ({len(ds.class_names)}) differ from the model's "
                         f"labels.json ({len(labels)})")
    report_dir = args.report_dir or os.path.join(args.output_dir, "test_" + "+".join(map(data_name, args.data_dir)))
    header(f"Test only: {model_path} on {len(ds.paths)} images of {', '.join(args.data_dir)}")
    model = load_model(model_path)
    try:  # best.h5 files written before models took uint8 pixels want preprocessed float32 input
        contract = check_input_dtype(model, meta, model_path)
    except ModelFilesError as e:
        raise UsageError(str(e)) from None
    seq = GarbageClassifySequence(ds.paths, ds.labels, len(ds.class_names), batch_size=args.batch_size,
                                  input_size=int(model.input_shape[1]), training=False, workers=args.workers,
                                  preprocess=contract == CAFFE)
    os.makedirs(report_dir, exist_ok=True)
    report = evaluate(model, seq, ds.class_names, report_dir, calibration=calibration_of(meta))
    print(calibration_summary(report["calibration"]))
    print(f"test top-1 {report['top1']:.4f} | per-class mean {report['per_class_mean_accuracy']:.4f} | "
          f"bin accuracy {report['bin_accuracy']:.4f} (most common bin {report['bin_majority_baseline']:.4f}) | "
          f"{report['images']} images | report in {report_dir}", flush=True)
    return 0
