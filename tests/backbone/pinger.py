"""A dummy pair of services on the real skeleton, for the backbone tests: "pinger" records pings and
emits `ping.recorded` through the outbox; "ponger" consumes them into its own table."""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic_settings import SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceSpec, SessionDep
from mlife_shared.auth import Tester
from mlife_shared.errors import Conflict
from mlife_shared.events import Envelope, EventData, register
from mlife_shared.messaging import outbox
from mlife_shared.settings import ServiceSettings

test_metadata = sa.MetaData()
pings = sa.Table("ping", test_metadata, sa.Column("id", sa.Uuid, primary_key=True), sa.Column("n", sa.Integer))
effects = sa.Table("pong_effect", test_metadata, sa.Column("event_id", sa.Uuid, primary_key=True),
                   sa.Column("ping_id", sa.Uuid), sa.Column("n", sa.Integer))


@register
class PingRecorded(EventData):
    """Sent when a test ping was recorded (tests only)."""

    subject = "ping.recorded"
    producer = "pinger"
    ping_id: uuid.UUID
    n: int
    poison: bool = False


class PingerSettings(ServiceSettings):
    service_name: ClassVar[str] = "pinger"
    model_config = SettingsConfigDict(env_prefix="MLIFE_PINGER_", extra="ignore")


router = APIRouter()


@router.post("/pings", status_code=201)
async def record_ping(session: SessionDep, _: Tester, n: int = 0,
                      fail_after_write: Annotated[bool, Query()] = False, poison: bool = False) -> dict[str, str]:
    """Record a ping; `fail_after_write` raises after the row and the event were written."""
    ping_id = uuid.uuid4()
    await session.execute(sa.insert(pings).values(id=ping_id, n=n))
    await outbox.add(session, PingRecorded(ping_id=ping_id, n=n, poison=poison))
    if fail_after_write:
        raise Conflict("failing on purpose after writing")
    return {"id": str(ping_id)}


PINGER = ServiceSpec(name="pinger", title="pinger", description="test producer", settings_cls=PingerSettings,
                     migrations="bam.migrations", routers=lambda: [router])


async def record_effect(event: Envelope[PingRecorded], session: AsyncSession) -> None:
    if event.data.poison:
        raise RuntimeError("this ping always fails")
    await session.execute(sa.insert(effects).values(event_id=event.id, ping_id=event.data.ping_id, n=event.data.n))


async def create_test_tables(url: str) -> None:
    from mlife_shared.db import make_engine

    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(test_metadata.create_all)
    await engine.dispose()


async def count(url: str, table: sa.Table) -> int:
    from mlife_shared.db import make_engine

    engine = make_engine(url)
    async with engine.connect() as conn:
        n = await conn.scalar(sa.select(sa.func.count()).select_from(table))
    await engine.dispose()
    return int(n or 0)
