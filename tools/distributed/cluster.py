"""Which worker of a multi-machine run this process is: TF_CONFIG read and checked before TensorFlow loads.

--strategy multiworker runs the same train.py command on every machine, each with its TF_CONFIG
(TensorFlow's own format): the cluster's worker addresses and this process's index among them,
e.g. `{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}`.
A "chief" list may come first (`{"chief": [...], "worker": [...]}`, task type "chief"); either way
the first address is the chief: the one worker that writes the outputs. Everything wrong with it is one
line (UsageError) here, at once, not a traceback from inside TensorFlow.
"""

import contextlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass

import numpy as np

from tools.training.usage import UsageError

EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


@dataclass(frozen=True)
class Cluster:
    """The workers' addresses (the chief first; JAX may name the coordinator alone), this process's position
    among them, and how many there are."""
    addresses: tuple
    index: int
    size: int = 0  # 0: one per address

    @property
    def count(self):
        return self.size or len(self.addresses)

    @property
    def chief(self):
        return self.index == 0

    @property
    def name(self):
        return "the chief (worker 0)" if self.chief else f"worker {self.index}"


def read_tf_config(text):
    """The Cluster TF_CONFIG (a JSON string, or None/empty) describes; UsageError for one that cannot work."""
    if not text:
        raise UsageError(f"--strategy multiworker needs TF_CONFIG on every machine, e.g. TF_CONFIG='{EXAMPLE}' "
                         "(this machine's index in task); see README, Training on more than one device")
    try:
        config = json.loads(text)
    except ValueError as e:
        raise UsageError(f"TF_CONFIG is not JSON ({e}): it should look like {EXAMPLE}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UsageError(f"TF_CONFIG needs a \"cluster\" and a \"task\", e.g. {EXAMPLE}")
    unknown = sorted(set(cluster) - {"chief", "worker"})
    if unknown:
        raise UsageError(f"TF_CONFIG's cluster has {', '.join(map(repr, unknown))}: --strategy multiworker "
                         "uses \"worker\" (and optionally \"chief\") only")
    groups = {kind: cluster.get(kind) or [] for kind in ("chief", "worker")}
    for kind, addresses in groups.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise UsageError(f"TF_CONFIG's cluster \"{kind}\" must be a list of \"host:port\" strings, got "
                             f"{addresses!r}")
    if len(groups["chief"]) > 1:
        raise UsageError(f"TF_CONFIG names {len(groups['chief'])} chiefs; there is one (or none: worker 0 is then "
                         "the chief)")
    kind, index = task.get("type"), task.get("index")
    if kind not in groups or not groups[kind]:
        raise UsageError(f"TF_CONFIG's task type {kind!r} names no group of the cluster "
                         f"({', '.join(k for k, v in groups.items() if v)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(groups[kind]):
        raise UsageError(f"TF_CONFIG's task index {index!r} is out of range: the cluster has "
                         f"{len(groups[kind])} {kind}(s), so 0..{len(groups[kind]) - 1}")
    addresses = tuple(groups["chief"] + groups["worker"])
    if len(set(addresses)) != len(addresses):
        raise UsageError(f"TF_CONFIG names an address twice: {', '.join(addresses)}")
    return Cluster(addresses, index + (len(groups["chief"]) if kind == "worker" else 0))


def read_keras_distribution(environ):
    """The Cluster of a multi-process JAX run (--strategy data_parallel): Keras' own variables
    KERAS_DISTRIBUTION_JOB_ADDRESSES (the processes' host:port, the coordinator, process 0, first),
    KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID; None when they ask for one process."""
    count = environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
    if not count:
        return None
    example = ("KERAS_DISTRIBUTION_JOB_ADDRESSES=host1:1234,host2:1234 KERAS_DISTRIBUTION_NUM_PROCESSES=2 "
               "KERAS_DISTRIBUTION_PROCESS_ID=0")
    try:
        count, index = int(count), int(environ.get("KERAS_DISTRIBUTION_PROCESS_ID", ""))
    except ValueError:
        raise UsageError("KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID must be whole numbers, "
                         f"e.g. {example}") from None
    addresses = [a.strip() for a in environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "").split(",") if a.strip()]
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"KERAS_DISTRIBUTION_PROCESS_ID {index} is out of range for "
                         f"KERAS_DISTRIBUTION_NUM_PROCESSES {count}: 0..{count - 1}")
    if not addresses or not all(":" in a for a in addresses) or len(addresses) not in (1, count):
        raise UsageError(f"KERAS_DISTRIBUTION_JOB_ADDRESSES must name the coordinator (process 0) as host:port, or "
                         f"all {count} processes, e.g. {example}")
    return Cluster(tuple(addresses), index, count) if count > 1 else None


class Agreement:
    """What the workers of one run must agree on besides the gradients, as collective operations every
    worker calls in the same order: the chief's variables and run state after it restored a backup (the
    other workers keep none: they write nothing), and whether any worker was asked to stop. A backend
    supplies `any` and `chief_values`."""

    def __init__(self, chief):
        self.chief = chief

    def any(self, flag):
        """True on every worker when `flag` is true on any."""
        raise NotImplementedError

    def chief_values(self, values):
        """The chief's `values` (numpy arrays of the same shapes and dtypes on every worker)."""
        raise NotImplementedError

    def failures(self):
        """A context in which a collective that failed because another worker died or hung is one line."""
        return contextlib.nullcontext()

    def feed(self, seq, workers):
        """What fit takes for this worker's loader `seq` (it loads its own share: itself)."""
        return seq

    def chief_json(self, obj):
        """The chief's JSON-able `obj` (what the other workers pass is ignored)."""
        data = np.frombuffer(json.dumps(obj).encode() if self.chief else b"", dtype=np.uint8)
        size = int(self.chief_values([np.int32(len(data))])[0])
        padded = np.zeros(size, dtype=np.int32)
        padded[:len(data)] = data
        return json.loads(np.asarray(self.chief_values([padded])[0]).astype(np.uint8).tobytes().decode() or "null")


_WATCHDOG = r"""
import os, select, signal, socket, sys, time
parent, timeout, index, hint, addresses = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
ready, _, _ = select.select([sys.stdin], [], [], timeout)
if ready:
    sys.exit(0)
missing = []
for i, address in enumerate(addresses):
    if i == index:
        continue
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
    except (OSError, ValueError):
        missing.append(f"worker {i} at {address}")
why = f"{', '.join(missing)} did not answer" if missing else "not every worker joined"
print(f"error: the cluster did not form within {timeout:g} s (--worker_timeout): {why}. Start train.py on every "
      f"machine with its own {hint}, or check the addresses.", file=sys.stderr, flush=True)
os.kill(parent, signal.SIGKILL)
"""


@contextlib.contextmanager
def startup_watchdog(cluster, timeout, hint="TF_CONFIG (task index)"):
    """While the block runs (the cluster forming: MultiWorkerMirroredStrategy() or keras.distribution.initialize
    waiting for every worker, holding Python's lock, without a limit of its own), a child process that kills
    this one with one line on stderr if the block lasts over `timeout` seconds."""
    child = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(timeout), str(cluster.index),
                              hint, *cluster.addresses], stdin=subprocess.PIPE)
    try:
        yield
    finally:
        child.stdin.close()  # EOF: the cluster is up (or this process is failing by itself)
        threading.Thread(target=child.wait, daemon=True).start()
