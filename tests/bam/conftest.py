from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from pathlib import Path

import httpx
import nats
import pytest
from nats.js.errors import NotFoundError

from bam.app import SPEC, subscriptions
from bam.config import Settings
from mlife_shared.events import stream_for_subject
from mlife_shared.messaging.bus import provision_streams
from mlife_shared.messaging.consumer import durable_name
from tests.support.apps import asgi_client
from tests.support.auth import SECRET, as_role
from tests.support.bam import outcomes_recorded, run_consumers, write_outcomes
from tests.support.nats import publish

# importable from here as before
__all__ = ["SECRET", "as_role", "outcomes_recorded", "publish", "run_consumers", "write_outcomes"]


@pytest.fixture
async def bam_db(make_database: Callable[[str], Awaitable[str]]) -> str:
    return await make_database("bam.migrations")


@pytest.fixture
async def bam(bam_db: str, nats_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """BAM on a fresh PostgreSQL database, called as a tester."""
    settings = Settings(environment="test", database_url=bam_db, nats_url=nats_url, identity_secret=SECRET,
                        home=tmp_path, object_store_path=tmp_path / "objects",
                        function_weights={"emotion": 2.0})
    async with asgi_client(SPEC, settings, "tester", "tess") as client:
        yield client


@pytest.fixture
async def bus(nats_url: str):  # type: ignore[no-untyped-def]
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await provision_streams(js)
    ctx_subs = subscriptions(None)  # type: ignore[arg-type]
    for stream in ("MLIFE_MTT", "MLIFE_MSM"):
        await js.purge_stream(stream)
    for sub in ctx_subs:
        with suppress(NotFoundError):
            await js.delete_consumer(stream_for_subject(sub.subject), durable_name("bam", sub))
    yield js
    await nc.close()
