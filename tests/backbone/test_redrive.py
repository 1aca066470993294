"""Re-driving dead letters through a service's API (issue 14, deliverable 4): after a fix, a poison event
takes effect once; re-driven twice, or when a delivery already applied it, nothing changes; a handler that
still fails leaves the letter pending with the error; only maintainers may do it. Real PostgreSQL and NATS."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceSpec, create_app
from mlife_shared.db import Database
from mlife_shared.events import Envelope
from mlife_shared.messaging.consumer import Subscription
from mlife_shared.messaging.models import DeadLetter
from tests.backbone.pinger import PingerSettings, PingRecorded, count, effects
from tests.backbone.test_delivery import dead_letters, running
from tests.support.auth import as_role
from tests.support.backbone import Pair, pinger_client, pinger_settings
from tests.support.waiting import wait_for

FIX = {"deployed": False}


async def fixed_effect(event: Envelope[PingRecorded], session: AsyncSession) -> None:
    """The consumer's handler, before and after its fix: poison pings fail until the fix is deployed."""
    if event.data.poison and not FIX["deployed"]:
        raise RuntimeError("this ping always fails")
    await session.execute(sa.insert(effects).values(event_id=event.id, ping_id=event.data.ping_id, n=event.data.n))


PONGER = ServiceSpec(name="ponger", title="ponger", description="test consumer", settings_cls=PingerSettings,
                     migrations="dam.migrations",
                     subscriptions=lambda ctx: [Subscription(name="pings", subject="ping.recorded", handler=fixed_effect)])


