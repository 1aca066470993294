"""Alerts at the gateway (issue 14, "timely badcase alarming"): rules per function, each kind fires on its own
events and no other's, Alertmanager-like grouping (a thousand failures of one model version: one firing, one
resolution), repeats, acknowledgement, resolution, two workers racing, and e-mail through a real SMTP server.
Time is a fake clock the tests move; the database is a real migrated PostgreSQL (and SQLite once)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.alerts.engine import AlertEngine
from gateway.alerts.notifier import EmailSender
from gateway.alerts.repository import AlertRepository
from gateway.app import _bootstrap_admin, create
from gateway.config import Settings
from mlife_shared.db import Database
from mlife_shared.events import EventData, new_envelope
from mlife_shared.events.contracts import (
    BadcaseCreated,
    BadcaseMerged,
    DeploymentBlocked,
    DeploymentFailed,
    TaskFailed,
)
from mlife_shared.events.contracts import TestingFailed as FailedTesting
from tests.support.auth import SECRET
from tests.support.gateway import ADMIN_TOKEN, AUTH
from tests.support.outbox import outbox_events
from tests.support.processes import free_port
from tests.support.smtp import Mailbox, smtp_server

ONCALL = "oncall@example.org"


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime(2026, 12, 1, 8, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Env:
    client: httpx.AsyncClient
    db: Database
    settings: Settings
    mailbox: Mailbox | None
    clock: FakeClock = field(default_factory=FakeClock)

    @property
    def engine(self) -> AlertEngine:
        return AlertEngine(clock=self.clock)

    async def feed(self, *events: EventData) -> None:
        """Each event as the hub hands it over: one consumer transaction per event."""
        for data in events:
            async with self.db.transaction() as session:
                await self.engine.on_event(new_envelope(data), session)

    async def tick(self) -> dict[str, int]:
        async with self.db.transaction() as session:
            return await self.engine.tick(session, email_on=bool(self.settings.smtp_host))

    async def send(self) -> int:
        async with self.db.transaction() as session:
            return await EmailSender(self.settings, self.clock).run(session)

    async def rule(self, **body: Any) -> dict[str, Any]:
        body = {"name": f"rule {body['kind']}", "function": "ocr", "group_wait_seconds": 0, "email_to": [ONCALL], **body}
        r = await self.client.post("/api/gateway/alert-rules", json=body, headers=AUTH)
        assert r.status_code == 201, r.text
        made: dict[str, Any] = r.json()
        return made

    async def alerts(self, rule: dict[str, Any] | None = None, status: str = "all") -> list[dict[str, Any]]:
        r = await self.client.get("/api/gateway/alerts", params={"status": status}, headers=AUTH)
        assert r.status_code == 200, r.text
        return [a for a in r.json()["items"] if rule is None or a["rule_id"] == rule["id"]]

    async def notifications(self, alert: dict[str, Any]) -> list[dict[str, Any]]:
        r = await self.client.get(f"/api/gateway/alerts/{alert['id']}", headers=AUTH)
        assert r.status_code == 200, r.text
        return list(r.json()["notifications"])

    async def outbox(self, subject: str) -> list[dict[str, Any]]:
        return await outbox_events(self.settings.database_url, subject)


@asynccontextmanager
async def alert_env(database_url: str, nats_url: str, home: Path, mailbox: Mailbox | None) -> AsyncIterator[Env]:
    """The gateway app in process (its API; the worker's parts are driven by the test) on `database_url`."""
    closed = f"http://127.0.0.1:{free_port()}"
    settings = Settings(environment="test", database_url=database_url, nats_url=nats_url, identity_secret=SECRET,
                        home=home, bam_url=closed, dam_url=closed, mtt_url=closed, msm_url=closed,
                        admin_token=ADMIN_TOKEN, allowed_hosts=["gateway"],
                        smtp_host=mailbox.host if mailbox else None, smtp_port=mailbox.port if mailbox else 25)
    await _bootstrap_admin(settings)
    app = create(settings)
    db = Database(database_url)
    try:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
                yield Env(client=client, db=db, settings=settings, mailbox=mailbox)
    finally:
        await db.dispose()


@pytest.fixture
async def env(make_database: Callable[[str], Awaitable[str]], nats_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    with smtp_server() as mailbox:
        async with alert_env(await make_database("gateway.migrations"), nats_url, tmp_path, mailbox) as e:
            yield e


def created(function: str = "ocr", priority: float | None = 10.0, badcase_id: uuid.UUID | None = None) -> BadcaseCreated:
    return BadcaseCreated(badcase_id=badcase_id or uuid.uuid4(), function=function, source="manual",
                          priority=priority, model_name="reader", model_version="3")


def merged(badcase_id: uuid.UUID, frequency: int) -> BadcaseMerged:
    return BadcaseMerged(badcase_id=badcase_id, occurrence_id=uuid.uuid4(), frequency=frequency)


def blocked(function: str = "ocr", regressed: int = 0) -> DeploymentBlocked:
    return DeploymentBlocked(deployment_id=uuid.uuid4(), name="reader-prod", function=function, reasons=["gate"],
                             regressed_badcases=[uuid.uuid4() for _ in range(regressed)])


def deployment_failed(function: str = "ocr") -> DeploymentFailed:
    return DeploymentFailed(deployment_id=uuid.uuid4(), function=function, reason="port in use")


def failed_testing(function: str = "ocr", version: str = "7") -> FailedTesting:
    return FailedTesting(model_name="reader", model_version=version, dataset_id=uuid.uuid4(), function=function,
                         incompatible=False, reason="the run crashed")


KNOWN = uuid.uuid4()  # a badcase of ocr, created before the frequency case's merges
OTHER = uuid.uuid4()  # a badcase of asr
# kind, params, events that must not fire the ocr rule, events that must
CASES: list[tuple[str, dict[str, Any], list[EventData], list[EventData]]] = [
    ("critical_badcase", {"min_priority": 40},
     [created(priority=39.9), created("asr", priority=400), merged(KNOWN, 50), deployment_failed()],
     [created(priority=40)]),
    ("badcase_frequency", {"threshold": 3},
     [created(badcase_id=KNOWN), created("asr", badcase_id=OTHER), merged(KNOWN, 2), merged(OTHER, 9),
      created(priority=400), failed_testing()],
     [merged(KNOWN, 3)]),
    ("badcase_surge", {"window_seconds": 600, "baseline_windows": 2, "factor": 2, "min_count": 3},
     [created("asr"), created("asr"), created("asr"), created(), created(), failed_testing(), blocked(regressed=2)],
     [created()]),
    ("regression", {"min_regressed": 1},
     [blocked(), blocked("asr", regressed=3), deployment_failed(), failed_testing()],
     [blocked(regressed=1)]),
    ("deployment", {},
     [deployment_failed("asr"), blocked("asr"), failed_testing(), created(priority=400)],
     [deployment_failed()]),
    ("failure", {},
     [failed_testing("asr"), blocked(regressed=1), created(priority=400),
      TaskFailed(task_id=uuid.uuid4(), kind="train", reason="oom")],
     [failed_testing()]),
]


@pytest.mark.parametrize(("kind", "params", "others", "hits"), CASES, ids=[c[0] for c in CASES])
async def test_each_kind_fires_on_its_events_and_not_on_others_or_another_function(
        env: Env, kind: str, params: dict[str, Any], others: list[EventData], hits: list[EventData]) -> None:
    rule = await env.rule(kind=kind, params=params)
    await env.feed(*others)
    await env.tick()
    assert await env.alerts(rule) == [], f"{kind} fired on events that are not its own"
    await env.feed(*hits)
    assert [a["status"] for a in await env.alerts(rule)] == ["pending"]
    assert (await env.tick())["fired"] == 1
    [alert] = await env.alerts(rule, "firing")
    assert alert["status"] == "firing" and alert["function"] == "ocr" and alert["kind"] == kind
    [firing] = await env.outbox("alert.firing")
    assert firing["data"]["alert_id"] == alert["id"] and firing["data"]["function"] == "ocr"
    assert await env.send() == 1 and env.mailbox is not None
    assert env.mailbox.recipients == [[ONCALL]] and "FIRING" in env.mailbox.subjects()[0]


async def test_a_thousand_failures_of_one_model_version_in_five_minutes_notify_once_and_resolve_once(env: Env) -> None:
    rule = await env.rule(kind="failure", group_by=["model_version"], group_wait_seconds=30,
                          params={"window_seconds": 300})
    assert rule["resolve_after_seconds"] == 300 and rule["repeat_interval_seconds"] == 4 * 3600
    for i in range(1000):
        env.clock.advance(0.3)
        await env.feed(failed_testing(version="7"))
        if i % 100 == 99:
            await env.tick()
            await env.send()
    [alert] = await env.alerts(rule)
    assert alert["count"] == 1000 and alert["status"] == "firing" and alert["group_key"] == "model_version=7"
    env.clock.advance(299)
    assert await env.tick() == {"fired": 0, "repeated": 0, "resolved": 0, "dropped": 0}, "the condition is clear for only 299 s"
    env.clock.advance(2)
    assert (await env.tick())["resolved"] == 1
    assert await env.tick() == {"fired": 0, "repeated": 0, "resolved": 0, "dropped": 0}
    await env.send()
    assert env.mailbox is not None and len(env.mailbox.messages) == 2
    assert ["FIRING" in s for s in env.mailbox.subjects()] == [True, False] and "RESOLVED" in env.mailbox.subjects()[1]
    assert len(await env.outbox("alert.firing")) == 1 and len(await env.outbox("alert.resolved")) == 1
    assert [n["kind"] for n in await env.notifications(alert)] == ["firing", "resolved"]
    assert all(n["email_status"] == "sent" for n in await env.notifications(alert))


async def test_the_repeat_interval_renotifies_a_firing_alert_at_most_once_per_interval(env: Env) -> None:
    rule = await env.rule(kind="deployment", repeat_interval_seconds=600, resolve_after_seconds=7200)
    await env.feed(deployment_failed())
    assert (await env.tick())["fired"] == 1
    env.clock.advance(599)
    assert (await env.tick())["repeated"] == 0
    env.clock.advance(1)
    assert (await env.tick())["repeated"] == 1
    env.clock.advance(300)
    assert (await env.tick())["repeated"] == 0
    [alert] = await env.alerts(rule)
    assert [n["kind"] for n in await env.notifications(alert)] == ["firing", "repeat"]
    assert await env.send() == 2 and len(await env.outbox("alert.firing")) == 2


async def test_acknowledge_stops_the_repeats(env: Env) -> None:
    rule = await env.rule(kind="deployment", repeat_interval_seconds=600, resolve_after_seconds=7200,
                          group_by=["function"])
    await env.feed(deployment_failed())
    await env.tick()
    [alert] = await env.alerts(rule)
    r = await env.client.post(f"/api/gateway/alerts/{alert['id']}/acknowledge", headers=AUTH)
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "admin"
    for _ in range(3):
        env.clock.advance(600)
        await env.feed(deployment_failed())
        assert (await env.tick())["repeated"] == 0
    [alert] = await env.alerts(rule)
    assert alert["status"] == "firing" and alert["count"] == 4
    assert [n["kind"] for n in await env.notifications(alert)] == ["firing"]


async def test_an_alert_resolves_itself_once_its_condition_stays_clear_and_the_next_event_opens_a_new_one(
        env: Env) -> None:
    rule = await env.rule(kind="critical_badcase", resolve_after_seconds=60)
    await env.feed(created(priority=100))
    await env.tick()
    env.clock.advance(59)
    await env.feed(created(priority=100))  # still happening: the quiet time starts again
    env.clock.advance(59)
    assert (await env.tick())["resolved"] == 0
    env.clock.advance(1)
    assert (await env.tick())["resolved"] == 1
    [resolved] = await env.alerts(rule, "resolved")
    assert resolved["count"] == 2 and resolved["resolved_by"] is None
    [event] = await env.outbox("alert.resolved")
    assert event["data"]["resolved_by"] is None and event["data"]["count"] == 2
    await env.feed(created(priority=100))
    assert [a["status"] for a in await env.alerts(rule, "firing")] == ["pending"]


async def test_an_event_that_meets_its_alert_resolving_counts_into_the_next_one(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job resolves the open alert between the event's insert (a no-op: the alert was open) and its count:
    the event is not lost, it opens the group's next alert."""
    rule = await env.rule(kind="deployment", resolve_after_seconds=60, group_by=["function"])
    await env.feed(deployment_failed())
    await env.tick()
    env.clock.advance(60)
    original = AlertRepository.open_or_find
    raced: list[dict[str, int]] = []

    async def racing(self: AlertRepository, values: dict[str, Any]) -> None:
        await original(self, values)
        if not raced:
            raced.append(await env.tick())

    monkeypatch.setattr(AlertRepository, "open_or_find", racing)
    await env.feed(deployment_failed())
    assert raced[0]["resolved"] == 1
    assert sorted((a["status"], a["count"]) for a in await env.alerts(rule)) == [("pending", 1), ("resolved", 1)]


async def test_a_maintainer_resolves_by_hand_once(env: Env) -> None:
    rule = await env.rule(kind="deployment")
    await env.feed(deployment_failed())
    await env.tick()
    [alert] = await env.alerts(rule)
    r = await env.client.post(f"/api/gateway/alerts/{alert['id']}/resolve", headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "resolved" and r.json()["resolved_by"] == "admin"
    again = await env.client.post(f"/api/gateway/alerts/{alert['id']}/resolve", headers=AUTH)
    assert again.status_code == 409
    assert (await env.tick())["resolved"] == 0
    [event] = await env.outbox("alert.resolved")
    assert event["data"]["resolved_by"] == "admin"


async def test_a_disabled_rule_neither_counts_nor_fires_and_its_pending_alert_closes_without_notice(env: Env) -> None:
    rule = await env.rule(kind="deployment", group_wait_seconds=30, resolve_after_seconds=60, group_by=["function"])
    await env.feed(deployment_failed())
    r = await env.client.patch(f"/api/gateway/alert-rules/{rule['id']}", json={"enabled": False}, headers=AUTH)
    assert r.status_code == 200 and r.json()["enabled"] is False
    await env.feed(deployment_failed())
    env.clock.advance(30)
    assert (await env.tick())["fired"] == 0
    env.clock.advance(30)
    assert (await env.tick())["dropped"] == 1
    [alert] = await env.alerts(rule)
    assert alert["status"] == "resolved" and alert["count"] == 1 and alert["fired_at"] is None
    assert await env.notifications(alert) == [] and await env.outbox("alert.firing") == []
    assert await env.outbox("alert.resolved") == []


async def test_two_workers_racing_the_jobs_send_one_notification(env: Env) -> None:
    rule = await env.rule(kind="failure")
    await env.feed(failed_testing())
    async with env.db.transaction() as first:
        assert (await env.engine.tick(first, email_on=True))["fired"] == 1
        async with env.db.transaction() as second:  # the other worker, while the first holds the alert's row
            assert (await env.engine.tick(second, email_on=True))["fired"] == 0
    async with env.db.transaction() as first:
        assert await EmailSender(env.settings, env.clock).run(first) == 1
        async with env.db.transaction() as second:
            assert await EmailSender(env.settings, env.clock).run(second) == 0
    results = await asyncio.gather(env.tick(), env.tick(), env.send(), env.send())
    assert list(results[:2]) == [{"fired": 0, "repeated": 0, "resolved": 0, "dropped": 0}] * 2 and list(results[2:]) == [0, 0]
    [alert] = await env.alerts(rule)
    assert len(await env.notifications(alert)) == 1 and len(await env.outbox("alert.firing")) == 1
    assert env.mailbox is not None and len(env.mailbox.messages) == 1


async def test_an_unreachable_smtp_server_is_retried_and_each_attempt_recorded(
        make_database: Callable[[str], Awaitable[str]], nats_url: str, tmp_path: Path) -> None:
    dead = Mailbox(host="127.0.0.1", port=free_port())  # nothing listens there
    async with alert_env(await make_database("gateway.migrations"), nats_url, tmp_path, dead) as e:
        e.settings.alert_email_max_attempts = 2
        rule = await e.rule(kind="deployment")
        await e.feed(deployment_failed())
        await e.tick()
        assert await e.send() == 0
        [alert] = await e.alerts(rule)
        [n] = await e.notifications(alert)
        assert n["email_status"] == "pending" and n["attempts"] == 1 and "ConnectionRefused" in n["last_error"]
        assert await e.send() == 0, "not before its backoff"
        e.clock.advance(30)
        await e.send()
        [n] = await e.notifications(alert)
        assert n["email_status"] == "failed" and n["attempts"] == 2


@pytest.mark.parametrize(("body", "fix"), [
    ({"kind": "failure", "params": {"threshold": 0}}, "params.threshold"),
    ({"kind": "badcase_surge", "params": {"factor": "lots"}}, "params.factor"),
    ({"kind": "deployment", "params": {"events": ["task.failed"]}}, "params.events"),
    ({"kind": "regression", "params": {"min_regresed": 2}}, "params.min_regresed"),
    ({"kind": "failure", "group_by": ["function", "function"]}, "group_by"),
    ({"kind": "failure", "group_by": ["colour"]}, "group_by"),
    ({"kind": "failure", "email_to": ["not an address"]}, "email_to"),
    ({"kind": "nonsense"}, "kind"),
    ({"kind": "failure", "function": "a/b"}, "function"),
    ({"kind": "failure", "repeat_interval_seconds": 10}, "repeat_interval_seconds"),
])
async def test_a_bad_rule_is_a_422_saying_what_to_fix_and_nothing_is_written(
        env: Env, body: dict[str, Any], fix: str) -> None:
    r = await env.client.post("/api/gateway/alert-rules", json={"name": "bad", **body}, headers=AUTH)
    assert r.status_code == 422 and fix in r.text, r.text
    assert (await env.client.get("/api/gateway/alert-rules", headers=AUTH)).json() == []


async def test_a_rule_shows_its_defaults_and_whether_e_mail_goes_out(
        env: Env, make_database: Callable[[str], Awaitable[str]], nats_url: str, tmp_path: Path) -> None:
    rule = await env.rule(kind="badcase_surge", params={"min_count": 5})
    assert rule["params"] == {"window_seconds": 3600, "baseline_windows": 24, "factor": 3.0, "min_count": 5}
    assert rule["group_by"] == ["function"] and rule["resolve_after_seconds"] == 3600 and rule["email"] == "on"
    quiet = await env.rule(kind="deployment", email_to=[])
    assert quiet["email"].startswith("off")
    r = await env.client.patch(f"/api/gateway/alert-rules/{rule['id']}", json={"enabled": False, "params": {}},
                               headers=AUTH)
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["params"]["min_count"] == 10
    bad = await env.client.patch(f"/api/gateway/alert-rules/{rule['id']}", json={"params": {"factor": 0}},
                                 headers=AUTH)
    assert bad.status_code == 422 and "params.factor" in bad.text
    async with alert_env(await make_database("gateway.migrations"), nats_url, tmp_path, None) as off:
        rule = await off.rule(kind="deployment")
        assert rule["email"] == "off: MLIFE_GATEWAY_SMTP_HOST is not set"
        await off.feed(deployment_failed())
        await off.tick()
        [alert] = await off.alerts(rule)
        assert [n["email_status"] for n in await off.notifications(alert)] == ["off"]
        assert len(await off.outbox("alert.firing")) == 1, "the event (and so webhooks) still goes out"


async def test_listing_filters_by_status_and_function(env: Env) -> None:
    ocr = await env.rule(kind="deployment", resolve_after_seconds=60)
    anywhere = await env.rule(kind="deployment", function=None, name="every function", group_by=["function"],
                              resolve_after_seconds=60)
    await env.feed(deployment_failed("ocr"), deployment_failed("asr"))
    await env.tick()
    env.clock.advance(60)
    await env.feed(deployment_failed("asr"))
    await env.tick()
    r = await env.client.get("/api/gateway/alerts", params={"status": "firing", "function": "asr"}, headers=AUTH)
    assert [(a["rule_id"], a["function"], a["count"]) for a in r.json()["items"]] == [(anywhere["id"], "asr", 2)]
    resolved = await env.alerts(status="resolved")
    assert sorted((a["rule_id"] == ocr["id"], a["function"]) for a in resolved) == [(False, "ocr"), (True, "ocr")]
    missing = await env.client.get(f"/api/gateway/alerts/{uuid.uuid4()}", headers=AUTH)
    assert missing.status_code == 404


async def test_alerts_work_on_sqlite(nats_url: str, tmp_path: Path) -> None:
    from mlife_shared.migrations import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    await asyncio.to_thread(upgrade, "gateway.migrations", url)
    with smtp_server() as mailbox:
        async with alert_env(url, nats_url, tmp_path, mailbox) as e:
            rule = await e.rule(kind="failure", params={"threshold": 2, "window_seconds": 60})
            await e.feed(failed_testing())
            e.clock.advance(61)
            await e.feed(failed_testing())
            assert await e.alerts(rule) == [], "two failures, but not within 60 s"
            await e.feed(failed_testing())
            await e.tick()
            [alert] = await e.alerts(rule)
            assert alert["status"] == "firing" and "2 in 60s" in alert["summary"]
            assert await e.send() == 1 and len(mailbox.messages) == 1
