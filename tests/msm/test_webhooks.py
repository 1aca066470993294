"""Outbound webhooks: signed, retried with backoff, logged; URLs that resolve to internal addresses are
refused when saved and again at send time, unless allow-listed. The receiver is a real HTTP server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.msm.onnx_models import identity_classifier
from tests.support.auth import FreshRole
from tests.support.http_server import LocalServer, QuietHandler
from tests.support.msm import upload

MAINTAINER = FreshRole("maintainer", "mia")


class Receiver(LocalServer):
    """A webhook receiver: records every request, answers with the queued statuses (then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                self.reply(receiver.statuses.pop(0) if receiver.statuses else 200)

        super().__init__(Handler, path="/hook")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def verify(secret: str, request: dict[str, Any]) -> bool:
    h = {k.lower(): v for k, v in request["headers"].items()}
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + request["body"]
    expected = "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, h["webhook-signature"])


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.1.2.3/hook", "http://192.168.0.10/",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/hook", "http://0.0.0.0/", "http://224.0.0.1/",
    "http://[::ffff:127.0.0.1]/", "ftp://example.com/hook", "http://user:pw@example.com/", "http:///nohost",
    "not a url", "http://unresolvable.invalid/hook",
])
async def test_unsafe_urls_are_refused(msm: httpx.AsyncClient, url: str) -> None:
    got = await msm.post("/webhooks", json={"url": url, "events": ["model.registered"]}, headers=MAINTAINER)
    assert got.status_code == 422, got.text


async def test_signed_retried_and_logged(msm: httpx.AsyncClient, receiver: Receiver) -> None:
    settings = msm.app.state.settings  # type: ignore[attr-defined]
    dispatcher = msm.app.state.webhooks  # type: ignore[attr-defined]
    assert (await msm.post("/webhooks", json={"url": receiver.url, "events": ["model.registered"]},
                           headers=MAINTAINER)).status_code == 422
    assert (await msm.post("/webhooks", json={"url": receiver.url, "events": ["nope"]},
                           headers=MAINTAINER)).status_code == 422
    assert (await msm.post("/webhooks", json={"url": receiver.url, "events": ["*"]})).status_code == 403
    settings.webhook_allow_hosts = ["127.0.0.1"]
    created = await msm.post("/webhooks", json={"url": receiver.url, "events": ["model.registered"],
                                                "description": "ci"}, headers=MAINTAINER)
    assert created.status_code == 201, created.text
    hook = created.json()
    secret = hook["secret"]

    version = (await upload(msm, "emotion", identity_classifier(4))).json()
    receiver.statuses = [500]
    assert await dispatcher.run_once() == 1  # answered 500: kept for a retry
    assert await dispatcher.run_once() == 1  # the retry (backoff 0 s in tests) succeeds
    assert await dispatcher.run_once() == 0
    assert len(receiver.requests) == 2
    for request in receiver.requests:
        assert verify(secret, request)
        assert not verify("wrong-secret-wrong-secret", request)
    first, second = receiver.requests
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    event = json.loads(second["body"])
    assert event["type"] == "model.registered" and event["data"]["model_version_id"] == version["id"]

    log = (await msm.get(f"/webhooks/{hook['id']}/deliveries", headers=MAINTAINER)).json()
    assert len(log) == 1 and log[0]["status"] == "delivered" and log[0]["attempts"] == 2
    assert [a["status_code"] for a in log[0]["log"]] == [500, 200]

    # Gives up after the configured attempts.
    settings.webhook_max_attempts = 2
    receiver.statuses = [503, 503, 503]
    await upload(msm, "emotion", identity_classifier(4, seed=1))
    await dispatcher.run_once()
    await dispatcher.run_once()
    log = (await msm.get(f"/webhooks/{hook['id']}/deliveries", headers=MAINTAINER)).json()
    assert log[0]["status"] == "failed" and log[0]["attempts"] == 2 and log[0]["last_status_code"] == 503

    # Re-checked at send time: once the allow-list no longer covers the host, nothing is sent.
    settings.webhook_allow_hosts = []
    sent = len(receiver.requests)
    await upload(msm, "emotion", identity_classifier(4, seed=2))
    await dispatcher.run_once()
    assert len(receiver.requests) == sent
    log = (await msm.get(f"/webhooks/{hook['id']}/deliveries", headers=MAINTAINER)).json()
    assert log[0]["status"] == "failed" and log[0]["last_error"].startswith("refused")


