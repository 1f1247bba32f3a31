"""Which worker of a multi-machine run this process is: TF_CONFIG read and checked before TensorFlow loads.

--strategy multiworker runs the same train.py command on every machine, each with its TF_CONFIG
(TensorFlow's own format): the cluster's worker addresses and this process's index among them,
e.g. `{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}`.
A "chief" list may come first (`{"chief": [...], "worker": [...]}`, task type "chief"); either way
the first address is the chief: the one worker that writes the outputs. Everything wrong with it is one
line (UsageError) here, at once, not a traceback from inside TensorFlow.
"""

import json
import socket
import time
from dataclasses import dataclass

from tools.training.usage import UsageError

EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


@dataclass(frozen=True)
class Cluster:
    """The workers' addresses (the chief first) and this process's position among them."""
    addresses: tuple
    index: int

    @property
    def count(self):
        return len(self.addresses)

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


def wait_for_workers(cluster, timeout, poll=0.5):
    """Return once every other worker accepts connections; UsageError naming the first that did not within
    `timeout` seconds (its train.py not started, a wrong address, a firewall)."""
    deadline = time.monotonic() + timeout
    for i, address in enumerate(cluster.addresses):
        if i == cluster.index:
            continue
        host, port = address.rsplit(":", 1)
        while True:
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=min(5.0, timeout)):
                    break
            except (OSError, ValueError) as e:
                if time.monotonic() >= deadline:
                    raise UsageError(f"worker {i} at {address} did not answer within {timeout:g} s ({e}): start the "
                                     f"same command there with task index {i}, or check TF_CONFIG's addresses") from None
                time.sleep(poll)
