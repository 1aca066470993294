"""The delivery contract of ARCHITECTURE §3, on real PostgreSQL and real NATS JetStream."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import nats
import sqlalchemy as sa

from mlife_shared.db import Database
from mlife_shared.events import new_envelope
from mlife_shared.messaging import outbox
from mlife_shared.messaging.relay import Relay
from mlife_shared.messaging.repository import DeadLetterRepository, OutboxRepository
from tests.backbone.kill_after_commit import ACK_WAIT
from tests.backbone.pinger import PingRecorded, count, effects, pings
from tests.support.backbone import Pair, env_for_subprocess, pinger_client, reset_streams
from tests.support.nats import OwnNats
from tests.support.waiting import wait_for

STREAM = "MLIFE_PINGER"


async def stream_messages(js: Any) -> int:
    return int((await js.stream_info(STREAM)).state.messages)


async def backlog(url: str) -> int:
    db = Database(url)
    try:
        async with db.transaction() as s:
            return await OutboxRepository(s).backlog()
    finally:
        await db.dispose()


async def dead_letters(url: str) -> list[Any]:
    db = Database(url)
    try:
        async with db.transaction() as s:
            return list(await DeadLetterRepository(s).list(limit=100))
    finally:
        await db.dispose()


@asynccontextmanager
async def running(*loops: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(loop(stop)) for loop in loops]
    try:
        yield stop
    finally:
        stop.set()
        for t in tasks:
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(t, 10)
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception():
                raise t.exception()  # type: ignore[misc]


async def test_rolled_back_request_publishes_nothing(pair: Pair, tmp_path: Path) -> None:
    async with pinger_client(pair.producer_url, pair.nats_url, tmp_path) as client:
        r = await client.post("/api/pinger/pings", params={"fail_after_write": True})
    assert r.status_code == 409
    assert r.json()["error"] == "Conflict"
    assert await count(pair.producer_url, pings) == 0
    assert await backlog(pair.producer_url) == 0
    published = await pair.relay().publish_batch()
    assert published == 0
    assert await stream_messages(pair.js) == 0


async def test_committed_change_publishes_exactly_one_event(pair: Pair, tmp_path: Path) -> None:
    async with pinger_client(pair.producer_url, pair.nats_url, tmp_path) as client:
        r = await client.post("/api/pinger/pings", params={"n": 7})
    assert r.status_code == 201
    assert await backlog(pair.producer_url) == 1
    relay = pair.relay()
    assert await relay.publish_batch() == 1
    assert await relay.publish_batch() == 0
    assert await backlog(pair.producer_url) == 0
    assert await stream_messages(pair.js) == 1
    msg = await pair.js.get_last_msg(STREAM, "ping.recorded")  # type: ignore[attr-defined]
    body = json.loads(msg.data)
    assert body["type"] == "ping.recorded" and body["source"] == "pinger"
    assert body["data"]["ping_id"] == r.json()["id"] and body["data"]["n"] == 7
    assert msg.headers["Nats-Msg-Id"] == body["id"]


async def test_nats_down_during_200_writes_then_all_arrive(make_database: Any, own_nats: OwnNats,
                                                           tmp_path: Path) -> None:
    from tests.backbone.pinger import create_test_tables

    producer, consumer = await make_database("bam.migrations"), await make_database("dam.migrations")
    await create_test_tables(producer)
    await create_test_tables(consumer)
    nc = await nats.connect(own_nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream()
    await reset_streams(js)
    p = Pair(producer, consumer, own_nats.url, js, nc)
    relay, runner = p.relay(publish_timeout=1.0), p.runner()
    async with running(relay.run, runner.run):
        own_nats.stop()
        async with pinger_client(producer, "nats://127.0.0.1:1", tmp_path) as client:
            for i in range(200):
                r = await client.post("/api/pinger/pings", params={"n": i})
                assert r.status_code == 201, r.text
        assert await count(producer, pings) == 200
        assert await backlog(producer) > 0  # nothing could be published while NATS was down
        own_nats.start()

        async def _all_applied() -> bool:
            return await count(consumer, effects) == 200

        await wait_for(_all_applied, 60, "all 200 events to be applied")
        await wait_for(lambda: _zero(backlog(producer)), 30, "the outbox to drain")
    assert await count(consumer, effects) == 200
    engine = Database(consumer).engine
    async with engine.connect() as conn:
        distinct = await conn.scalar(sa.select(sa.func.count(sa.distinct(effects.c.ping_id))))
    await engine.dispose()
    assert distinct == 200
    assert await stream_messages(js) == 200
    await nc.close()


async def _zero(aw: Any) -> bool:
    return (await aw) == 0


async def test_consumer_killed_after_commit_before_ack_applies_once(pair: Pair, tmp_path: Path) -> None:
    async with pinger_client(pair.producer_url, pair.nats_url, tmp_path) as client:
        assert (await client.post("/api/pinger/pings", params={"n": 1})).status_code == 201
    assert await pair.relay().publish_batch() == 1
    proc = subprocess.run([sys.executable, "-m", "tests.backbone.kill_after_commit", pair.consumer_url,
                           pair.nats_url], env=env_for_subprocess(), timeout=60, capture_output=True)
    assert proc.returncode == 9, proc.stderr.decode()[-2000:]  # died between its commit and its ack
    assert await count(pair.consumer_url, effects) == 1
    runner = pair.runner(ack_wait=ACK_WAIT)
    async with running(runner.run):
        await wait_for(lambda: _eq(runner.stats.duplicates, 1), 30, "the redelivery")
    assert runner.stats.handled == 0
    assert await count(pair.consumer_url, effects) == 1
    info = await pair.js.consumer_info(STREAM, "ponger-pings")  # type: ignore[attr-defined]
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def _eq(value: int, expected: int) -> bool:
    return value == expected


async def test_always_failing_handler_is_dead_lettered_while_others_flow(pair: Pair, tmp_path: Path) -> None:
    async with pinger_client(pair.producer_url, pair.nats_url, tmp_path) as client:
        assert (await client.post("/api/pinger/pings", params={"n": 0, "poison": True})).status_code == 201
        for i in range(1, 11):
            assert (await client.post("/api/pinger/pings", params={"n": i})).status_code == 201
    relay, runner = pair.relay(), pair.runner(max_deliver=3, backoff=[0.2])
    async with running(relay.run, runner.run):
        await wait_for(lambda: _eq_async(count(pair.consumer_url, effects), 10), 30, "the good events")
        await wait_for(lambda: _len_async(dead_letters(pair.consumer_url), 1), 30, "the dead letter")
    letters = await dead_letters(pair.consumer_url)
    assert len(letters) == 1
    letter = letters[0]
    assert letter.reason == "failed" and letter.deliveries == 3 and "always fails" in letter.error
    assert json.loads(letter.payload)["data"]["poison"] is True
    assert runner.stats.failures == 3
    assert await count(pair.consumer_url, effects) == 10


async def _eq_async(aw: Any, expected: int) -> bool:
    return (await aw) == expected


async def _len_async(aw: Any, expected: int) -> bool:
    return len(await aw) == expected


async def test_two_relays_at_once_publish_no_duplicate(pair: Pair, tmp_path: Path) -> None:
    async with pinger_client(pair.producer_url, pair.nats_url, tmp_path) as client:
        for i in range(300):
            assert (await client.post("/api/pinger/pings", params={"n": i})).status_code == 201
    relays = [pair.relay(batch_size=16), pair.relay(batch_size=16)]
    runner = pair.runner()
    async with running(relays[0].run, relays[1].run, runner.run):
        await wait_for(lambda: _zero(backlog(pair.producer_url)), 60, "both relays to drain the outbox")
        await wait_for(lambda: _eq_async(count(pair.consumer_url, effects), 300), 60, "300 effects")
    assert relays[0].published > 0 and relays[1].published > 0, "both relays took part"
    assert relays[0].published + relays[1].published == 300
    assert await stream_messages(pair.js) == 300
    assert await count(pair.consumer_url, effects) == 300
    assert runner.stats.duplicates == 0


async def test_unknown_and_malformed_messages_are_dead_lettered(pair: Pair) -> None:
    js: Any = pair.js
    good = new_envelope(PingRecorded(ping_id=uuid.uuid4(), n=1))
    unknown = {**good.model_dump(mode="json"), "id": str(uuid.uuid4()), "type": "nobody.knows"}
    invalid = {**good.model_dump(mode="json"), "id": str(uuid.uuid4()), "data": {"n": "not a number"}}
    await js.publish("ping.recorded", b"\xff not json at all", headers={"Nats-Msg-Id": str(uuid.uuid4())})
    await js.publish("ping.recorded", json.dumps(unknown).encode(), headers={"Nats-Msg-Id": unknown["id"]})
    await js.publish("ping.recorded", json.dumps(invalid).encode(), headers={"Nats-Msg-Id": invalid["id"]})
    await js.publish("ping.recorded", b"[1, 2, 3]", headers={"Nats-Msg-Id": str(uuid.uuid4())})
    await js.publish("ping.recorded", good.model_dump_json().encode(), headers={"Nats-Msg-Id": str(good.id)})
    runner = pair.runner()
    async with running(runner.run):
        await wait_for(lambda: _eq_async(count(pair.consumer_url, effects), 1), 30, "the good event")
        await wait_for(lambda: _len_async(dead_letters(pair.consumer_url), 4), 30, "four dead letters")
    letters = sorted(await dead_letters(pair.consumer_url), key=lambda d: d.stream_seq)
    assert [d.reason for d in letters] == ["malformed", "unknown", "malformed", "malformed"]
    assert all(d.deliveries == 1 for d in letters), "poison is never retried"
    assert "nobody.knows" in letters[1].error
    info = await js.consumer_info(STREAM, "ponger-pings")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_the_embedded_default_sqlite_delivers_too(tmp_path: Path, nats_url: str) -> None:
    from mlife_shared.migrations import upgrade
    from tests.backbone.pinger import create_test_tables

    producer, consumer = (f"sqlite+aiosqlite:///{tmp_path / 'pinger.db'}",
                          f"sqlite+aiosqlite:///{tmp_path / 'ponger.db'}")
    upgrade("bam.migrations", producer)
    upgrade("dam.migrations", consumer)
    await create_test_tables(producer)
    await create_test_tables(consumer)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await reset_streams(js)
    p = Pair(producer, consumer, nats_url, js, nc)
    async with pinger_client(producer, nats_url, tmp_path) as client:
        assert (await client.post("/api/pinger/pings", params={"fail_after_write": True})).status_code == 409
        for i in range(20):
            assert (await client.post("/api/pinger/pings", params={"n": i})).status_code == 201
    relay, runner = p.relay(), p.runner()
    async with running(relay.run, runner.run):
        await wait_for(lambda: _eq_async(count(consumer, effects), 20), 30, "20 effects on SQLite")
    assert await stream_messages(js) == 20 and await backlog(producer) == 0
    await nc.close()


async def test_add_many_writes_a_batch_that_commits_or_rolls_back_whole(pair: Pair) -> None:
    from mlife_shared.messaging import outbox

    db = Database(pair.producer_url)
    try:
        events = [PingRecorded(ping_id=uuid.uuid4(), n=i) for i in range(5)]
        with suppress(RuntimeError):
            async with db.transaction() as session:
                await outbox.add_many(session, events)
                raise RuntimeError("the request failed after writing")
        assert await backlog(pair.producer_url) == 0
        async with db.transaction() as session:
            envelopes = await outbox.add_many(session, events)
            assert await outbox.add_many(session, []) == []
        assert await backlog(pair.producer_url) == 5
    finally:
        await db.dispose()
    assert await pair.relay().publish_batch() == 5
    assert await stream_messages(pair.js) == 5
    msg = await pair.js.get_last_msg(STREAM, "ping.recorded")  # type: ignore[attr-defined]
    body = json.loads(msg.data)
    assert body["id"] == str(envelopes[-1].id) and body["data"]["n"] == 4


async def test_a_row_whose_publish_fails_stays_unpublished_and_the_rest_of_its_batch_is_published(pair: Pair) -> None:
    # The relay claims and marks a batch in one statement; a row JetStream refuses (no stream takes its
    # subject) is given back in the same transaction, with the failure recorded, and is tried again later.
    good, stray = new_envelope(PingRecorded(ping_id=uuid.uuid4(), n=1)), uuid.uuid4()
    db = Database(pair.producer_url)
    try:
        async with db.transaction() as s:
            repo = OutboxRepository(s)
            await repo.add_event(stray, "nowhere.no_stream", json.dumps({"id": str(stray)}), notify=False)
            await repo.add_event(good.id, good.type, good.model_dump_json(), notify=False)
        relay = pair.relay(publish_timeout=2.0)
        assert await relay.publish_batch() == 1
        assert await stream_messages(pair.js) == 1
        async with db.transaction() as s:
            rows = (await s.execute(sa.text("SELECT id, published_at IS NOT NULL, attempts, last_error "
                                            "FROM outbox ORDER BY seq"))).all()
        assert [(r[0], r[1], r[2]) for r in rows] == [(stray, False, 1), (good.id, True, 0)]
        assert rows[0][3]
        with suppress(ConnectionError):  # only the failing row is left: the batch fails as a whole
            await relay.publish_batch()
        assert await backlog(pair.producer_url) == 1
    finally:
        await db.dispose()


async def test_back_to_back_commits_of_one_process_are_all_published_without_waiting_for_the_poll(pair: Pair) -> None:
    # A process sends at most one NOTIFY per outbox.NOTIFY_EVERY (NOTIFY serialises PostgreSQL commits); the
    # relay keeps polling for a while after each batch, so the commits in between are published too, long
    # before its 60 s poll would find them.
    db = Database(pair.producer_url)
    relay, stop = Relay(Database(pair.producer_url), pair.js, poll_seconds=60.0), asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.5)  # LISTEN is set up
        for n in range(6):
            async with db.transaction() as s:
                await outbox.add(s, PingRecorded(ping_id=uuid.uuid4(), n=n))
        await wait_for(lambda: relay.published == 6, 30, "the six events to be published")
        assert await stream_messages(pair.js) == 6
        assert await backlog(pair.producer_url) == 0
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await relay.db.dispose()
        await db.dispose()