async def test_subscription_crud(msm: httpx.AsyncClient, receiver: Receiver) -> None:
    msm.app.state.settings.webhook_allow_hosts = ["127.0.0.0/8"]  # type: ignore[attr-defined]
    hook = (await msm.post("/webhooks", json={"url": receiver.url, "events": ["deployment.succeeded"]},
                           headers=MAINTAINER)).json()
    listed = (await msm.get("/webhooks", headers=MAINTAINER)).json()
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    paused = await msm.patch(f"/webhooks/{hook['id']}", json={"active": False, "events": ["*"]},
                             headers=MAINTAINER)
    assert paused.json()["active"] is False and paused.json()["events"] == ["*"]
    bad = await msm.patch(f"/webhooks/{hook['id']}", json={"url": "http://10.0.0.1/"}, headers=MAINTAINER)
    assert bad.status_code == 422
    await upload(msm, "emotion", identity_classifier(4))
    assert await msm.app.state.webhooks.run_once() == 0  # type: ignore[attr-defined] - paused: nothing queued
    assert (await msm.delete(f"/webhooks/{hook['id']}", headers=MAINTAINER)).status_code == 204
    assert (await msm.get(f"/webhooks/{hook['id']}", headers=MAINTAINER)).status_code == 404


async def test_deployment_events_and_blocked_gates_are_delivered(msm: httpx.AsyncClient, receiver: Receiver) -> None:
    msm.app.state.settings.webhook_allow_hosts = ["127.0.0.1"]  # type: ignore[attr-defined]
    hook = (await msm.post("/webhooks", json={"url": receiver.url, "events": ["deployment.blocked",
                                                                              "deployment.requested"]},
                           headers=MAINTAINER)).json()
    version = (await upload(msm, "emotion", identity_classifier(4))).json()
    assert (await msm.patch("/models/emotion", json={"function": "emotion"})).status_code == 200
    blocked = await msm.post("/deployments", json={"name": "emotion",
                                                   "versions": [{"model_version_id": version["id"]}]})
    assert blocked.status_code == 409
    over = await msm.post(f"/deployments/{blocked.json()['detail']['deployment_id']}/override",
                          json={"reason": "bootstrap"}, headers=MAINTAINER)
    assert over.status_code == 200
    assert await msm.app.state.webhooks.run_once() == 2  # type: ignore[attr-defined]
    bodies = [json.loads(r["body"]) for r in receiver.requests]
    assert sorted(b["type"] for b in bodies) == ["deployment.blocked", "deployment.requested"]
    blocked_event = next(b for b in bodies if b["type"] == "deployment.blocked")
    assert "nothing to be tested on" in blocked_event["data"]["reasons"][0]
    assert all(verify(hook["secret"], r) for r in receiver.requests)


async def test_alias_moves_are_delivered(msm: httpx.AsyncClient, receiver: Receiver) -> None:
    msm.app.state.settings.webhook_allow_hosts = ["127.0.0.1"]  # type: ignore[attr-defined]
    await msm.post("/webhooks", json={"url": receiver.url, "events": ["model.alias_moved"]}, headers=MAINTAINER)
    await upload(msm, "emotion", identity_classifier(4))
    await upload(msm, "emotion", identity_classifier(4, seed=1))
    await msm.post("/models/emotion/aliases", json={"alias": "production", "version": "1", "reason": "go"},
                   headers=MAINTAINER)
    await msm.post("/models/emotion/aliases", json={"alias": "production", "version": "2", "reason": "better"},
                   headers=MAINTAINER)
    await msm.post("/models/emotion/aliases/production/revert", json={"reason": "oops"}, headers=MAINTAINER)
    assert await msm.app.state.webhooks.run_once() == 3  # type: ignore[attr-defined]
    moves = sorted((json.loads(r["body"])["data"] for r in receiver.requests), key=lambda d: d["reason"])
    assert [(m["from_version"], m["to_version"], m["reason"], m["actor"]) for m in moves] == [
        ("1", "2", "better", "mia"), (None, "1", "go", "mia"), ("2", "1", "oops", "mia")]
