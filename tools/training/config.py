"""The settings of one train.py run, built once from its flags and never changed in place.

Why a frozen dataclass: the flags used to travel as argparse's `args` through a dozen functions, and one
of them multiplied the learning rate in place. Here every value is read, never written; what depends on
the number of devices (global batch, learning rates) is derived in one place (`for_devices`), and the
rest of tools/training takes a TrainConfig. No Keras here, so train.py --help stays instant.
"""

import dataclasses
from dataclasses import dataclass

from tools.calibration import DEFAULT_TARGET_ACCURACY


@dataclass(frozen=True)
class TrainConfig:
    # data
    data_dirs: tuple
    rule_file: str = None
    num_classes: int = None
    val_split: float = 0.1
    workers: int = 1
    cache: str = "auto"
    augment: str = "original"
    label_smoothing: float = 0.005
    # model
    input_size: int = 224
    weights: str = "imagenet"
    mixed_precision: str = "off"
    # training
    jit_compile: str = "auto"
    batch_size: int = 32
    learning_rate: float = 1e-3
    strategy: str = "none"
    cpu_devices: int = 0
    worker_timeout: float = 300.0
    epochs: int = 8
    fine_tune_epochs: int = 4
    fine_tune_lr: float = None
    unfreeze_from: int = 4
    patience: int = 5
    seed: int = 233
    backup_every: float = 300.0
    # output and evaluation
    output_dir: str = "output"
    test_only: bool = False
    model: str = None
    model_sha256: str = None
    report_dir: str = None
    target_accuracy: float = DEFAULT_TARGET_ACCURACY
    tensorboard: bool = False
    no_resume: bool = False
    #: devices training runs on (for_devices); 1 until the distribution is known
    replicas: int = 1

    @classmethod
    def from_args(cls, args):
        """The config of train.py's parsed flags (argparse.Namespace); flags it does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls)} - {"data_dirs", "replicas"}
        values = {k: v for k, v in vars(args).items() if k in names}
        return cls(data_dirs=tuple(args.data_dir), **values)

    def for_devices(self, replicas):
        """This config on `replicas` devices: the global batch and the learning rates follow (linear scaling)."""
        return dataclasses.replace(self, replicas=int(replicas))

    @property
    def global_batch_size(self):
        return self.batch_size * self.replicas

    @property
    def scaled_learning_rate(self):
        """--learning_rate x devices (the linear scaling rule)."""
        return self.learning_rate * self.replicas

    @property
    def scaled_fine_tune_lr(self):
        """Phase 2's rate: --fine_tune_lr x devices, or a tenth of the scaled learning rate."""
        return self.fine_tune_lr * self.replicas if self.fine_tune_lr else self.scaled_learning_rate / 10

    @property
    def pretrained(self):
        return self.weights != "none"

    @property
    def data(self):
        """One folder, or the list of them (tools.data.layout.load_datasets takes either)."""
        return self.data_dirs[0] if len(self.data_dirs) == 1 else list(self.data_dirs)
