"""train.py's work once its flags are checked: a training run (set-up, data, model, the recipe, outputs)
or --test_only's evaluation of a model on a labelled folder.

Importing this loads Keras: train.py does it only after tools.quiet has hidden TensorFlow's start-up noise.
"""

import contextlib
import logging
import os
import shutil
import tempfile
import time

import keras

from models.augmentation import build_augmentation, training_model
from models.classifier import build_classifier
from models.saving import load_model, save_model_atomic
from models.weights import WeightsUnavailableError
from tools.contract import MODEL_FILE, ModelFilesError, calibration_of, load_labels, write_calibration, write_labels
from tools.data import DataError
from tools.data.layout import data_name
from tools.data.merge import load_datasets
from tools.model_loading import older_contract, open_model
from tools.model_source import ModelSourceError, resolve_model
from tools.training.checkpoints import BackgroundWriter
from tools.training.data import data_flow
from tools.distributed.devices import backend_devices, device_report, distribution, nvidia_smi_gpus, use_jit
from tools.training.loader import GarbageClassifySequence
from tools.training.phases import Training, header, recipe, run_recipe
from tools.training.report import calibration_summary, evaluate, plot_history, read_history
from tools.training.resume import remove_stale_temp_files
from tools.training.state import (RunState, backup_root, load_state, merge_histories, remove_backups, run_record_path,
                                  save_run_record, save_state)
from tools.training.usage import UsageError

log = logging.getLogger(__name__)


def main(config):
    """--test_only's evaluation, else training (a TrainConfig); UsageError for bad input found on the way."""
    return test_only(config) if config.test_only else train(config)


