"""The gateway serves the event API's AsyncAPI document: public (a description, like /openapi.json), naming
the NATS address subscribers should use and never a credential."""

from __future__ import annotations

import httpx

from mlife_shared.events.asyncapi import public_events


async def test_the_asyncapi_document_is_served_without_login(gateway: httpx.AsyncClient) -> None:
    answer = await gateway.get("/api/gateway/events/asyncapi.json")
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["asyncapi"] == "3.0.0"
    assert {c["address"] for c in doc["channels"].values()} == set(public_events())
    host = doc["servers"]["nats"]["host"]
    assert "@" not in host and host.startswith("127.0.0.1:")  # the test NATS, credentials never shown


async def test_other_gateway_routes_still_need_a_login(gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get("/api/gateway/events")).status_code == 401
    assert (await gateway.post("/api/gateway/events/asyncapi.json")).status_code in (401, 405)


def test_the_address_given_to_subscribers_carries_no_credential() -> None:
    from types import SimpleNamespace

    from gateway.config import Settings
    from gateway.events.router import public_nats_url

    def given(**kw: str) -> str:
        settings = Settings(environment="test", identity_secret="x" * 64, **kw)
        return public_nats_url(SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(settings=settings))))  # type: ignore[arg-type]

    assert given(nats_url="nats://gateway:s3cret@nats.internal:4223") == "nats://nats.internal:4223"
    assert given(nats_url="nats://a:b@nats.internal", events_nats_url="nats://events.example.org:4222") == \
        "nats://events.example.org:4222"
