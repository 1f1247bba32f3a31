"""Several train.py processes on 127.0.0.1 forming one --strategy multiworker cluster, for the tests."""

import json
import os
import signal
import socket
import subprocess
import sys
import time


def free_ports(n):
    """n TCP ports free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def keras_distribution(ports, index):
    """The KERAS_DISTRIBUTION_* variables of process `index` of a multi-process JAX run (--strategy data_parallel)."""
    return {"KERAS_DISTRIBUTION_JOB_ADDRESSES": ",".join(f"127.0.0.1:{p}" for p in ports),
            "KERAS_DISTRIBUTION_NUM_PROCESSES": str(len(ports)), "KERAS_DISTRIBUTION_PROCESS_ID": str(index)}


class Workers:
    """`count` train.py processes, worker i with `args(i)` (a list) and its own log file in `logs`; stopped by
    their PIDs (`kill`, `wait`). `cluster(ports, i)`: the variables that place worker i in the cluster
    (TF_CONFIG by default, keras_distribution for JAX)."""

    def __init__(self, root, logs, args, count=2, ports=None, env=None, cluster=None):
        self.ports = ports or free_ports(count)
        self.logs = [os.path.join(logs, f"worker{i}.log") for i in range(count)]
        self.procs = []
        cluster = cluster or (lambda ports, i: {"TF_CONFIG": tf_config(ports, i)})
        for i in range(count):
            with open(self.logs[i], "w") as log:
                full = dict(os.environ, PYTHONUNBUFFERED="1", **cluster(self.ports, i), **(env or {}))
                self.procs.append(subprocess.Popen([sys.executable, "train.py", *map(str, args(i))], cwd=root,
                                                   env=full, stdout=log, stderr=subprocess.STDOUT))

    def read(self, i):
        with open(self.logs[i], encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait(self, timeout):
        """Each one's exit code; any still running after `timeout` seconds in all is killed (code None)."""
        deadline, codes = time.monotonic() + timeout, []
        for proc in self.procs:
            try:
                codes.append(proc.wait(max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                codes.append(None)
        self.kill()
        return codes

    def kill(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