@asynccontextmanager
async def ponger_api(pair: Pair, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(PONGER, pinger_settings(pair.consumer_url, pair.nats_url, tmp_path))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ponger") as client:
            yield client


async def poison_dead_lettered(pair: Pair, tmp_path: Path, goods: int = 2) -> dict[str, Any]:
    """A poison ping and `goods` good ones through the real relay and consumer: the poison one dead-lettered."""
    FIX["deployed"] = False
    async with pinger_client(pair.producer_url, pair.nats_url, tmp_path) as client:
        assert (await client.post("/api/pinger/pings", params={"n": 99, "poison": True})).status_code == 201
        for i in range(goods):
            assert (await client.post("/api/pinger/pings", params={"n": i})).status_code == 201
    async with running(pair.relay().run, pair.runner(max_deliver=2, backoff=[0.1]).run):
        await wait_for(lambda: _letters(pair.consumer_url, 1), 30, "the poison ping dead-lettered")
        await wait_for(lambda: _effects(pair.consumer_url, goods), 30, "the good pings applied")
    (letter,) = await dead_letters(pair.consumer_url)
    assert letter.consumer == "ponger-pings" and letter.reason == "failed"
    return {"id": str(letter.id), "payload": letter.payload}


async def _letters(url: str, n: int) -> bool:
    return len(await dead_letters(url)) == n


async def _effects(url: str, n: int) -> bool:
    return await count(url, effects) == n


async def test_a_poison_event_fixed_and_redriven_takes_effect_once(pair: Pair, tmp_path: Path) -> None:
    letter = await poison_dead_lettered(pair, tmp_path)
    url = f"/api/ponger/dead-letters/redrive?id={letter['id']}"
    async with ponger_api(pair, tmp_path) as api:
        assert (await api.post(url, headers=as_role("engineer"))).status_code == 403
        still_broken = await api.post(url, headers=as_role("maintainer", "mia"))
        assert still_broken.status_code == 409 and "always fails" in still_broken.json()["detail"]
        (pending,) = (await api.get("/api/ponger/dead-letters", params={"state": "pending"},
                                    headers=as_role("viewer"))).json()
        assert (pending["redrives"], pending["redriven_at"]) == (1, None)
        assert "always fails" in pending["redrive_error"]
        assert await count(pair.consumer_url, effects) == 2  # nothing of the failed attempt stayed

        FIX["deployed"] = True
        done = await api.post(url, headers=as_role("maintainer", "mia"))
        assert done.status_code == 200, done.text
        assert [r["outcome"] for r in done.json()] == ["applied"]
        assert await count(pair.consumer_url, effects) == 3
        again = await api.post(url, headers=as_role("maintainer", "max"))
        assert again.status_code == 409 and "re-driven" in again.json()["detail"] and "mia" in again.json()["detail"]
        assert await count(pair.consumer_url, effects) == 3  # exactly once
        (audited,) = (await api.get("/api/ponger/dead-letters", params={"state": "redriven"},
                                    headers=as_role("viewer"))).json()
        assert (audited["redriven_by"], audited["redrive_note"]) == ("mia", "applied")
        assert (await api.get("/api/ponger/dead-letters", params={"state": "pending"},
                              headers=as_role("viewer"))).json() == []


async def test_redriving_a_consumer_applies_each_pending_letter_once(pair: Pair, tmp_path: Path) -> None:
    """All of one consumer's letters: the poison one is applied; a copy of an event a delivery had already
    applied changes nothing; a malformed one is reported and stays; another consumer's are untouched."""
    letter = await poison_dead_lettered(pair, tmp_path)
    applied_event = await _an_applied_envelope(pair)
    db = Database(pair.consumer_url)
    try:
        async with db.transaction() as session:
            session.add_all([
                DeadLetter(consumer="ponger-pings", subject="ping.recorded", event_id=applied_event["id"],
                           payload=json.dumps(applied_event), reason="failed", error="timeout", deliveries=2),
                DeadLetter(consumer="ponger-pings", subject="ping.recorded", payload="not an envelope",
                           reason="malformed", error="not JSON", deliveries=1),
                DeadLetter(consumer="ponger-other", subject="ping.recorded", payload=letter["payload"],
                           reason="failed", error="x", deliveries=1)])
    finally:
        await db.dispose()
    FIX["deployed"] = True
    async with ponger_api(pair, tmp_path) as api:
        neither = await api.post("/api/ponger/dead-letters/redrive", headers=as_role("maintainer"))
        assert neither.status_code == 400 and "exactly one" in neither.json()["detail"]
        r = await api.post("/api/ponger/dead-letters/redrive", params={"consumer": "ponger-pings"},
                           headers=as_role("maintainer"))
        assert r.status_code == 200, r.text
        outcomes = sorted(x["outcome"] for x in r.json())
        assert outcomes == ["already_applied", "applied", "failed"]
        assert "can never be applied" in next(x["error"] for x in r.json() if x["outcome"] == "failed")
        assert await count(pair.consumer_url, effects) == 3  # 2 good + the poison one, once
        unknown = await api.post("/api/ponger/dead-letters/redrive", params={"consumer": "ponger-other"},
                                 headers=as_role("maintainer"))
        assert unknown.status_code == 409 and "ponger-pings" in unknown.json()["detail"]
        pending = (await api.get("/api/ponger/dead-letters", params={"state": "pending"},
                                 headers=as_role("viewer"))).json()
        assert sorted(p["consumer"] for p in pending) == ["ponger-other", "ponger-pings"]  # the malformed one stays


async def _an_applied_envelope(pair: Pair) -> dict[str, Any]:
    """The envelope of a good ping the consumer applied (its inbox row exists), rebuilt from the effect."""
    engine = Database(pair.consumer_url)
    try:
        async with engine.transaction() as session:
            row = (await session.execute(sa.select(effects).where(effects.c.n == 0))).one()
    finally:
        await engine.dispose()
    return {"id": str(row.event_id), "type": "ping.recorded", "version": 1, "source": "pinger",
            "time": "2026-01-01T00:00:00Z", "data": {"ping_id": str(row.ping_id), "n": 0, "poison": False},
            "correlation_id": None, "causation_id": None}
