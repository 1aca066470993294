"""Reading the per-sample outcomes a `testing.completed` names (`outcomes_key`: JSON lines of
TestingOutcomeLine), streamed from the object store; consumers of that event share it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from pydantic import ValidationError

from mlife_shared.events.contracts import TestingOutcomeLine
from mlife_shared.objectstore import ObjectStore


async def outcome_lines(store: ObjectStore, key: str) -> AsyncIterator[TestingOutcomeLine]:
    """Each line as a TestingOutcomeLine; a ValueError names the first invalid line."""
    buffer = b""
    number = 0
    async for chunk in await store.get(key):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            number += 1
            if raw.strip():
                yield _parse(raw, number)
    if buffer.strip():
        yield _parse(buffer, number + 1)


def _parse(raw: bytes, number: int) -> TestingOutcomeLine:
    try:
        return TestingOutcomeLine.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"outcomes line {number} is invalid: {exc}") from exc
