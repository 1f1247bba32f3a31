"""--strategy multiworker: tf.distribute.MultiWorkerMirroredStrategy across train.py processes (one per
machine, TF_CONFIG each; tools/distributed/cluster.py), as Keras 3's fit() needs it.

What this module does, and why:

- `keras_fixes()`: Keras 3 (3.15, and its main branch in 2026-08) cannot fit() under this strategy with
  more than one worker (keras-team/keras#20585): before training it reduces the first distributed
  batch with an eager collective that fails on per-replica values, and after each step it reduces the
  metrics with `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars. The fixes take the local
  replica's value instead: the batch is only needed for its shapes, and of the metrics only the epoch's
  figures count (the callbacks and history read them), which Keras reads from the metric variables across
  all replicas; a batch's figures in the progress bar are this worker's own. Applied
  once, only when --strategy multiworker runs; a Keras that no longer has those internals is left alone.
- `distribute(seq, strategy)`: each worker feeds the strategy its own shard of the photos (the loader of
  its share, tools/training/data.data_flow), so no worker decodes another's photos: a per-worker tf.data
  pipeline with TensorFlow's auto-sharding off, batched per replica.
- `Collective`: what the workers must agree on besides the gradients: the chief's variables and run
  state after it restored a backup (the other workers keep no backup: they write nothing), and whether
  any worker was asked to stop (SIGTERM) at an epoch's end.
- TensorFlow waits for the whole cluster while holding Python's lock, with no time limit: devices.py
  wraps the wait in tools/distributed/cluster.startup_watchdog.
"""

import contextlib
import logging

import numpy as np
import tensorflow as tf

from tools.distributed.cluster import Agreement
from tools.files import first_line
from tools.training.feed import batches
from tools.training.usage import UsageError

log = logging.getLogger(__name__)

_fixed = False


def keras_fixes():
    """Make keras' TensorFlow trainer fit() under MultiWorkerMirroredStrategy (see the module's docstring)."""
    global _fixed
    if _fixed:
        return
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if not all(hasattr(tf_trainer, n) for n in ("reduce_per_replica", "_collective_all_reduce_multi_worker",
                                                "_is_per_replica_instance")) or \
            not hasattr(tf_trainer.TensorFlowTrainer, "_maybe_symbolic_build"):
        log.warning("warning: this Keras has none of the internals --strategy multiworker works around; "
                    "trying without")
        _fixed = True
        return

    def local(values, strategy):
        return tree.map_structure(
            lambda v: strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues)
            else v, values)

    reduce_per_replica = tf_trainer.reduce_per_replica

    def reduce_synchronized(values, strategy, reduction):
        if reduction == "auto" and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return local(values, strategy)  # metric results: equal on every replica
        return reduce_per_replica(values, strategy, reduction)

    def build_from_a_local_batch(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = local(next(it), self.distribute_strategy)  # only its shapes are used
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_synchronized
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = build_from_a_local_batch
    _fixed = True


def distribute(seq, strategy, threads):
    """`seq` (this worker's loader, batch_size = per-replica batch x local replicas) as a distributed dataset
    of this worker's batches only."""
    local = len(strategy.extended.worker_devices)  # this machine's replicas

    def dataset(context):
        ds = batches(seq, threads)  # its epoch ends by tools.training.feed.EpochEnds
        if local > 1:
            ds = ds.rebatch(seq.batch_size // local)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.with_options(options).prefetch(2)

    return strategy.distribute_datasets_from_function(dataset)


@contextlib.contextmanager
def lost_workers():
    """A collective that failed because another worker died or hung is one line (UsageError) saying what to do."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.AbortedError) as e:
        first = first_line(e, 300)
        raise UsageError(f"lost contact with the other workers ({type(e).__name__}: {first}); rerun every worker's "
                         "command to continue from the last backup") from None


class Collective(Agreement):
    """Agreement between the workers of a MultiWorkerMirroredStrategy, by all-reduces of the strategy."""

    def __init__(self, strategy, chief):
        super().__init__(chief)
        self.strategy = strategy
        self._functions = {}

    def _all_reduce(self, op, values):
        if op not in self._functions:
            self._functions[op] = self._make(op)
        out = self._functions[op](*[tf.constant(v) for v in values])
        return [self.strategy.experimental_local_results(o)[0].numpy() for o in out]

    def _make(self, op):
        strategy = self.strategy

        def replica(*xs):
            ctx = tf.distribute.get_replica_context()
            if op == "from_first":  # only the first replica of the chief contributes
                first = tf.equal(ctx.replica_id_in_sync_group, 0)
                xs = [tf.where(first, x, tf.zeros_like(x)) for x in xs]
            else:  # a value made on this replica's device (an argument as it is has none to reduce to)
                xs = [tf.identity(x) for x in xs]
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, list(xs))

        return tf.function(lambda *xs: strategy.run(replica, args=xs), reduce_retracing=True)

    def any(self, flag):
        return bool(self._all_reduce("sum", [np.int64(bool(flag))])[0])

    def failures(self):
        return lost_workers()

    def feed(self, seq, workers):
        return distribute(seq, self.strategy, workers)

    def chief_values(self, values):
        values, out = [np.asarray(v) for v in values], [None] * len(values)
        for dtype in sorted({v.dtype for v in values}, key=str):  # one flat all-reduce per dtype
            mine = [i for i, v in enumerate(values) if v.dtype == dtype]
            flat = self._all_reduce("from_first", [np.concatenate([values[i].ravel() for i in mine])])[0]
            for i, part in zip(mine, np.split(flat, np.cumsum([values[i].size for i in mine])[:-1])):
                out[i] = part.reshape(values[i].shape)
        return out
