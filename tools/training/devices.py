"""Where training runs (--strategy, --cpu_devices) and whether XLA compiles its steps (--jit_compile)."""

import contextlib

import keras

from tools.training.usage import UsageError


def distribution(args):
    """(scope, number of devices) for --strategy; logical CPU devices for --cpu_devices."""
    backend = keras.backend.backend()
    if args.strategy in ("mirrored", "multiworker") and backend != "tensorflow":
        raise UsageError(f"--strategy {args.strategy} needs the TensorFlow backend; on {backend} use "
                         f"--strategy data_parallel")
    if args.strategy == "data_parallel" and backend != "jax":
        raise UsageError("--strategy data_parallel is the JAX backend's; on TensorFlow use --strategy mirrored")
    if backend == "tensorflow" and args.cpu_devices > 1:
        import tensorflow as tf  # only on the TensorFlow backend: a JAX install may have no TensorFlow

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.cpu_devices)
    if args.strategy == "none":
        return contextlib.nullcontext(), 1
    if args.strategy == "data_parallel":
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        return contextlib.nullcontext(), len(devices)
    import tensorflow as tf  # tf.distribute is what mirrored and multiworker are

    if args.strategy == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices)
    return strategy.scope(), strategy.num_replicas_in_sync


def use_jit(choice):
    """--jit_compile: "auto" is off on TensorFlow without a GPU (slower there), else on."""
    if choice != "auto":
        return choice == "on"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # only to ask whether a GPU is present (a JAX install may have no TensorFlow)

        return bool(tf.config.list_physical_devices("GPU"))
    return True
