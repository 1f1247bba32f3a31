"""What train.py says about the device it trains on, and the warning for a GPU the backend cannot use."""

import os
import stat

from tools.distributed.devices import GPU_INSTALL, backend_devices, device_report, nvidia_smi_gpus


def _fake_nvidia_smi(folder, body):
    path = folder / "nvidia-smi"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(folder)


def test_nvidia_smi_names_are_read_and_failures_mean_no_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, 'echo "NVIDIA H200"; echo "NVIDIA H200"'))
    assert nvidia_smi_gpus() == ["NVIDIA H200", "NVIDIA H200"]
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, "echo 'NVIDIA-SMI has failed' >&2; exit 9"))
    assert nvidia_smi_gpus() == []
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, "sleep 30"))
    assert nvidia_smi_gpus(timeout=1) == []
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert nvidia_smi_gpus() == []


def test_cpu_backend_beside_a_gpu_is_warned_about_with_the_install_line():
    line, warning = device_report("CPU", ["/physical_device:CPU:0"], ["NVIDIA H200"], "tensorflow")
    assert line == "device: CPU (/physical_device:CPU:0), backend tensorflow"
    assert "nvidia-smi sees NVIDIA H200 but tensorflow runs on the CPU" in warning
    assert GPU_INSTALL["tensorflow"] in warning
    _, warning = device_report("CPU", ["cpu"], ["NVIDIA H200"], "jax")
    assert 'pip install -U "jax[cuda12]"' in warning


def test_gpus_are_counted_and_not_warned_about():
    line, warning = device_report("GPU", ["NVIDIA H200"] * 8, ["NVIDIA H200"] * 8, "jax")
    assert line == "device: GPU (8 x NVIDIA H200), backend jax" and warning is None
    assert device_report("CPU", ["cpu"], [], "jax")[1] is None


def test_this_machine_reports_what_keras_computes_on():
    kind, names = backend_devices()
    assert kind in ("CPU", "GPU", "TPU") and names
    if not os.path.exists("/dev/nvidia0"):
        assert kind == "CPU"
