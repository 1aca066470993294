"""The garbage collector of a long-running process, once its start is over.

Everything a service allocates while it starts (modules, FastAPI's and SQLAlchemy's tables, pydantic's validators:
a few hundred thousand objects) lives as long as the process. Left in the collected generations, every full
collection walks them again: during a bulk import of 20,000 badcases that was a third of the process's CPU
(bench/profiles/bam.md). `gc.freeze()` moves them to the permanent generation, which no collection visits, and a
larger young generation lets a request's short-lived objects die before a collection sees them (CPython 3.13
raised the same threshold from 700 to 2,000 for the same reason)."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
_frozen = False


def freeze_startup_heap() -> None:
    """Call once the process has started (its app's lifespan up to `yield`, a worker before its loops). Only the
    first call of a process freezes: a frozen object is never collected, so a process that starts many apps (the
    tests) must not freeze each one's objects, which are garbage once that app stops."""
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
