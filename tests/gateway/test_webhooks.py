"""Webhooks for every public event (the gateway is the one dispatcher): the worker's stream consumers queue a
delivery per matching webhook, the dispatcher sends it signed as Standard Webhooks (verified here with the
`standardwebhooks` package), retries on its schedule, disables a webhook whose receiver says 410 Gone, and
never sends one delivery from two dispatchers at once. Real PostgreSQL, NATS JetStream and HTTP receivers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.app import SPEC, _bootstrap_admin, create
from gateway.config import Settings
from gateway.webhooks.dispatcher import WebhookDispatcher
from gateway.webhooks.replay import read_stream
from mlife_shared.db import Database
from mlife_shared.events import EventData, new_envelope, registry
from mlife_shared.events.asyncapi import example_of, public_events
from mlife_shared.messaging.bus import connect, provision_streams
from mlife_shared.migrations import upgrade
from mlife_shared.worker import run_worker
from tests.support.auth import SECRET
from tests.support.gateway import ADMIN_TOKEN
from tests.support.nats import start_nats
from tests.support.processes import free_port, stop
from tests.support.waiting import wait_for
from tests.support.webhooks import Receiver

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
async def own_nats(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A JetStream server of this module's own: the gateway's stream consumers read every public stream."""
    server = await start_nats(tmp_path_factory.mktemp("webhooks-nats"), name="webhooks")
    try:
        yield server.url
    finally:
        stop([server.proc])


class Gateway:
    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def token_for(self, username: str, role: str) -> str:
        """An API token of a new user with `role` (made through a browser login, as a person would)."""
        password = "correct horse battery"
        made = await self.client.post("/users", json={"username": username, "password": password, "role": role})
        assert made.status_code == 201, made.text
        async with httpx.AsyncClient(transport=self.client._transport, base_url=self.client.base_url) as browser:
            csrf = (await browser.post("/login", json={"username": username, "password": password})).json()
            token = await browser.post("/tokens", json={"name": "t"}, headers={"X-CSRF-Token": csrf["csrf_token"]})
            assert token.status_code == 201, token.text
            return str(token.json()["token"])

    async def hook(self, url: str, subjects: list[str], functions: list[str] | None = None) -> dict[str, Any]:
        created = await self.client.post("/webhooks", json={"url": url, "subjects": subjects,
                                                            "filter": {"function": functions or []}})
        assert created.status_code == 201, created.text
        return dict(created.json())

    async def deliveries(self, hook: dict[str, Any]) -> list[dict[str, Any]]:
        got = await self.client.get(f"/webhooks/{hook['id']}/deliveries", params={"limit": 200})
        assert got.status_code == 200, got.text
        return list(got.json()["items"])

    async def dispatch(self) -> int:
        db = Database(self.settings.database_url)
        try:
            return await WebhookDispatcher(db.sessionmaker, self.settings).run_once()
        finally:
            await db.dispose()


@asynccontextmanager
async def gateway_app(database_url: str, nats_url: str, home: Path) -> AsyncIterator[Gateway]:
    """The gateway app in process, as a maintainer (the admin token), allowed to send webhooks to loopback,
    retrying at once (a schedule of zeros)."""
    closed = f"http://127.0.0.1:{free_port()}"
    settings = Settings(environment="test", database_url=database_url, nats_url=nats_url, identity_secret=SECRET,
                        home=home, bam_url=closed, dam_url=closed, mtt_url=closed, msm_url=closed,
                        admin_token=ADMIN_TOKEN, allowed_hosts=["gateway"], webhook_allow_hosts=["127.0.0.1"],
                        webhook_schedule_seconds=[0.0, 0.0, 0.0], webhook_poll_seconds=0.2)
    await _bootstrap_admin(settings)
    app = create(settings)
    async with app.router.lifespan_context(app):
        await wait_for(lambda: app.state.nats is not None and app.state.nats.is_connected, 20, "NATS")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), headers=AUTH,
                                     base_url="https://gateway/api/gateway") as client:
            yield Gateway(client, settings)


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    """The gateway's worker (stream consumers and the dispatcher job) in this event loop."""
    stop_event = asyncio.Event()
    task = asyncio.create_task(run_worker(SPEC, settings, stop_event, handle_signals=False))
    try:
        yield
    finally:
        stop_event.set()
        await asyncio.wait_for(task, 30)


