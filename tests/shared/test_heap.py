"""`freeze_startup_heap`: the start-up heap leaves the collected generations once per process, never again (a frozen
object is never collected: a process that starts many apps must not freeze each one's garbage)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from mlife_shared.heap import YOUNG_THRESHOLD, freeze_startup_heap

assert gc.get_freeze_count() == 0
freeze_startup_heap()
first = gc.get_freeze_count()
assert first > 1000, first
assert gc.get_threshold()[0] == YOUNG_THRESHOLD
later = [object() for _ in range(5000)]
freeze_startup_heap()
assert gc.get_freeze_count() == first, (gc.get_freeze_count(), first)
print("ok", first)
"""


def test_the_start_up_heap_is_frozen_once_per_process() -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("ok"), run.stdout + run.stderr
