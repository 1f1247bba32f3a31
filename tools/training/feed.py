"""What fit takes for a loader (tools/training/loader.py, a keras.utils.PyDataset): on the TensorFlow backend a
tf.data pipeline that maps the loader over its batch indices; on the other backends the loader itself.

Why: Keras hands a PyDataset to TensorFlow through `tf.data.Dataset.from_generator`. With that dataset in the
step, the process takes ~45x the page faults and several times the system time (the step's buffers go back to
the system and are faulted in again), whatever the prefetching: bench/feed.py, 2-core CPU, 64 px, fit() of
ResNet50 on the same loader, 1.23-1.46x the images/s fed by a map (69 k -> 1.5 k faults per batch, 0.8 -> 0.2 s
system time per epoch). A `map` calling the loader through `tf.numpy_function` has none of that; it loads
`seq.workers` batches at once in tf.data's threads (the loader's random choices are seeded by batch, so the
batches are the same as through Keras' own workers), in order, and every batch keeps its static shape.

Keras ends a PyDataset's epoch itself (`on_epoch_end`: the next shuffle order, the disk cache flushed); a
tf.data pipeline it does not, so `EpochEnds` does, after each epoch's callbacks: the next epoch's batches are
loaded only once its iterator starts, after that.

Importing this loads Keras; TensorFlow is imported only when a pipeline is built.
"""

import keras


def fit_input(seq):
    """What fit takes for `seq` (None stays None): on TensorFlow a tf.data pipeline of a loader that states its
    batches' shapes (`batch_spec()`, tools/training/loader.py), else `seq` itself (Keras' own adapter)."""
    if seq is None or keras.backend.backend() != "tensorflow" or not hasattr(seq, "batch_spec"):
        return seq
    return batches(seq)


def batches(seq, threads=None, autotune=False):
    """`seq`'s batches in order as a tf.data.Dataset of static shapes, `threads` (default: seq.workers) loading
    at once. One pass is one epoch; its end is `seq.on_epoch_end()`'s job (EpochEnds). `autotune`: tf.data's
    (off; bench/feed.py measures it on)."""
    import tensorflow as tf  # the TensorFlow backend's input pipeline

    specs = seq.batch_spec()
    dtypes = [tf.as_dtype(dtype) for _, dtype in specs]

    def load(index):
        return tuple(seq[int(index)])

    def call(index):
        parts = tf.numpy_function(load, [index], dtypes, stateful=True, name="load_batch")
        return tuple(tf.ensure_shape(part, shape) for part, (shape, _) in zip(parts, specs))

    threads = max(1, int(threads or seq.workers or 1))
    ds = tf.data.Dataset.range(len(seq)).map(call, num_parallel_calls=threads, deterministic=True).prefetch(2)
    # The sizes are fixed, so no autotuning: a dropped iterator waits for its autotune thread, and Keras drops one
    # at each epoch's start (it makes the next epoch's at an epoch's end, then another); on autotune: 0.84-0.92x
    # the images/s (bench/feed.py), once seen waiting ~18 s per epoch (py-spy: UnboundedThreadPool).
    options = tf.data.Options()
    options.autotune.enabled = bool(autotune)
    return ds.with_options(options)


class EpochEnds(keras.callbacks.Callback):
    """Calls `on_epoch_end()` of each loader of `seqs` at the end of every epoch: what Keras does itself for a
    PyDataset it is given, and not for the tf.data pipeline of one."""

    def __init__(self, seqs):
        super().__init__()
        self.seqs = [s for s in seqs if s is not None]

    def on_epoch_end(self, epoch, logs=None):
        for seq in self.seqs:
            seq.on_epoch_end()