def train(config, build_model=build_classifier):
    """One training run. `build_model(num_classes, input_size, weights)` makes the classifier (a benchmark
    passes a model that costs nothing, to measure the rest of this path). Under --strategy multiworker
    every worker runs this; only the chief writes in --output_dir."""
    t0 = time.time()
    place = distribution(config)
    config = config.for_devices(place.replicas)
    scratch = None if place.chief else tempfile.mkdtemp(prefix=f"garbage-train-worker{place.index}-")
    try:
        if place.chief:
            _prepare_output_dir(config)
        keras.utils.set_random_seed(config.seed)
        if config.mixed_precision != "off":
            keras.mixed_precision.set_global_policy(f"mixed_{config.mixed_precision}")

        header(f"Data: {', '.join(config.data_dirs)}")
        if place.replicas > 1:
            log.info("%d devices (%s): global batch %d x %d = %d, learning rate %g x %d = %g", place.replicas,
                     config.strategy, config.batch_size, place.replicas, config.global_batch_size, config.learning_rate,
                     place.replicas, config.scaled_learning_rate)
        try:
            flow = data_flow(
                config.data, config.rule_file, config.num_classes, batch_size=config.batch_size * place.local_replicas,
                input_size=config.input_size, val_split=config.val_split, seed=config.seed,
                label_smoothing=config.label_smoothing, workers=config.workers, print_fn=log.info, cache=config.cache,
                cache_dir=os.path.join(scratch or config.output_dir, "cache"), shard=(place.index, place.workers))
        except DataError as e:
            raise UsageError(str(e)) from None
        if place.chief:
            write_labels(config.output_dir, flow.dataset.class_names, config.input_size)
        with place.scope, place.failures():
            t = _train(config, place, flow, build_model)
        if not place.chief:
            print(f"{place.cluster.name} of {place.workers}: training finished; the chief writes the outputs",
                  flush=True)
            return 0
        return _outputs(config, t, flow, t0)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _prepare_output_dir(config):
    """The chief's: the folder made; with --no_resume the last run's backups and record gone (else train.py would
    stop at once: the run is finished); what a killed run left half-written removed."""
    os.makedirs(config.output_dir, exist_ok=True)
    if config.no_resume:
        shutil.rmtree(backup_root(config.output_dir), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(run_record_path(config.output_dir))
    _refuse_an_older_interrupted_run(config.output_dir)
    stale = remove_stale_temp_files(config.output_dir)
    if stale:
        log.info("removed %d temporary file(s) an interrupted run left: %s", len(stale),
                 ", ".join(os.path.relpath(p, config.output_dir) for p in stale))


def _refuse_an_older_interrupted_run(output_dir):
    """An interrupted run whose model takes preprocessed floats (written before models took uint8 pixels)
    cannot go on with this version: its best.h5 and backups have another input. UsageError saying what to do."""
    if not os.path.isdir(backup_root(output_dir)):
        return
    try:
        _, meta = load_labels(os.path.join(output_dir, MODEL_FILE))
        older = older_contract(meta)
    except ModelFilesError:
        return  # no readable labels.json: nothing trained that this run could mix with
    if older:
        raise UsageError(f"{output_dir} holds an interrupted run of an older version (its model takes preprocessed "
                         "floats): finish it with that version, or start over here with --no_resume, or use another "
                         "--output_dir")


def _train(config, place, flow, build_model):
    """Model building and the recipe's phases (under the strategy's scope when one is used); returns the Training."""
    num_classes = len(flow.dataset.class_names)
    jit = use_jit(config.jit_compile)
    header(f"Model: ResNet50 + custom top, {num_classes} classes, {config.input_size}px, "
           f"weights={config.weights}, backend={keras.backend.backend()}, jit_compile={jit}, augment={config.augment}")
    line, warning = device_report(*backend_devices(), nvidia_smi_gpus(), keras.backend.backend())
    log.info(line)
    if warning:
        log.warning(warning)
    try:
        model = build_model(num_classes, config.input_size, weights=config.weights if config.pretrained else None)
    except WeightsUnavailableError as e:
        raise UsageError(str(e)) from None
    except ValueError as e:
        raise UsageError(f"--weights {config.weights}: {e}") from None

    state = load_state(config.output_dir) if place.chief else RunState()
    if place.collective:  # the other workers go on from the chief's record
        state = RunState.from_json(place.collective.chief_json(state.to_json()))
    # The augmentation block runs inside the train step, on the device; best.h5 is the classifier without it.
    trainer = training_model(model, build_augmentation(config.augment, config.input_size, seed=config.seed))
    t = Training(config, model, trainer, flow.train, flow.val, num_classes, jit, state, BackgroundWriter(), place)
    try:
        t.phases = run_recipe(t, recipe(config))
    finally:
        t.writer.close()  # a pending best.h5 or backup is written whatever happened
    return t


def _outputs(config, t, flow, t0):
    """history, best.h5 scored on the validation photos, run.json, the last line: the chief's, outside any strategy."""
    header("Outputs")
    state = t.state
    history_csv = merge_histories(config.output_dir, t.phases)
    plot_history(read_history(history_csv), os.path.join(config.output_dir, "history.png"),
                 phase_boundary=state.phases_done.get("phase1") if len(t.phases) > 1 else None)
    best_path = os.path.join(config.output_dir, MODEL_FILE)
    if not os.path.exists(best_path):  # every epoch NaN / no improvement ever recorded
        save_model_atomic(t.model, best_path)
    if flow.report is not None:
        if t.place.collective is not None and t.place.strategy is None:
            keras.distribution.set_distribution(None)  # several JAX processes: the chief scores alone
        report = evaluate(load_model(best_path), flow.report, flow.dataset.class_names, config.output_dir,
                          target_accuracy=config.target_accuracy)
        c = report["calibration"]
        write_calibration(config.output_dir, c["temperature"], c["threshold"], c["target_accuracy"])
        log.info("validation: top-1 %.4f, per-class mean %.4f, bin accuracy %.4f (always the most common bin: %.4f)",
                 report["top1"], report["per_class_mean_accuracy"], report["bin_accuracy"],
                 report["bin_majority_baseline"])
        log.info(calibration_summary(c))
    wall = time.time() - t0
    state.finished = True
    save_state(config.output_dir, state)
    save_run_record(config.output_dir, config, state, t.writer.written)
    remove_backups(config.output_dir)
    whole, steps = state.rates()
    acc = state.best_val_accuracy
    rate = ("no epoch trained" if whole is None else
            f"{whole:.1f} training images/s over whole epochs{' after the first, which compiles' if state.steady() else ''}"
            f" (validation and saves included; {steps:.1f} in the training steps alone)")
    print(f"best val_accuracy {acc if acc is None else f'{acc:.4f}'} at epoch {state.best_epoch} | "
          f"wall {wall / 60:.1f} min | {rate} | outputs in {config.output_dir}", flush=True)
    return 0


def test_only(config):
    """Score --model on every image of --data_dir; the report goes to --report_dir."""
    try:
        model_path = resolve_model(config.model or os.path.join(config.output_dir, MODEL_FILE), config.model_sha256)
    except ModelSourceError as e:
        raise UsageError(str(e)) from None
    if not os.path.isfile(model_path):
        raise UsageError(f"no model at {model_path}; train one first or pass --model")
    try:
        labels, meta = load_labels(model_path)
        ds = load_datasets(config.data, config.rule_file, config.num_classes)
    except (ModelFilesError, DataError) as e:
        raise UsageError(str(e)) from None
    if ds.class_names != labels:
        raise UsageError(f"the classes of {', '.join(config.data_dirs)} ({len(ds.class_names)}) differ from the model's "
                         f"labels.json ({len(labels)})")
    report_dir = config.report_dir or os.path.join(config.output_dir, "test_" + "+".join(map(data_name, config.data_dirs)))
    header(f"Test only: {model_path} on {len(ds.paths)} images of {', '.join(config.data_dirs)}")
    try:  # a best.h5 written before models took uint8 pixels is adapted to take them too
        model = open_model(model_path).model
    except ModelFilesError as e:
        raise UsageError(str(e)) from None
    seq = GarbageClassifySequence(ds.paths, ds.labels, len(ds.class_names), batch_size=config.batch_size,
                                  input_size=int(model.input_shape[1]), training=False, workers=config.workers)
    os.makedirs(report_dir, exist_ok=True)
    report = evaluate(model, seq, ds.class_names, report_dir, calibration=calibration_of(meta))
    print(calibration_summary(report["calibration"]))
    print(f"test top-1 {report['top1']:.4f} | per-class mean {report['per_class_mean_accuracy']:.4f} | "
          f"bin accuracy {report['bin_accuracy']:.4f} (most common bin {report['bin_majority_baseline']:.4f}) | "
          f"{report['images']} images | report in {report_dir}", flush=True)
    return 0
