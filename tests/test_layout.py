"""The code's layout rules (bench/layout.py) hold on this checkout: no folder or module grows to a quarter
of the code, entry scripts stay flag readers, nothing imports an entry script, few imports hide inside
functions; no test file imports another, conftest.py holds only fixtures and hooks, each of its fixtures
(the one browser) is defined once. A change that breaks one fails here, with bench/layout.py's figures in
the output."""

import os
import subprocess
import sys

from support import ROOT



def test_bench_layout_rules_pass():
    run = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "layout.py")], capture_output=True, text=True,
                         timeout=120)
    failed = [line.strip() for line in run.stdout.splitlines() if line.strip().startswith("FAIL")]
    assert run.returncode == 0 and not failed, run.stdout
    assert run.stdout.count("PASS") >= 11, run.stdout  # every rule was checked
