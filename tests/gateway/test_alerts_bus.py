"""Alerts end to end through the real bus: badcase.created events published on NATS JetStream reach the gateway
worker's stream consumers (the hub), a surge in one function raises one grouped alert, and its firing goes out
once by e-mail (a real SMTP server) and once by webhook (the hub delivers alert.* from the outbox like any public
event) — the other function's badcases raise nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from gateway.app import SPEC, _bootstrap_admin, create
from gateway.config import Settings
from mlife_shared.events.contracts import BadcaseCreated
from mlife_shared.messaging.bus import provision_streams
from mlife_shared.worker import run_worker
from tests.support.auth import SECRET
from tests.support.gateway import ADMIN_TOKEN
from tests.support.nats import publish, start_nats
from tests.support.processes import free_port, stop
from tests.support.smtp import smtp_server
from tests.support.waiting import wait_for
from tests.support.webhooks import Receiver

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
async def bus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A JetStream server of this module's own: the gateway's consumers read every public stream."""
    server = await start_nats(tmp_path_factory.mktemp("alerts-nats"), name="alerts")
    try:
        yield server.url
    finally:
        stop([server.proc])


def _created(function: str) -> BadcaseCreated:
    return BadcaseCreated(badcase_id=uuid.uuid4(), function=function, source="serving", priority=5.0)


async def test_a_surge_in_one_function_raises_one_alert_by_e_mail_and_by_webhook(
        make_database: Callable[[str], Awaitable[str]], bus: str, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with smtp_server() as mailbox, Receiver() as receiver:
        settings = Settings(environment="test", database_url=await make_database("gateway.migrations"), nats_url=bus,
                            identity_secret=SECRET, home=tmp_path, bam_url=closed, dam_url=closed, mtt_url=closed,
                            msm_url=closed, admin_token=ADMIN_TOKEN, allowed_hosts=["gateway"],
                            webhook_allow_hosts=["127.0.0.1"], webhook_schedule_seconds=[0.0, 0.0, 0.0],
                            webhook_poll_seconds=0.2, alerts_interval_seconds=0.2,
                            smtp_host=mailbox.host, smtp_port=mailbox.port)
        await _bootstrap_admin(settings)
        app = create(settings)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), headers=AUTH, base_url="http://gateway/api/gateway") as api:
            hook = await api.post("/webhooks", json={"url": receiver.url, "subjects": ["alert.*"]})
            assert hook.status_code == 201, hook.text
            rule = await api.post("/alert-rules", json={
                "name": "ocr surge", "kind": "badcase_surge", "function": None, "group_wait_seconds": 0,
                "params": {"window_seconds": 600, "baseline_windows": 2, "factor": 2, "min_count": 5},
                "email_to": ["oncall@example.org"]})
            assert rule.status_code == 201, rule.text
            nc = await nats.connect(bus)
            stop_worker = asyncio.Event()
            worker = asyncio.create_task(run_worker(SPEC, settings, stop_worker, handle_signals=False))
            try:
                js = nc.jetstream()
                await provision_streams(js)
                for function in ["ocr"] * 8 + ["asr"] * 4:
                    await publish(js, _created(function))

                async def counted() -> list[dict[str, Any]] | None:
                    items = (await api.get("/alerts", params={"status": "all"})).json()["items"]
                    return items if items and items[0]["count"] == 4 and items[0]["status"] == "firing" else None

                [alert] = await wait_for(counted, 60, "the ocr surge alert with the 4 badcases over the threshold")
                await wait_for(lambda: mailbox.messages and receiver.requests, 60, "the e-mail and the webhook")
                detail = await wait_for(lambda: _sent(api, alert["id"]), 60, "the e-mail recorded as sent")
            finally:
                stop_worker.set()
                await asyncio.wait_for(worker, 30)
                await nc.close()
        assert alert["group_key"] == "function=ocr" and alert["function"] == "ocr"
        assert [n["kind"] for n in detail["notifications"]] == ["firing"]
        assert len(mailbox.messages) == 1 and "ocr surge" in mailbox.subjects()[0]
        [event] = receiver.events()
        assert event["type"] == "alert.firing" and event["data"]["alert_id"] == alert["id"]
        assert event["data"]["kind"] == "badcase_surge" and event["data"]["function"] == "ocr"


async def _sent(api: httpx.AsyncClient, alert_id: str) -> dict[str, Any] | None:
    detail: dict[str, Any] = (await api.get(f"/alerts/{alert_id}")).json()
    return detail if all(n["email_status"] == "sent" for n in detail["notifications"]) else None
