"""Train the garbage classifier (ResNet50 + custom top) on garbage_classify_v2 or your own photos.

    python train.py                                  # Huawei data in ./garbage_classify_v2/train_data_v2
    python train.py --data_dir my_photos --weights none --input_size 128 --epochs 30
    python train.py --test_only --model output/best.h5 --data_dir other_labelled_dir

With ImageNet weights training runs in two phases: (1) the backbone is frozen and the top learns;
(2) backbone stages from --unfreeze_from on are fine-tuned at a lower learning rate with
BatchNormalization kept in inference mode. With --weights none the whole network trains from the
first epoch under a warm-up + cosine schedule. Killing the process at any moment and rerunning the
same command continues from the last saved epoch (SIGTERM and Ctrl-C save the last finished one first;
a finished phase is not run again); --no_resume starts over. Outputs (see --output_dir): best.h5, labels.json, history.csv/png, report.json/txt,
confusion_matrix.png, reliability.png (calibration), top_losses.png (the worst mistakes).
"""

import argparse
import logging
import os
import sys

from models.presets import DEFAULT_PRESET, PRESETS
from tools.calibration import DEFAULT_TARGET_ACCURACY
from tools.contract import MODEL_FILE, OUTPUT_DIR
from tools.errors import guarded
from tools.model_source import add_model_arguments
from tools.quiet import import_keras_quietly
from tools.training.cache import CACHE_MODES
from tools.training.config import TrainConfig
from tools.training.interrupts import Interrupted
from tools.training.state import finished_message, finished_run
from tools.training.usage import check_args

DEFAULT_DATA_DIR = "./garbage_classify_v2/train_data_v2"
#: Seconds between epoch backups (docs/training.md, "Interrupting and resuming": why this figure).
DEFAULT_BACKUP_EVERY = 300


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
    g.add_argument("--cache", choices=CACHE_MODES, default="auto",
                   help="keep decoded, resized photos so later epochs decode no JPEG: ram, disk (a memory-mapped "
                        "file in OUTPUT_DIR/cache, reused by the next run and rebuilt when the photos change), "
                        "auto (ram when it fits in a quarter of the free memory, else disk) or none "
                        "(default: %(default)s)")
    g.add_argument("--augment", choices=tuple(PRESETS), default=DEFAULT_PRESET,
                   help="training augmentation, run on the device inside the train step: "
                        + "; ".join(f"{k} = {v}" for k, v in PRESETS.items()).replace("%", "%%")
                        + " (default: %(default)s)")
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
    g.add_argument("--worker_timeout", type=float, default=300, metavar="SECONDS",
                   help="several machines (--strategy multiworker, or data_parallel with KERAS_DISTRIBUTION_*): how "
                        "long to wait for every worker to join at the start, and (TensorFlow) for the others in each "
                        "step, before stopping with an error (default: %(default)s)")
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
    g.add_argument("--output_dir", default=OUTPUT_DIR,
                   help=f"where {MODEL_FILE} and the reports go (default: %(default)s)")
    g.add_argument("--test_only", action="store_true",
                   help="only evaluate --model on every image of --data_dir and write the report")
    add_model_arguments(g, None, what=f"model for --test_only (None: OUTPUT_DIR/{MODEL_FILE}): a {MODEL_FILE} "
                                      "written by train.py, labels.json beside it")
    g.add_argument("--report_dir", default=None,
                   help="where --test_only writes its report (default: OUTPUT_DIR/test_<data folder name>/, never "
                        "over the training run's report)")
    g.add_argument("--target_accuracy", type=float, default=DEFAULT_TARGET_ACCURACY,
                   help="the 'not sure' threshold stored in labels.json (used by predict.py and server.py) is the "
                        "lowest calibrated probability at which the validation photos answered reach this accuracy: "
                        "higher = fewer wrong answers, more 'not sure' (default: %(default)s)")
    g.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard logs (train and validation scalars, learning rate) to "
                        "OUTPUT_DIR/logs/: tensorboard --logdir output/logs")
    g.add_argument("--backup_every", type=float, default=DEFAULT_BACKUP_EVERY, metavar="SECONDS",
                   help="write the epoch backup a killed run resumes from when this many seconds have passed since "
                        "the last one (0: after every epoch); also at each phase's end, and at once on SIGTERM or "
                        "Ctrl-C. Writing happens in the background; a SIGKILL loses at most this much training "
                        "plus the epoch under way (default: %(default)s)")
    g.add_argument("--no_resume", action="store_true",
                   help="start over even if a run was interrupted (by default a rerun of the same command "
                        "continues from the last finished epoch kept in OUTPUT_DIR/.backup)")
    return p


@guarded
def main(args):
    if args.cpu_devices > 1 and os.environ.get("KERAS_BACKEND") == "jax":  # must precede importing jax
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.cpu_devices}").strip()
    # our modules' INFO lines are the training log; other libraries' (TensorFlow's distribute notes) are not
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    logging.getLogger("tools").setLevel(logging.INFO)
    args.data_dir = args.data_dir or [DEFAULT_DATA_DIR]
    try:
        check_args(args)
        config = TrainConfig.from_args(args)
        finished = None if config.test_only or config.no_resume else finished_run(config.output_dir)
        if finished:  # before Keras loads: the answer comes at once
            print(finished_message(config.output_dir, finished))
            return 0
        import_keras_quietly()
        # The runner imports Keras (and so TensorFlow): only now that import_keras_quietly has hidden its noise.
        from tools.training import run

        return run.main(config)
    except Interrupted as e:
        then = ("the chief saves the last finished epoch: rerun every worker's command to continue" if e.others else
                f"epoch {e.saved} is saved: rerun the same command to continue from epoch {e.saved + 1}" if e.saved
                else "no epoch of this phase had finished: rerun the same command to start it again")
        print(f"stopped by {e}: {then}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to continue from the last saved epoch", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
