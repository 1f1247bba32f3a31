"""Where training runs (--strategy, --cpu_devices), on what device (printed; a GPU the backend cannot use is
warned about) and whether XLA compiles its steps (--jit_compile)."""

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass

import keras

from tools.distributed.cluster import read_keras_distribution, read_tf_config, startup_watchdog
from tools.files import first_line
from tools.training.feed import fit_input
from tools.training.usage import UsageError


@dataclass
class Placement:
    """Where one run trains: the scope to build models in, the devices (all workers' together), and for
    --strategy multiworker this process's place in the cluster and the workers' agreement (Collective)."""
    scope: object
    replicas: int = 1
    local_replicas: int = 1
    cluster: object = None  # tools.distributed.cluster.Cluster
    collective: object = None  # tools.distributed.multiworker.Collective
    strategy: object = None

    @property
    def chief(self):
        """The one process that writes the outputs."""
        return self.cluster is None or self.cluster.chief

    @property
    def workers(self):
        return self.cluster.count if self.cluster else 1

    @property
    def index(self):
        return self.cluster.index if self.cluster else 0

    def failures(self):
        """A context in which losing another worker is one line (UsageError), not a traceback."""
        return self.collective.failures() if self.collective is not None else contextlib.nullcontext()

    def feed(self, seq, workers):
        """What fit takes for the loader `seq`: under --strategy multiworker this worker's pipeline, else
        tools/training/feed.py's (a tf.data map over its batches on TensorFlow, the loader itself on JAX)."""
        if seq is not None and self.collective is not None:
            return self.collective.feed(seq, workers)
        return fit_input(seq)


def distribution(config):
    """The Placement of --strategy; logical CPU devices for --cpu_devices."""
    backend = keras.backend.backend()
    if config.strategy in ("mirrored", "multiworker") and backend != "tensorflow":
        raise UsageError(f"--strategy {config.strategy} needs the TensorFlow backend; on {backend} use "
                         f"--strategy data_parallel")
    if config.strategy == "data_parallel" and backend != "jax":
        raise UsageError("--strategy data_parallel is the JAX backend's; on TensorFlow use --strategy mirrored")
    if backend == "tensorflow" and config.cpu_devices > 1:
        import tensorflow as tf  # only on the TensorFlow backend: a JAX install may have no TensorFlow

        cpu = tf.config.list_physical_devices("CPU")[0]
        if len(tf.config.get_logical_device_configuration(cpu) or ()) != config.cpu_devices:  # once a process
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * config.cpu_devices)
    if config.strategy == "none":
        return Placement(contextlib.nullcontext())
    if config.strategy == "data_parallel":
        cluster = read_keras_distribution(os.environ)
        if cluster is None:
            devices = keras.distribution.list_devices()
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
            return Placement(contextlib.nullcontext(), len(devices), len(devices))
        import jax  # the JAX backend's: local devices of this process

        from tools.distributed.multiprocess import Processes

        try:
            with startup_watchdog(cluster, config.worker_timeout, hint="KERAS_DISTRIBUTION_PROCESS_ID"):
                keras.distribution.initialize(",".join(cluster.addresses), cluster.count, cluster.index)
        except (RuntimeError, jax.errors.JaxRuntimeError) as e:  # JAX's own time limit (300 s) came first
            first = first_line(e, 300)
            raise UsageError(f"the {cluster.count} processes did not all join ({first}): start train.py on every "
                             "machine with its own KERAS_DISTRIBUTION_PROCESS_ID, or check the addresses") from None
        devices = keras.distribution.list_devices()
        parallel = keras.distribution.DataParallel(devices=devices)
        parallel.auto_shard_dataset = False  # each process loads its own shard (data_flow)
        keras.distribution.set_distribution(parallel)
        return Placement(contextlib.nullcontext(), len(devices), jax.local_device_count(), cluster,
                         Processes(cluster.chief))
    import tensorflow as tf  # tf.distribute is what mirrored and multiworker are

    if config.strategy == "multiworker":
        from tools.distributed import multiworker  # TensorFlow's: imported only here

        cluster = read_tf_config(os.environ.get("TF_CONFIG"))
        multiworker.keras_fixes()
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=config.worker_timeout)
        with startup_watchdog(cluster, config.worker_timeout):
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        return Placement(strategy.scope(), strategy.num_replicas_in_sync, len(strategy.extended.worker_devices),
                         cluster, multiworker.Collective(strategy, cluster.chief), strategy)
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    strategy = tf.distribute.MirroredStrategy(devices)
    return Placement(strategy.scope(), strategy.num_replicas_in_sync, strategy.num_replicas_in_sync, strategy=strategy)


def use_jit(choice):
    """--jit_compile: "auto" is off on TensorFlow without a GPU (slower there), else on."""
    if choice != "auto":
        return choice == "on"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # only to ask whether a GPU is present (a JAX install may have no TensorFlow)

        return bool(tf.config.list_physical_devices("GPU"))
    return True


#: What to install when a GPU is there but the backend cannot use it (README, "GPU").
GPU_INSTALL = {"jax": 'pip install -U "jax[cuda12]"', "tensorflow": 'pip install -U "tensorflow[and-cuda]"'}


def backend_devices():
    """(kind, names) of what the Keras backend computes on: ("GPU", [...]) / ("TPU", [...]) or ("CPU", [...])."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax  # the JAX backend's own device list

        devices = jax.devices()
        return devices[0].platform.upper(), [getattr(d, "device_kind", str(d)) for d in devices]
    if backend == "tensorflow":
        import tensorflow as tf  # only to list the devices TensorFlow sees

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
            return "GPU", names
        return "CPU", [d.name for d in tf.config.list_physical_devices("CPU")]
    return "CPU", [backend]


def nvidia_smi_gpus(timeout=10):
    """Names of the NVIDIA GPUs `nvidia-smi` lists; [] when it is absent, fails or hangs."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=timeout, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def device_report(kind, names, smi_gpus, backend):
    """(the "device: ..." line, a warning or None) for what training runs on."""
    counted = {}
    for n in names:
        counted[n] = counted.get(n, 0) + 1
    what = ", ".join(f"{c} x {n}" if c > 1 else n for n, c in counted.items())
    line = f"device: {kind} ({what}), backend {backend}"
    if kind == "CPU" and smi_gpus:
        return line, (f"warning: nvidia-smi sees {', '.join(smi_gpus)} but {backend} runs on the CPU: its "
                      f"installed wheel has no GPU support. Install it: {GPU_INSTALL.get(backend, GPU_INSTALL['jax'])} "
                      "(README, section GPU)")
    return line, None
