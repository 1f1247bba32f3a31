"""--strategy on 2 logical CPU devices: mirrored (TensorFlow) trains as one device does; data_parallel (JAX) runs
in tests/test_train.py's JAX test, multiworker in tests/test_multiworker.py."""

import json
import os
import subprocess
import sys

import pytest

from support.scripts import ROOT


#: Relative difference allowed between the losses of the one-device and the two-device run: float noise only.
#: Measured 1.6e-7 at most (Keras 3.15.1, TensorFlow 2.21.0, 2 logical CPU devices, tests/support/equivalence.py);
#: the run whose learning rate the linear scaling rule forgot is 1.5e-3 away after one epoch.
FLOAT_NOISE = 1e-5


def test_two_devices_train_as_one_and_an_unscaled_learning_rate_would_show(tiny_data, tmp_path):
    """Same photos, seed and global batch (16 on one device, 8 on each of two, --strategy mirrored), a model
    without dropout or BatchNormalization, no augmentation: the two runs' losses agree to float noise. A third
    run, on two devices with a learning rate the linear scaling rule would have to double, does not: the test
    tells a missed scaling from a correct one (Adam's steps do not follow the gradient's scale, so a sum of
    gradients instead of their mean would pass it)."""
    r = subprocess.run([sys.executable, os.path.join("tests", "support", "equivalence.py"), tiny_data, tmp_path],
                       cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "2 devices (mirrored): global batch 8 x 2 = 16, learning rate 0.0005 x 2 = 0.001" in r.stdout
    rows = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("ROWS "))[5:])

    def gap(a, b):
        return max(abs(x[k] - y[k]) / abs(x[k]) for x, y in zip(rows[a], rows[b]) for k in ("loss", "val_loss"))

    assert len(rows["single"]) == len(rows["mirrored"]) == 3
    assert gap("single", "mirrored") < FLOAT_NOISE, rows
    assert gap("single", "unscaled") > 100 * FLOAT_NOISE, rows


@pytest.mark.parametrize("strategy,backend,hint", [("data_parallel", "tensorflow", "--strategy mirrored"),
                                                   ("mirrored", "jax", "--strategy data_parallel")])
def test_strategy_of_the_other_backend_is_one_clear_line(tiny_data, tmp_path, cli, strategy, backend, hint):
    if backend == "jax":
        pytest.importorskip("jax", reason="jax is in requirements.txt; install it to run this test")
    r = cli("train.py", "--data_dir", tiny_data, "--weights", "none", "--strategy", strategy, "--output_dir",
            tmp_path, env={"KERAS_BACKEND": backend})
    assert r.returncode == 2 and hint in r.stderr and "Traceback" not in r.stderr