@pytest.fixture
async def gw(make_database: Callable[[str], Awaitable[str]], own_nats: str,
             tmp_path: Path) -> AsyncIterator[Gateway]:
    async with gateway_app(await make_database("gateway.migrations"), own_nats, tmp_path) as gateway:
        yield gateway


@pytest.fixture
async def worker(gw: Gateway) -> AsyncIterator[None]:
    async with running_worker(gw.settings):
        yield


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def event(subject: str, **changes: Any) -> EventData:
    model = public_events()[subject]
    return model.model_validate({**example_of(model)["data"], **changes})


async def publish(nats_url: str, *events: EventData) -> list[str]:
    """The events as the services' relays publish them (envelope JSON, Nats-Msg-Id = event id); their ids."""
    return [event_id for event_id, _ in await publish_acked(nats_url, *events)]


async def publish_acked(nats_url: str, *events: EventData) -> list[tuple[str, int]]:
    """`publish`, with each event's stream sequence."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await provision_streams(js, max_age_days=1)
        ids: list[tuple[str, int]] = []
        for data in events:
            envelope = new_envelope(data)
            ack = await js.publish(data.subject, envelope.model_dump_json().encode(),
                                   headers={"Nats-Msg-Id": str(envelope.id)})
            ids.append((str(envelope.id), ack.seq))
        return ids
    finally:
        await nc.close()


async def test_public_events_of_every_service_reach_the_receiver_verified(
        gw: Gateway, worker: None, receiver: Receiver, own_nats: str) -> None:
    hook = await gw.hook(receiver.url, ["badcase.created", "dataset.*", "task.>", "deployment.succeeded"])
    ids = await publish(own_nats, event("badcase.created"), event("dataset.grouped"), event("task.created"),
                        event("deployment.succeeded"), event("model.registered"))
    await wait_for(lambda: len(receiver.requests) >= 4, 60, "four deliveries")
    verified = receiver.verified(hook["secret"])
    assert sorted(e["type"] for e in verified) == ["badcase.created", "dataset.grouped", "deployment.succeeded",
                                                    "task.created"]
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == set(ids[:4])
    assert all(e["id"] == r["headers"]["webhook-id"] for e, r in zip(verified, receiver.requests, strict=True))
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(receiver.requests[0]["body"], receiver.requests[0]["headers"])
    log: list[dict[str, Any]] = await wait_for(lambda: _all_delivered(gw, hook, 4), 30, "the delivery log")
    assert all(d["log"][0]["status_code"] == 200 and d["log"][0]["duration_ms"] >= 0 for d in log)


async def _all_delivered(gw: Gateway, hook: dict[str, Any], count: int) -> list[dict[str, Any]]:
    log = await gw.deliveries(hook)
    return log if len(log) == count and all(d["status"] == "delivered" for d in log) else []


async def test_subject_patterns_and_the_function_filter_select_events(gw: Gateway, worker: None, own_nats: str) -> None:
    with Receiver() as ocr_badcases, Receiver() as deployments:
        await gw.hook(ocr_badcases.url, ["badcase.*"], functions=["ocr"])
        await gw.hook(deployments.url, ["deployment.>"])
        await publish(own_nats, event("badcase.created", function="asr"), event("badcase.created", function="ocr"),
                      event("deployment.failed", function="ocr"), event("dataset.grouped", function="ocr"))
        await wait_for(lambda: ocr_badcases.requests and deployments.requests, 60, "the deliveries")
        # A later event that both would take shows nothing else was queued before it (streams are ordered).
        await publish(own_nats, event("badcase.created", function="ocr"), event("deployment.succeeded"))
        await wait_for(lambda: len(ocr_badcases.requests) >= 2 and len(deployments.requests) >= 2, 60, "the rest")
        assert [(e["type"], e["data"]["function"]) for e in ocr_badcases.events()] == [
            ("badcase.created", "ocr"), ("badcase.created", "ocr")]
        assert [e["type"] for e in deployments.events()] == ["deployment.failed", "deployment.succeeded"]


async def test_a_500_is_retried_until_it_succeeds_and_each_attempt_is_logged(gw: Gateway, receiver: Receiver) -> None:
    hook = await gw.hook(receiver.url, ["badcase.created"])
    queued = await gw.client.post(f"/webhooks/{hook['id']}/test", json={"subject": "badcase.created"})
    assert queued.status_code == 202, queued.text
    receiver.statuses = [500, 503]
    assert [await gw.dispatch() for _ in range(4)] == [1, 1, 1, 0]
    ids = {r["headers"]["webhook-id"] for r in receiver.requests}
    assert len(receiver.requests) == 3 and ids == {queued.json()["event_id"]}
    [delivery] = await gw.deliveries(hook)
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3
    assert [(a["number"], a["status_code"]) for a in delivery["log"]] == [(1, 500), (2, 503), (3, 200)]
    assert delivery["log"][0]["error"] == "HTTP 500"
    # Out of attempts (the schedule has three): failed, not retried again.
    await gw.client.post(f"/webhooks/{hook['id']}/test", json={"subject": "badcase.created"})
    receiver.statuses = [500, 500, 500]
    assert [await gw.dispatch() for _ in range(4)] == [1, 1, 1, 0]
    assert (await gw.deliveries(hook))[0]["status"] == "failed"


async def test_410_gone_disables_the_webhook(gw: Gateway, receiver: Receiver) -> None:
    hook = await gw.hook(receiver.url, ["model.>"])
    for _ in range(2):
        await gw.client.post(f"/webhooks/{hook['id']}/test", json={"subject": "model.registered"})
    receiver.statuses = [410]
    assert await gw.dispatch() == 2  # both due: one answered 410, the other (sent at once) 200
    got = (await gw.client.get(f"/webhooks/{hook['id']}")).json()
    assert got["active"] is False and "410" in got["disabled_reason"]
    await gw.client.post(f"/webhooks/{hook['id']}/test", json={"subject": "model.registered"})
    assert await gw.dispatch() == 0  # disabled: nothing is sent
    statuses = sorted(d["status"] for d in await gw.deliveries(hook))
    assert statuses == ["delivered", "failed", "pending"]
    resumed = await gw.client.patch(f"/webhooks/{hook['id']}", json={"active": True})
    assert resumed.json()["active"] is True and resumed.json()["disabled_reason"] is None
    assert await gw.dispatch() == 1


@pytest.mark.parametrize("url", ["http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
                                 "http://[::1]/hook", "http://192.168.0.10/hook", "ftp://example.com/hook",
                                 "http://user:pw@example.com/", "not a url"])
async def test_an_internal_or_malformed_url_is_refused_at_create(gw: Gateway, url: str) -> None:
    got = await gw.client.post("/webhooks", json={"url": url, "subjects": ["badcase.*"]})
    assert got.status_code == 422, got.text
    assert (await gw.client.get("/webhooks")).json() == []


async def test_subjects_must_match_public_events_and_writes_need_a_maintainer(gw: Gateway, receiver: Receiver) -> None:
    for subjects in (["nope.*"], ["badcase"], ["badcase.>.x"], ["bad*.created"], []):
        got = await gw.client.post("/webhooks", json={"url": receiver.url, "subjects": subjects})
        assert got.status_code == 422, (subjects, got.text)
    token = await gw.token_for("eve", "engineer")
    engineer = {"Authorization": f"Bearer {token}"}
    hook = await gw.hook(receiver.url, ["badcase.*"])
    assert (await gw.client.get("/webhooks", headers=engineer)).status_code == 200
    assert (await gw.client.get("/webhook-subjects", headers=engineer)).status_code == 200
    refused = await gw.client.post("/webhooks", json={"url": receiver.url, "subjects": ["badcase.*"]},
                                   headers=engineer)
    assert refused.status_code == 403
    assert (await gw.client.post(f"/webhooks/{hook['id']}/rotate-secret", headers=engineer)).status_code == 403


async def test_rotation_signs_with_both_secrets_meanwhile(gw: Gateway, receiver: Receiver) -> None:
    hook = await gw.hook(receiver.url, ["deployment.*"])
    rotated = await gw.client.post(f"/webhooks/{hook['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != hook["secret"]
    await gw.client.post(f"/webhooks/{hook['id']}/test", json={"subject": "deployment.blocked"})
    assert await gw.dispatch() == 1
    [request] = receiver.requests
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    assert Webhook(hook["secret"]).verify(request["body"], request["headers"])["type"] == "deployment.blocked"
    assert Webhook(new).verify(request["body"], request["headers"])["test"] is True
    # Once the window has passed, only the new secret signs.
    gw.settings.webhook_secret_rotation_hours = 0
    await gw.client.post(f"/webhooks/{hook['id']}/rotate-secret")
    newest = (await gw.client.post(f"/webhooks/{hook['id']}/rotate-secret")).json()["secret"]
    await gw.client.post(f"/webhooks/{hook['id']}/test", json={"subject": "deployment.blocked"})
    assert await gw.dispatch() == 1
    last = receiver.requests[-1]
    assert len(last["headers"]["webhook-signature"].split(" ")) == 1
    Webhook(newest).verify(last["body"], last["headers"])


async def test_a_test_delivery_sends_the_contract_example_marked_test(gw: Gateway, receiver: Receiver) -> None:
    hook = await gw.hook(receiver.url, ["alert.firing"])
    assert (await gw.client.post(f"/webhooks/{hook['id']}/test", json={"subject": "no.such"})).status_code == 422
    queued = (await gw.client.post(f"/webhooks/{hook['id']}/test", json={"subject": "alert.resolved"})).json()
    assert queued["test"] is True and queued["status"] == "pending"
    assert await gw.dispatch() == 1
    [sent] = receiver.verified(hook["secret"])
    assert sent["test"] is True and sent["type"] == "alert.resolved" and sent["id"] == queued["event_id"]
    public_events()["alert.resolved"].model_validate(sent["data"])


async def test_replay_resends_with_the_same_webhook_id_and_is_audited(gw: Gateway, worker: None, receiver: Receiver,
                                                                      own_nats: str) -> None:
    before = datetime.now(UTC)
    hook = await gw.hook(receiver.url, ["badcase.created", "testing.*"])
    ids = await publish(own_nats, event("badcase.created"), event("testing.completed"), event("document.created"))
    await wait_for(lambda: len(receiver.requests) >= 2, 60, "the first deliveries")
    replayed = await gw.client.post(f"/webhooks/{hook['id']}/replay", json={"since": before.isoformat()})
    assert replayed.status_code == 202, replayed.text
    audit = replayed.json()
    assert audit["deliveries"] == 2 and audit["events_read"] == 2 and audit["requested_by"] == "admin"
    await wait_for(lambda: len(receiver.requests) >= 4, 60, "the replayed deliveries")
    first, again = receiver.requests[:2], receiver.requests[2:]
    assert sorted(r["headers"]["webhook-id"] for r in again) == sorted(r["headers"]["webhook-id"] for r in first)
    assert {r["headers"]["webhook-id"] for r in again} == set(ids[:2])
    assert len(receiver.verified(hook["secret"])) == 4
    history = (await gw.client.get(f"/webhooks/{hook['id']}/replays")).json()
    assert [h["id"] for h in history] == [audit["id"]] and history[0]["since"] is not None
    # From a stream and a sequence: that event on only.
    [(later, seq)] = await publish_acked(own_nats, event("badcase.created"))
    by_seq = await gw.client.post(f"/webhooks/{hook['id']}/replay", json={"stream": "MLIFE_BAM", "sequence": seq})
    assert by_seq.status_code == 202 and by_seq.json()["deliveries"] == 1, by_seq.text
    await wait_for(lambda: any(r["headers"]["webhook-id"] == later for r in receiver.requests[4:])
                   and len(receiver.requests) >= 6, 60, "the replay from a sequence")
    assert (await gw.client.post(f"/webhooks/{hook['id']}/replay", json={"stream": "NOPE", "sequence": 1})
            ).status_code == 422
    assert (await gw.client.post(f"/webhooks/{hook['id']}/replay", json={})).status_code == 422


async def test_two_dispatchers_never_send_one_delivery_twice(gw: Gateway) -> None:
    with Receiver(pause=0.05) as slow:
        hook = await gw.hook(slow.url, ["badcase.*"])
        for _ in range(12):
            await gw.client.post(f"/webhooks/{hook['id']}/test", json={"subject": "badcase.created"})
        dbs = [Database(gw.settings.database_url) for _ in range(2)]
        dispatchers = [WebhookDispatcher(db.sessionmaker, gw.settings) for db in dbs]
        rounds: list[int] = []
        try:  # both at once, each taking at most four a round, until none is due
            while not rounds or rounds[-1] + rounds[-2] > 0:
                rounds += await asyncio.gather(*(d.run_once(limit=4) for d in dispatchers))
        finally:
            for db in dbs:
                await db.dispose()
        sent = [r["headers"]["webhook-id"] for r in slow.requests]
        assert sum(rounds) == len(sent) == 12 and len(set(sent)) == 12
        log = await gw.deliveries(hook)
        assert all(d["attempts"] <= 1 for d in log)
        assert sum(d["attempts"] for d in log) == len(sent)
        assert uuid.UUID(sent[0])


async def test_the_gateways_nats_user_may_replay_the_streams_and_make_no_durable(tmp_path: Path) -> None:
    """On the committed deploy config (as compose runs NATS): the gateway user reads an event stream from a time
    through an ephemeral consumer on its own inbox, and the same right makes no durable (a service's name)."""
    server = await start_nats(tmp_path, authenticated=True, name="webhooks-auth")
    try:
        msm = await connect(server.url, name="msm-test", user="msm", password=server.passwords["msm"])
        since = datetime.now(UTC)
        try:
            js = msm.jetstream()
            await provision_streams(js, producer="msm")
            envelope = new_envelope(event("deployment.blocked"))
            await js.publish("deployment.blocked", envelope.model_dump_json().encode(),
                             headers={"Nats-Msg-Id": str(envelope.id)})
        finally:
            await msm.close()
        gateway = await connect(server.url, name="gateway-test", user="gateway", password=server.passwords["gateway"])
        try:
            [stored] = await read_stream(gateway, "MLIFE_MSM", since=since, sequence=None, limit=10)
            assert stored.event_id == envelope.id and stored.subject == "deployment.blocked"
            config = {"stream_name": "MLIFE_MSM", "config": {"durable_name": "msm-deployment-requested",
                                                             "ack_policy": "explicit", "deliver_policy": "all"}}
            answer = json.loads((await gateway.request("$JS.API.CONSUMER.CREATE.MLIFE_MSM", json.dumps(config).encode(),
                                                       timeout=5)).data)
            assert "error" in answer, answer
        finally:
            await gateway.close()
    finally:
        stop([server.proc])


async def test_the_embedded_mode_on_sqlite_consumes_queues_and_sends(own_nats: str, tmp_path: Path,
                                                                    receiver: Receiver) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    await asyncio.to_thread(upgrade, "gateway.migrations", url)
    async with gateway_app(url, own_nats, tmp_path) as gw, running_worker(gw.settings):
        hook = await gw.hook(receiver.url, ["badcase.*"], functions=["ocr"])
        [event_id] = await publish(own_nats, event("badcase.created", function="ocr"))
        await wait_for(lambda: receiver.requests, 60, "the delivery")
        [sent] = receiver.verified(hook["secret"])
        assert sent["id"] == event_id
        await gw.client.post(f"/webhooks/{hook['id']}/rotate-secret")
        await gw.client.post(f"/webhooks/{hook['id']}/test", json={"subject": "badcase.updated"})
        await wait_for(lambda: len(receiver.requests) == 2, 60, "the test delivery")
        log: list[dict[str, Any]] = await wait_for(lambda: _all_delivered(gw, hook, 2), 30, "the delivery log")
        assert sorted(d["test"] for d in log) == [False, True]
        assert (await gw.client.delete(f"/webhooks/{hook['id']}")).status_code == 204


class DeploymentFailedV0(EventData):
    """Sent when a deployment could not be brought up (an earlier shape, kept for this test: `why`)."""

    subject = "deployment.failed"
    producer = "msm"
    schema_version = 0
    deployment_id: uuid.UUID
    why: str


@pytest.fixture
def deployment_failed_v0() -> Iterator[None]:
    """deployment.failed as if its version 1 had replaced a version 0 still in its deprecation period."""
    registry.register_previous(DeploymentFailedV0, deprecated_on=date.today(), sunset=date.today() + timedelta(days=200),
                               downgrade=lambda v1: {"deployment_id": v1["deployment_id"], "why": v1["reason"]})
    try:
        yield
    finally:
        registry.PREVIOUS.pop(("deployment.failed", 0), None)


async def test_a_webhook_pinned_to_an_earlier_version_gets_events_downgraded_until_its_sunset(
        gw: Gateway, worker: None, receiver: Receiver, own_nats: str, deployment_failed_v0: None) -> None:
    refused = await gw.client.post("/webhooks", json={"url": receiver.url, "subjects": ["deployment.failed"],
                                                     "versions": {"deployment.failed": 7}})
    assert refused.status_code == 422 and "has no version 7 served" in refused.text, refused.text
    refused = await gw.client.post("/webhooks", json={"url": receiver.url, "subjects": ["deployment.failed"],
                                                     "versions": {"deployment.fail": 0}})
    assert refused.status_code == 422 and "is no public event" in refused.text, refused.text
    created = await gw.client.post("/webhooks", json={"url": receiver.url, "subjects": ["deployment.*"],
                                                     "versions": {"deployment.failed": 0}})
    assert created.status_code == 201 and created.json()["versions"] == {"deployment.failed": 0}, created.text
    hook = created.json()
    ids = await publish(own_nats, event("deployment.failed"), event("deployment.succeeded"))
    await wait_for(lambda: len(receiver.requests) >= 2, 60, "two deliveries")
    by_type = {e["type"]: e for e in receiver.verified(hook["secret"])}
    failed = by_type["deployment.failed"]
    assert failed["id"] == ids[0] and failed["version"] == 0
    assert DeploymentFailedV0.model_validate(failed["data"]).why == "accuracy dropped below the gate's threshold"
    assert by_type["deployment.succeeded"]["version"] == 1 and "function" in by_type["deployment.succeeded"]["data"]

    # past its sunset the pin no longer holds: the latest version is sent
    previous = registry.PREVIOUS[("deployment.failed", 0)]
    registry.PREVIOUS[("deployment.failed", 0)] = replace(previous, sunset=date.today())
    await publish(own_nats, event("deployment.failed"))
    await wait_for(lambda: len(receiver.requests) >= 3, 60, "the third delivery")
    latest = receiver.verified(hook["secret"])[2]
    assert latest["version"] == 1 and "reason" in latest["data"]
