"""`mlife demo` is the loop of mlife/demo.py (run for real by tests/e2e); here: the CLI hands it its options."""

from __future__ import annotations

import subprocess
import sys


def test_mlife_demo_is_wired_to_the_demo_with_its_own_options() -> None:
    r = subprocess.run([sys.executable, "-m", "mlife.cli", "demo", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--workdir" in r.stdout and "usage: mlife demo" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "mlife.cli", "demo", "--no-such-option"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "--no-such-option" in bad.stderr
