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


def freeze_startup_heap() -> None:
    """Call once the process has started (its app's lifespan up to `yield`, a worker before its loops)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
