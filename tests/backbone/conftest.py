from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest

from tests.backbone.pinger import create_test_tables
from tests.support.backbone import Pair, env_for_subprocess, pinger_client, pinger_settings, reset_streams
from tests.support.nats import OwnNats
from tests.support.waiting import wait_for

# importable from here as before
__all__ = ["OwnNats", "Pair", "env_for_subprocess", "pinger_client", "pinger_settings", "reset_streams", "wait_for"]


@pytest.fixture
async def pair(make_database: Callable[[str], Awaitable[str]], nats_url: str) -> AsyncIterator[Pair]:
    producer = await make_database("bam.migrations")
    consumer = await make_database("dam.migrations")
    await create_test_tables(producer)
    await create_test_tables(consumer)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await reset_streams(js)
    yield Pair(producer, consumer, nats_url, js, nc)
    await nc.close()


@pytest.fixture
async def own_nats() -> AsyncIterator[OwnNats]:
    server = OwnNats()
    server.start()
    await server.wait_ready()
    yield server
    server.remove()
