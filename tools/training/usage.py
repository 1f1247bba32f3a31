"""What train.py refuses before it loads Keras: bad flags, missing data, --tensorboard without TensorFlow.

Why apart: these answers come at once (no Keras start-up), as one line and exit code 2. The
training modules raise UsageError too, for bad input found later (data, weights, --model).
"""

import importlib.util
import os

from tools.data.download import HUAWEI_URL
from tools.errors import UsageError  # noqa: F401  (the training modules raise it from here)


def no_data_message(data_dir, reason):
    return (f"{reason}.\nPut the Huawei garbage_classify_v2 images there (img_N.jpg + img_N.txt, "
            f"garbage_classify_rule.json beside the folder): download {HUAWEI_URL} and unzip it into "
            f"./garbage_classify_v2/, or point --data_dir at your own photos (one sub-folder per class). "
            f"See README.md, section Data.")


def tensorboard_available():
    return all(importlib.util.find_spec(name) is not None for name in ("tensorflow", "tensorboard"))


def check_args(args):
    """Raise UsageError for the first flag, data folder or missing package that cannot work."""
    if args.input_size < 32:
        raise UsageError(f"--input_size must be >= 32, got {args.input_size}")
    for name in ("batch_size", "workers"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.epochs < 1 or args.fine_tune_epochs < 0:
        raise UsageError("--epochs must be >= 1 and --fine_tune_epochs >= 0")
    if not 0 <= args.val_split < 1:
        raise UsageError(f"--val_split must be in [0, 1), got {args.val_split}")
    if not args.backup_every >= 0:
        raise UsageError(f"--backup_every must be >= 0 seconds, got {args.backup_every}")
    if args.learning_rate <= 0:
        raise UsageError(f"--learning_rate must be > 0, got {args.learning_rate}")
    if not 0 <= args.label_smoothing < 1:
        raise UsageError(f"--label_smoothing must be in [0, 1), got {args.label_smoothing}")
    if not 0 < args.target_accuracy <= 1:
        raise UsageError(f"--target_accuracy must be in (0, 1], got {args.target_accuracy}")
    if args.weights not in ("imagenet", "none") and not os.path.isfile(args.weights):
        raise UsageError(f"--weights must be imagenet, none or an existing .h5 file; no file at {args.weights}")
    if not args.test_only:
        for data_dir in args.data_dir:
            if not os.path.isdir(data_dir):
                raise UsageError(no_data_message(data_dir, f"No training data at {data_dir}"))
            if not any(os.scandir(data_dir)):
                raise UsageError(no_data_message(data_dir, f"The data folder {data_dir} is empty"))
    if args.strategy in ("multiworker", "data_parallel") and not args.test_only:
        # the cluster's mistakes (TF_CONFIG, KERAS_DISTRIBUTION_*), before TensorFlow or JAX starts
        from tools.distributed.cluster import read_keras_distribution, read_tf_config

        if args.strategy == "multiworker":
            read_tf_config(os.environ.get("TF_CONFIG"))
        else:
            read_keras_distribution(os.environ)
        if not args.worker_timeout > 0:
            raise UsageError(f"--worker_timeout must be > 0 seconds, got {args.worker_timeout}")
    if args.tensorboard and not tensorboard_available():
        raise UsageError("--tensorboard writes through TensorFlow's tf.summary and the tensorboard package: "
                         "pip install -r requirements.txt, or leave --tensorboard out")
