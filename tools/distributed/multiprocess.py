"""--strategy data_parallel on several machines (JAX): one train.py process per machine, Keras' own
KERAS_DISTRIBUTION_* variables each (tools/distributed/cluster.read_keras_distribution).

keras.distribution.initialize forms the cluster (jax.distributed); DataParallel then spans every
process's devices. Each process feeds only its own shard of the photos (tools/training/data.data_flow),
so the distribution's auto-sharding is off. The processes agree on the chief's restored state and on
stopping through jax.experimental.multihost_utils (`Processes`).
"""

import contextlib

import jax
import numpy as np
from jax.experimental import multihost_utils

from tools.distributed.cluster import Agreement
from tools.files import first_line
from tools.training.usage import UsageError


class Processes(Agreement):
    """Agreement between the processes of a multi-process JAX run."""

    def any(self, flag):
        return bool(np.asarray(multihost_utils.process_allgather(np.int32(bool(flag)))).any())

    def chief_values(self, values):
        return [np.asarray(v) for v in multihost_utils.broadcast_one_to_all(list(values))] if values else []

    def failures(self):
        return lost_processes()


@contextlib.contextmanager
def lost_processes():
    """A collective that failed because another process died or hung is one line (UsageError)."""
    try:
        yield
    except jax.errors.JaxRuntimeError as e:
        first = first_line(e, 300)
        if not first.startswith(LOST):  # out of memory, a compile error: not the cluster's doing
            raise
        raise UsageError(f"lost contact with the other processes ({first}); rerun every process's command to "
                         "continue from the last backup") from None


#: The status codes of a collective that failed because another process died or hung.
LOST = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "CANCELLED", "INTERNAL: Barrier", "INTERNAL: Coordination")
