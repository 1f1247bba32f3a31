"""Running the project's scripts as a user would: the checkout, train.py's small
flags, a lean install's blocked extras, and the environment a user's script sees."""

import os
import subprocess
import sys

from support.servers import ROOT

#: train.py flags that keep a test run small: 32 px, batch 8, 2 loader threads.
FAST = ("--input_size", "32", "--batch_size", "8", "--workers", "2")
#: The one uninterrupted from-scratch run several test files compare with (see scratch_run): global batch 16,
#: which the mirrored test splits over 2 devices.
SCRATCH_ARGS = ("--weights", "none", "--epochs", "2", "--val_split", "0.25", "--tensorboard", *FAST,
                "--batch_size", "16")
#: What requirements.txt leaves out (the export and dev extras): a lean install cannot import them.
NOT_IN_REQUIREMENTS = ("pytest", "playwright", "tf2onnx", "onnxruntime", "ai_edge_litert", "jax")
#: The tests' TensorFlow log level (conftest.py's pytest_configure sets it): its start-up lines stay out of
#: the output the tests read; a user's script runs without it (user_env).
TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"


def run_cli(*args, env=None, timeout=600, cwd=ROOT):
    """Run a project script with this interpreter; returns CompletedProcess (text)."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def lean_blocker(folder):
    """A folder for PYTHONPATH that makes every package of NOT_IN_REQUIREMENTS unimportable."""
    os.makedirs(folder, exist_ok=True)
    for name in NOT_IN_REQUIREMENTS:
        with open(os.path.join(folder, f"{name}.py"), "w") as f:
            f.write(f'raise ImportError("{name} is not in requirements.txt")\n')
    return str(folder)


def user_env(**env):
    """The environment a user's script runs in: without the tests' TF_LOG_LEVEL, so TensorFlow's start-up
    lines are hidden as they are for a user, plus `env`."""
    full_env = {k: v for k, v in os.environ.items() if k != TF_LOG_LEVEL}
    full_env.update(env)
    return full_env


def run_as_user(*args, **env):
    """A script run as a user would (user_env), output unbuffered."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=user_env(**env, PYTHONUNBUFFERED="1"),
                          capture_output=True, text=True, timeout=600)
