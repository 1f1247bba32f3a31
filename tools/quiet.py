"""Entry points start quietly: TensorFlow's C++ start-up lines are hidden unless asked for.

Importing TensorFlow (Keras' default backend) prints, before anything of ours, absl's "All log
messages before absl::InitializeLog() ..." warning, "Could not find cuda drivers" twice on a machine
without a GPU, and CPU-feature notices. TF_CPP_MIN_LOG_LEVEL does not reach the absl lines, so the
C-level stderr is pointed at /dev/null while Keras (and so TensorFlow) is imported. Python errors
still show: they are raised after stderr is back. A user who sets TF_CPP_MIN_LOG_LEVEL gets
TensorFlow's output as it is.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def _stderr_to_devnull():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def import_keras_quietly():
    """`import keras` (and its backend) with TensorFlow's start-up noise hidden; returns the module,
    or None where Keras is not installed (a device that runs only .tflite files)."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "keras" in sys.modules:
        return _import_keras()
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # TensorFlow's own INFO and WARNING lines, later on too
    with _stderr_to_devnull():
        keras = _import_keras()
        if keras is None:
            return None

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices()  # the device search logs "failed call to cuInit" here, not later
    return keras


def _import_keras():
    try:
        import keras
    except ImportError:
        return None
    return keras
