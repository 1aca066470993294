"""Polling a condition (the timeout only bounds a failing test; nothing asserts on time)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from nats.js import JetStreamContext

from mlife_shared.db import Database
from mlife_shared.messaging.consumer import ConsumerRunner, Subscription

T = TypeVar("T")


async def wait_for(check: Callable[[], Awaitable[T] | T], *how: float | str, timeout: float | None = None,
                   what: str | None = None, interval: float = 0.1) -> T:
    """Poll `check()` (sync or async) until it returns something truthy, and return that.

    The timeout (seconds, default 180) and a description of what is awaited may be passed positionally in either
    order: `wait_for(check, 30, "the consumers")` and `wait_for(check, "task x done")` both read naturally."""
    for arg in how:
        if isinstance(arg, str):
            what = arg
        else:
            timeout = float(arg)
    timeout = 180.0 if timeout is None else timeout
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value: Any = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[no-any-return]
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(f"timed out waiting for {what or 'the condition'}")
        await asyncio.sleep(interval)


async def consume_until(service: str, db_url: str, js: JetStreamContext, subscriptions: list[Subscription],
                        until: Callable[[], Awaitable[Any]], what: str = "the consumers") -> ConsumerRunner:
    """A service's consumer runner on the bus (2 deliveries, a short backoff) until `until()` holds."""
    db = Database(db_url)
    runner = ConsumerRunner(service, db, js, subscriptions, max_deliver=2, backoff=[0.1])
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await wait_for(until, 30, what)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await db.dispose()
    return runner
