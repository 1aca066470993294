"""Outside subscribers (issue 14): a maintainer makes one through the gateway; it gets durables on the streams of
its subjects and a NATS login of its own that nats-server checks with the gateway (auth callout). Real
nats-server 2.15 with the config `mlife up` writes (natsauth.write_embedded_config: static users + auth_callout),
the gateway app in process on a real PostgreSQL database answering the callout; the subscriber side is a separate
connection holding only the subscriber's credentials."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from alembic import command
from nats.aio.client import Client as NATS

from gateway.app import _bootstrap_admin, create
from gateway.config import Settings
from gateway.subscribers.callout import decode_request
from mlife.events import Event, subscribe
from mlife_shared.events.contracts import BadcaseMerged
from mlife_shared.messaging import natsauth
from mlife_shared.messaging.bus import connect, inbox_prefix
from tests.cli.test_events_sdk import publish, registered, uploaded
from tests.support.auth import SECRET
from tests.support.gateway import ADMIN_TOKEN, AUTH
from tests.support.nats import serve_nats, start_nats
from tests.support.processes import free_port, stop
from tests.support.waiting import wait_for


@dataclass
class Bus:
    url: str
    passwords: dict[str, str]
    seed: str


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[Bus]:
    port = free_port()
    conf, passwords = natsauth.write_embedded_config(tmp_path / "nats", port=port)
    server = await serve_nats(tmp_path, port, ["-c", str(conf)])
    bus = Bus(server.url, passwords, natsauth.ensure_callout_seed(tmp_path / "nats"))
    # the streams exist once their producers ran: MTT's and MSM's hold the model events
    await publish(bus.url, passwords, uploaded())
    await publish(bus.url, passwords, registered("0"))
    try:
        yield bus
    finally:
        stop([server.proc])


@pytest.fixture
async def gateway(make_database: Callable[[str], Awaitable[str]], bus: Bus,
                  tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_on(await make_database("gateway.migrations"), bus, tmp_path) as client:
        yield client


@asynccontextmanager
async def gateway_on(database_url: str, bus: Bus, tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app in process on `database_url`, answering the bus's auth callout, called as the admin."""
    closed = f"http://127.0.0.1:{free_port()}"
    settings = Settings(environment="test", database_url=database_url, nats_url=bus.url,
                        nats_user="gateway", nats_password=bus.passwords["gateway"], auth_callout_seed=bus.seed,
                        identity_secret=SECRET, home=tmp_path, bam_url=closed, dam_url=closed, mtt_url=closed,
                        msm_url=closed, admin_token=ADMIN_TOKEN, allowed_hosts=["gateway"], **overrides)
    await _bootstrap_admin(settings)
    app = create(settings)
    async with app.router.lifespan_context(app):

        async def _nats_connected() -> bool:
            return app.state.nats is not None and app.state.nats.is_connected

        await wait_for(_nats_connected, 20, "the gateway's NATS connection")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway/api/gateway",
                                     headers=AUTH) as client:
            yield client


async def create_subscriber(gateway: httpx.AsyncClient, name: str, subjects: list[str], **extra: Any) -> dict[str, Any]:
    r = await gateway.post("/subscribers", json={"name": name, "subjects": subjects, **extra})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def take(n: int, bus: Bus, sub: dict[str, Any], **kw: Any) -> list[Event]:
    """The next `n` events for the subscriber (acknowledged), read with its credentials only; then it stops."""
    got: list[Event] = []

    async def _run() -> None:
        async for event in subscribe(sub["subjects"], durable=sub["durable"], url=bus.url, user=sub["nats_user"],
                                     password=sub["credentials"]["password"], bind=True, wait=1, **kw):
            await event.ack()
            got.append(event)
            if len(got) == n:
                return

    await asyncio.wait_for(_run(), 30)
    return got


@dataclass
class Login:
    """A raw connection (not MLife code) with one login, recording the errors the server sends it."""

    nc: NATS
    errors: list[str]

    async def refused(self, subject: str) -> bool:
        """The server reported a permissions violation naming `subject` (its -ERR reaches the error callback
        asynchronously: waited for, 20 s bound a hang)."""
        await self.nc.flush(timeout=5)
        return await wait_for(lambda: any("permissions violation" in e.lower() and subject.lower() in e.lower()
                                          for e in self.errors), 20, f"a permissions violation on {subject}")


