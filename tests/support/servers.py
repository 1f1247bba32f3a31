"""Real servers for the tests (and bench/): server processes started and stopped, an in-process app's
model waited for, a folder served over HTTP on 127.0.0.1."""

import http.server
import os
import signal
import socket
import subprocess
import tempfile
import time

import requests

from support import ROOT

#: The checkout (this file is tests/support/servers.py): servers start there, as `python server.py` would.


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, port, env=None, timeout=180):
    """Start a server process and wait until /healthz says ok.

    Its output goes to a temporary file, not a pipe: a busy server would block on a full pipe.
    """
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, **(env or {})), stdout=log,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    proc.log = log
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError(f"server exited with {proc.returncode}: {log.read()[-3000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.2)
    stop(proc)
    raise AssertionError("server did not become healthy in time")


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def proc_status(pid, key):
    """A field of /proc/PID/status in bytes (VmRSS, VmHWM, ...)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def wait_ready(app, timeout=120):
    """Wait until a create_app app's model has loaded (it loads in the background) or failed; its holder."""
    holder = app.extensions["garbage_model"]
    deadline = time.time() + timeout
    while not holder.ready.is_set() and holder.error is None and time.time() < deadline:
        time.sleep(0.05)
    return holder


class QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder's files without a log line per request (the http_dir fixture)."""

    def log_message(self, *args):
        pass