async def login(bus: Bus, user: str, password: str) -> Login:
    errors: list[str] = []

    async def _err(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(bus.url, user=user, password=password, allow_reconnect=False, connect_timeout=20,
                            inbox_prefix=inbox_prefix(user), error_cb=_err)
    return Login(nc, errors)


async def refused_login(bus: Bus, user: str, password: str) -> str:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - nats-py raises its own errors or the server's text
        nc = await nats.connect(bus.url, user=user, password=password, allow_reconnect=False, connect_timeout=20,
                                max_reconnect_attempts=0)
        await nc.close()
    return str(caught.value).lower()


async def test_a_subscriber_reads_its_events_of_two_streams_in_order_and_resumes(gateway: httpx.AsyncClient,
                                                                                 bus: Bus) -> None:
    sub = await create_subscriber(gateway, "acme", ["model.>"], deliver="new")
    assert sub["nats_user"] == "sub-acme" and sub["credentials"]["nats_url"].startswith("nats://")
    assert {d["stream"]: d["durable"] for d in sub["durables"]} == {"MLIFE_MSM": "sub-acme-MLIFE_MSM",
                                                                    "MLIFE_MTT": "sub-acme-MLIFE_MTT"}
    first = [await publish(bus.url, bus.passwords, uploaded()), await publish(bus.url, bus.passwords, registered("1")),
             await publish(bus.url, bus.passwords, registered("2"))]
    await publish(bus.url, bus.passwords, BadcaseMerged(badcase_id=uuid.uuid4(), occurrence_id=uuid.uuid4(),
                                                        frequency=2))
    got = await take(3, bus, sub)
    assert sorted(e.id for e in got) == sorted(first) and {e.stream for e in got} == {"MLIFE_MTT", "MLIFE_MSM"}
    assert [e.data["version"] for e in got if e.type == "model.registered"] == ["1", "2"]

    later = await publish(bus.url, bus.passwords, registered("3"))  # while it is stopped: kept by its durable
    (resumed,) = await take(1, bus, sub)
    assert resumed.id == later

    detail = (await gateway.get(f"/subscribers/{sub['id']}")).json()
    msm = next(d for d in detail["durables"] if d["stream"] == "MLIFE_MSM")
    assert msm["pending"] == 0 and msm["ack_pending"] == 0 and msm["ack_floor"] == resumed.sequence
    assert [s["name"] for s in (await gateway.get("/subscribers")).json()] == ["acme"]


async def test_the_filter_is_applied_by_the_sdk(gateway: httpx.AsyncClient, bus: Bus) -> None:
    sub = await create_subscriber(gateway, "digits-only", ["model.uploaded"], filter={"function": "digits"},
                                  deliver="new")
    other = uploaded().model_copy(update={"function": "faces"})
    await publish(bus.url, bus.passwords, other)
    wanted = await publish(bus.url, bus.passwords, uploaded())
    (event,) = await take(1, bus, sub, filter=sub["filter"])
    assert event.id == wanted and event.data["function"] == "digits"
    r = await gateway.post("/subscribers", json={"name": "bad-filter", "subjects": ["model.uploaded"],
                                                 "filter": {"colour": "red"}})
    assert r.status_code == 422 and "colour" in r.json()["detail"]


async def test_a_subscriber_login_reads_its_own_durables_and_nothing_else(gateway: httpx.AsyncClient,
                                                                         bus: Bus) -> None:
    mine = await create_subscriber(gateway, "acme", ["model.registered"])
    await create_subscriber(gateway, "other", ["model.registered"])
    conn = await login(bus, "sub-acme", mine["credentials"]["password"])
    try:
        js = conn.nc.jetstream(timeout=2)
        assert (await js.consumer_info("MLIFE_MSM", "sub-acme-MLIFE_MSM")).name == "sub-acme-MLIFE_MSM"
        before = (await js.consumer_info("MLIFE_MSM", "sub-acme-MLIFE_MSM")).delivered.stream_seq

        await conn.nc.publish("model.registered", b"{}")
        assert await conn.refused('"model.registered"')
        with pytest.raises(nats.errors.TimeoutError):
            await js.consumer_info("MLIFE_MSM", "sub-other-MLIFE_MSM")
        assert await conn.refused("sub-other-MLIFE_MSM")
        with pytest.raises(nats.errors.TimeoutError):
            await js.add_consumer("MLIFE_MSM", durable_name="sub-acme-extra")
        assert await conn.refused("sub-acme-extra")
        with pytest.raises(nats.errors.TimeoutError):
            await js.delete_consumer("MLIFE_MSM", "sub-acme-MLIFE_MSM")
        assert await conn.refused("CONSUMER.DELETE")
        assert (await js.consumer_info("MLIFE_MSM", "sub-acme-MLIFE_MSM")).delivered.stream_seq == before
    finally:
        await conn.nc.close()
    reader = await connect(bus.url, name="check", user="msm", password=bus.passwords["msm"])
    try:  # nothing it sent reached the stream
        assert (await reader.jetstream().stream_info("MLIFE_MSM")).state.messages == 1
    finally:
        await reader.close()


async def test_wrong_rotated_and_deleted_logins_are_refused(gateway: httpx.AsyncClient, bus: Bus) -> None:
    sub = await create_subscriber(gateway, "acme", ["model.>"])
    assert "authorization" in await refused_login(bus, "sub-acme", "not-the-password")
    assert "authorization" in await refused_login(bus, "sub-nobody", "whatever")

    rotated = await gateway.post(f"/subscribers/{sub['id']}/rotate")
    assert rotated.status_code == 200 and rotated.json()["password"] != sub["credentials"]["password"]
    assert "authorization" in await refused_login(bus, "sub-acme", sub["credentials"]["password"])
    await (await login(bus, "sub-acme", rotated.json()["password"])).nc.close()

    assert (await gateway.delete(f"/subscribers/{sub['id']}")).status_code == 204
    assert "authorization" in await refused_login(bus, "sub-acme", rotated.json()["password"])
    assert (await gateway.get(f"/subscribers/{sub['id']}")).status_code == 404
    reader = await connect(bus.url, name="check", user="reader", password=bus.passwords["reader"])
    try:
        js = reader.jetstream(timeout=2)
        for stream in ("MLIFE_MTT", "MLIFE_MSM"):
            with pytest.raises(nats.js.errors.NotFoundError):
                await js.consumer_info(stream, f"sub-acme-{stream}")
    finally:
        await reader.close()


async def test_replay_from_a_time_or_a_sequence_redelivers_and_is_audited(gateway: httpx.AsyncClient,
                                                                          bus: Bus) -> None:
    sub = await create_subscriber(gateway, "acme", ["model.>"], deliver="new")
    before = datetime.now(UTC)
    ids = [await publish(bus.url, bus.passwords, uploaded()), await publish(bus.url, bus.passwords, registered("1"))]
    assert sorted(e.id for e in await take(2, bus, sub)) == sorted(ids)

    r = await gateway.post(f"/subscribers/{sub['id']}/replay", json={"since": before.isoformat()})
    assert r.status_code == 201, r.text
    assert sorted(e.id for e in await take(2, bus, sub)) == sorted(ids)

    r = await gateway.post(f"/subscribers/{sub['id']}/replay", json={"stream": "MLIFE_MSM", "sequence": 1})
    assert r.status_code == 201, r.text
    replayed = await take(2, bus, sub)  # MSM's from its first: version 0 (made before the subscriber) and 1
    assert [e.data["version"] for e in replayed] == ["0", "1"]

    audit = (await gateway.get(f"/subscribers/{sub['id']}/replays")).json()
    assert [(a["requested_by"], a["stream"], a["sequence"]) for a in audit] == [("admin", "MLIFE_MSM", 1),
                                                                                 ("admin", None, None)]
    assert datetime.fromisoformat(audit[1]["since"]) == before


async def test_bad_requests_are_refused_with_what_to_fix(gateway: httpx.AsyncClient, bus: Bus) -> None:
    r = await gateway.post("/subscribers", json={"name": "acme", "subjects": ["modle.>"]})
    assert r.status_code == 422 and "matches no public MLife event" in r.json()["detail"]
    r = await gateway.post("/subscribers", json={"name": "Acme Corp", "subjects": ["model.>"]})
    assert r.status_code == 422
    sub = await create_subscriber(gateway, "acme", ["model.registered"])
    r = await gateway.post("/subscribers", json={"name": "acme", "subjects": ["model.>"]})
    assert r.status_code == 409
    for body in ({}, {"since": "2026-01-01T00:00:00Z", "stream": "MLIFE_MSM", "sequence": 1},
                 {"stream": "MLIFE_MSM"}, {"since": "2026-01-01T00:00:00"}):
        assert (await gateway.post(f"/subscribers/{sub['id']}/replay", json=body)).status_code == 422, body
    r = await gateway.post(f"/subscribers/{sub['id']}/replay", json={"stream": "MLIFE_MTT", "sequence": 1})
    assert r.status_code == 422 and "MLIFE_MSM" in r.json()["detail"]
    assert (await gateway.get(f"/subscribers/{sub['id']}/replays")).json() == []
    r = await gateway.post("/subscribers", json={"name": "early", "subjects": ["badcase.created", "model.registered"]})
    assert r.status_code == 409 and "MLIFE_BAM does not exist yet" in r.json()["detail"]  # BAM never started here
    assert [s["name"] for s in (await gateway.get("/subscribers")).json()] == ["acme"]
    assert (await gateway.post("/subscribers", json={"name": "x", "subjects": ["model.>"]},
                               headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_static_users_log_in_without_the_callout(bus: Bus) -> None:
    """No gateway runs here: the static users are the callout's auth_users and never wait for it, while any
    other login is refused (nobody answers the callout)."""
    for user, password in bus.passwords.items():
        nc = await connect(bus.url, name="static", user=user, password=password)
        assert nc.is_connected
        await nc.close()
    assert "authorization" in await refused_login(bus, "sub-acme", "whatever")


async def test_subscribers_work_on_sqlite(bus: Bus, tmp_path: Path) -> None:
    """The embedded default: migration gateway_0007 up, down and up again on SQLite, then a subscriber whose login
    reads its events, a replay recorded, and its deletion."""
    from mlife_shared.migrations import alembic_config, upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    await asyncio.to_thread(upgrade, "gateway.migrations", url)
    await asyncio.to_thread(command.downgrade, alembic_config("gateway.migrations", url), "gateway_0006")
    await asyncio.to_thread(upgrade, "gateway.migrations", url)
    async with gateway_on(url, bus, tmp_path) as gateway:
        sub = await create_subscriber(gateway, "lite", ["model.registered"])
        (event,) = await take(1, bus, sub)  # the one MSM's stream already holds: deliver "all"
        assert event.data["version"] == "0"
        r = await gateway.post(f"/subscribers/{sub['id']}/replay", json={"stream": "MLIFE_MSM", "sequence": 1})
        assert r.status_code == 201 and (await take(1, bus, sub))[0].id == event.id
        assert (await gateway.delete(f"/subscribers/{sub['id']}")).status_code == 204
        assert "authorization" in await refused_login(bus, "sub-lite", sub["credentials"]["password"])


async def test_a_connected_subscriber_gets_the_replay_without_restarting(gateway: httpx.AsyncClient, bus: Bus) -> None:
    """The replay deletes and recreates the durables under a subscriber that is reading: it goes on with the new
    ones (a pull on a deleted consumer ends, the next one reaches its successor)."""
    sub = await create_subscriber(gateway, "live", ["model.registered"], deliver="new")
    before = datetime.now(UTC)
    got: list[str] = []

    async def _read() -> None:
        async for event in subscribe(sub["subjects"], durable=sub["durable"], url=bus.url, user=sub["nats_user"],
                                     password=sub["credentials"]["password"], bind=True, wait=1):
            await event.ack()
            got.append(event.id)

    reading = asyncio.create_task(_read())
    try:
        first = await publish(bus.url, bus.passwords, registered("1"))
        await wait_for(lambda: got == [first], 30, "the event, live")
        r = await gateway.post(f"/subscribers/{sub['id']}/replay", json={"since": before.isoformat()})
        assert r.status_code == 201, r.text
        await wait_for(lambda: got == [first, first], 30, "the event again, replayed")
        second = await publish(bus.url, bus.passwords, registered("2"))
        await wait_for(lambda: got == [first, first, second], 30, "the next event")
    finally:
        reading.cancel()
        with suppress(asyncio.CancelledError):
            await reading


async def test_the_deploy_config_asks_the_gateway_too(make_database: Callable[[str], Awaitable[str]],
                                                      tmp_path: Path) -> None:
    """As compose runs NATS (the committed deploy/nats/nats.conf, the issuer from MLIFE_NATS_AUTH_CALLOUT_ISSUER): a
    subscriber logs in with its own credentials and reads; a wrong password is refused."""
    server = await start_nats(tmp_path, authenticated=True, name="subscribers-deploy")
    try:
        assert server.callout_seed is not None
        bus = Bus(server.url, server.passwords, server.callout_seed)
        await publish(bus.url, bus.passwords, registered("0"))
        async with gateway_on(await make_database("gateway.migrations"), bus, tmp_path) as gateway:
            sub = await create_subscriber(gateway, "deployed", ["model.registered"])
            (event,) = await take(1, bus, sub)
            assert event.data["version"] == "0" and event.stream == "MLIFE_MSM"
            assert "authorization" in await refused_login(bus, "sub-deployed", "wrong")
    finally:
        stop([server.proc])


def test_a_seed_that_is_no_account_seed_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="not an account nkey seed"):
        Settings(environment="test", identity_secret=SECRET, auth_callout_seed="SUAnotanaccountseed")
    seed = natsauth.new_callout_seed()
    assert Settings(environment="test", identity_secret=SECRET, auth_callout_seed=f" {seed}\n").auth_callout_seed \
        .get_secret_value() == seed  # type: ignore[union-attr]


async def test_a_failed_create_leaves_no_durable_behind(make_database: Callable[[str], Awaitable[str]],
                                                       tmp_path: Path) -> None:
    """`model.>` spans MSM's stream (here) and MTT's (not yet): MSM's durable, made first, is removed again."""
    port = free_port()
    conf, passwords = natsauth.write_embedded_config(tmp_path / "nats", port=port)
    server = await serve_nats(tmp_path, port, ["-c", str(conf)])
    try:
        bus = Bus(server.url, passwords, natsauth.ensure_callout_seed(tmp_path / "nats"))
        await publish(bus.url, passwords, registered("0"))
        async with gateway_on(await make_database("gateway.migrations"), bus, tmp_path) as gateway:
            r = await gateway.post("/subscribers", json={"name": "half", "subjects": ["model.>"]})
            assert r.status_code == 409 and "MLIFE_MTT does not exist yet" in r.json()["detail"]
            assert (await gateway.get("/subscribers")).json() == []
        reader = await connect(bus.url, name="check", user="reader", password=passwords["reader"])
        try:
            with pytest.raises(nats.js.errors.NotFoundError):
                await reader.jetstream(timeout=2).consumer_info("MLIFE_MSM", "sub-half-MLIFE_MSM")
        finally:
            await reader.close()
    finally:
        stop([server.proc])


async def read_until_it_ends(bus: Bus, sub: dict[str, Any], ended: list[BaseException]) -> None:
    try:
        await take(1000, bus, sub)
    except BaseException as exc:  # noqa: BLE001 - what ended it is the assertion
        ended.append(exc)


async def test_an_open_connection_ends_when_its_rotated_login_expires(make_database: Callable[[str], Awaitable[str]],
                                                                     bus: Bus, tmp_path: Path) -> None:
    """The user JWT expires (here after 2 s): nats-server closes the connection and asks the gateway about the
    reconnection, which the old password of a rotated subscriber fails; the SDK ends with PermissionError. A
    login that binds to a durable that is not its own is told so."""
    async with gateway_on(await make_database("gateway.migrations"), bus, tmp_path,
                          subscriber_login_ttl_seconds=2) as gateway:
        sub = await create_subscriber(gateway, "brief", ["model.registered"], deliver="new")
        with pytest.raises(LookupError, match="sub-brief-MLIFE_MTT"):
            await take(1, bus, {**sub, "subjects": ["model.uploaded"]})
        ended: list[BaseException] = []
        reading = asyncio.create_task(read_until_it_ends(bus, sub, ended))
        assert (await gateway.post(f"/subscribers/{sub['id']}/rotate")).status_code == 200
        await wait_for(lambda: ended, 60, "the reader's end")
        await reading
        assert isinstance(ended[0], PermissionError) and "sub-brief" in str(ended[0]), ended


async def test_a_deleted_subscribers_reader_is_told_its_durable_is_gone(gateway: httpx.AsyncClient, bus: Bus) -> None:
    sub = await create_subscriber(gateway, "gone", ["model.registered"], deliver="new")
    ended: list[BaseException] = []
    reading = asyncio.create_task(read_until_it_ends(bus, sub, ended))
    first = await publish(bus.url, bus.passwords, registered("1"))
    detail = f"/subscribers/{sub['id']}"

    async def _delivered() -> bool:
        return any(d["delivered"] for d in (await gateway.get(detail)).json()["durables"])

    await wait_for(_delivered, 30, f"{first} delivered")
    assert (await gateway.delete(detail)).status_code == 204
    await wait_for(lambda: ended, 60, "the reader's end")
    await reading
    assert isinstance(ended[0], LookupError) and "sub-gone-MLIFE_MSM" in str(ended[0]), ended


async def test_an_expired_login_that_is_still_valid_is_renewed(make_database: Callable[[str], Awaitable[str]],
                                                              bus: Bus, tmp_path: Path) -> None:
    """The SDK logs in again when the server ends its login at expiry (the server asks the gateway again: seen here
    by listening to the callout subject as the gateway user may) and reads on."""
    asked: list[str] = []
    watcher = await connect(bus.url, name="watch", user="gateway", password=bus.passwords["gateway"])

    async def _note(msg: Any) -> None:
        asked.append(decode_request(msg.data.decode())["nats"]["connect_opts"].get("user", ""))

    await watcher.subscribe(natsauth.AUTH_CALLOUT_SUBJECT, cb=_note)
    try:
        async with gateway_on(await make_database("gateway.migrations"), bus, tmp_path,
                              subscriber_login_ttl_seconds=2) as gateway:
            sub = await create_subscriber(gateway, "renew", ["model.registered"], deliver="new")
            got: list[str] = []

            async def _read() -> None:
                async for event in subscribe(sub["subjects"], durable=sub["durable"], url=bus.url, bind=True,
                                             user=sub["nats_user"], password=sub["credentials"]["password"], wait=1):
                    await event.ack()
                    got.append(event.id)

            reading = asyncio.create_task(_read())
            try:
                await wait_for(lambda: asked.count("sub-renew") >= 2, 60, "a second login after the expiry")
                later = await publish(bus.url, bus.passwords, registered("1"))
                await wait_for(lambda: got == [later] or reading.done(), 60, "the event after the renewal")
                assert got == [later] and not reading.done()
            finally:
                reading.cancel()
                with suppress(asyncio.CancelledError):
                    await reading
    finally:
        await watcher.close()



async def test_two_creates_racing_on_one_name_are_a_409_not_a_500(
        make_database: Callable[[str], Awaitable[str]]) -> None:
    """The name check and the insert are two statements: the second of two creates racing on one name meets the
    unique index at its insert (before NATS is touched), which is the SubscriberNameTaken it says, not a 500."""
    from gateway.subscribers.models import Subscriber
    from gateway.subscribers.repository import SubscriberRepository
    from mlife_shared.db import Database

    db = Database(await make_database("gateway.migrations"))
    try:
        def row() -> Subscriber:
            return Subscriber(name="acme", subjects=["model.>"], password_hash="0" * 64, created_by="admin")

        async with db.transaction() as session:
            assert await SubscriberRepository(session).add_named(row())
        async with db.transaction() as session:
            assert not await SubscriberRepository(session).add_named(row())
    finally:
        await db.dispose()
