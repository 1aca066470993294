"""The gateway on real PostgreSQL, a real BAM process and real NATS: tokens, the signed identity,
the proxy, readiness by name and the merged OpenAPI."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import pytest

from gateway.user.exceptions import WeakSecret
from gateway.user.service import UserService
from mlife_shared.auth import IDENTITY_HEADER, Identity, sign_identity
from mlife_shared.db import Database
from tests.support.auth import SECRET
from tests.support.gateway import ADMIN_TOKEN, Service

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_no_token_is_401_with_the_error_shape(gateway: httpx.AsyncClient) -> None:
    r = await gateway.get("/api/bam/dead-letters")
    assert r.status_code == 401
    assert r.json()["error"] == "Unauthorized" and "Bearer" in r.json()["detail"]


async def test_unknown_token_is_401(gateway: httpx.AsyncClient) -> None:
    r = await gateway.get("/api/bam/dead-letters", headers={"Authorization": "Bearer mlf_nope"})
    assert r.status_code == 401 and r.json()["error"] == "InvalidToken"


async def test_admin_token_reaches_the_service(gateway: httpx.AsyncClient) -> None:
    r = await gateway.get("/api/bam/dead-letters", headers=AUTH)
    assert r.status_code == 200 and r.json() == []
    me = await gateway.get("/api/gateway/me", headers=AUTH)
    assert me.json()["username"] == "admin" and me.json()["role"] == "maintainer"


async def test_a_client_cannot_forge_the_identity_header(gateway: httpx.AsyncClient) -> None:
    forged = sign_identity(Identity(uuid.uuid4(), "mallory", "maintainer"), "not-the-secret-" + "x" * 32)
    r = await gateway.get("/api/bam/dead-letters", headers={IDENTITY_HEADER: forged})
    assert r.status_code == 401


async def test_a_service_reached_directly_is_not_open(bam_service: Service) -> None:
    async with httpx.AsyncClient(base_url=bam_service.url) as c:
        assert (await c.get("/api/bam/dead-letters")).status_code == 401
        wrong = sign_identity(Identity(uuid.uuid4(), "m", "maintainer"), "wrong-secret-" + "y" * 32)
        assert (await c.get("/api/bam/dead-letters", headers={IDENTITY_HEADER: wrong})).status_code == 401
        expired = jwt.encode({"sub": str(uuid.uuid4()), "role": "viewer", "iss": "mlife-gateway",
                              "aud": "mlife-services", "iat": int(time.time()) - 600,
                              "exp": int(time.time()) - 300}, SECRET, algorithm="HS256")
        r = await c.get("/api/bam/dead-letters", headers={IDENTITY_HEADER: expired})
        assert r.status_code == 401 and "expired" in r.json()["detail"]
        ok = sign_identity(Identity(uuid.uuid4(), "v", "viewer"), SECRET)
        assert (await c.get("/api/bam/dead-letters", headers={IDENTITY_HEADER: ok})).status_code == 200


async def test_health_is_public_through_the_gateway(gateway: httpx.AsyncClient) -> None:
    r = await gateway.get("/api/bam/healthz")
    assert r.status_code == 200 and r.json()["service"] == "bam"


async def test_readyz_names_every_service_and_nats(gateway: httpx.AsyncClient) -> None:
    r = await gateway.get("/readyz")
    checks = r.json()["checks"]
    assert r.status_code == 503  # dam, mtt and msm are down in this test
    assert checks["bam"] == "ok" and checks["nats"] == "ok" and checks["database"] == "ok"
    for down in ("dam", "mtt", "msm"):
        assert checks[down].startswith("fail")


async def test_a_down_service_is_a_503_that_names_it(gateway: httpx.AsyncClient) -> None:
    r = await gateway.get("/api/msm/dead-letters", headers=AUTH)
    assert r.status_code == 503
    assert r.json() == {"error": "ServiceUnavailable", "detail": "the msm service is unavailable; retry in a moment"}


async def test_an_unknown_service_is_404(gateway: httpx.AsyncClient) -> None:
    r = await gateway.get("/api/nope/x", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"] == "NotFound"


async def test_merged_openapi_has_every_live_service(gateway: httpx.AsyncClient) -> None:
    doc = (await gateway.get("/openapi.json", headers=AUTH)).json()
    assert "/api/bam/healthz" in doc["paths"] and "/api/bam/dead-letters" in doc["paths"]
    assert "/api/gateway/me" in doc["paths"]
    assert doc["info"]["x-mlife-unavailable"] == ["dam", "mtt", "msm"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_request_id_is_kept_and_returned(gateway: httpx.AsyncClient) -> None:
    r = await gateway.get("/api/bam/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


async def test_admin_bootstrap_rules(make_database) -> None:  # type: ignore[no-untyped-def]
    db = Database(await make_database("gateway.migrations"))
    try:
        async with db.transaction() as s:
            with pytest.raises(WeakSecret):
                await UserService(s).ensure_admin(token="short", password=None)
        async with db.transaction() as s:
            first = await UserService(s).ensure_admin(token=None, password=None)
        assert first.created and first.token and first.token.startswith("mlf_") and first.password
        async with db.transaction() as s:
            again = await UserService(s).ensure_admin(token=None, password=None)
        assert not again.created and again.token is None, "credentials are shown once"
        async with db.transaction() as s:
            assert (await UserService(s).authenticate_token(first.token)).username == "admin"
    finally:
        await db.dispose()


async def test_badcases_through_the_gateway_json_and_streamed_multipart(gateway: httpx.AsyncClient) -> None:
    body = {"function": "emotion", "data": [{"kind": "md5", "value": "a" * 32}], "prediction": "happy",
            "ground_truth": "sad", "description": "through the gateway"}
    r = await gateway.post("/api/bam/badcases", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.json()["reporter"] == "admin"
    again = await gateway.post("/api/bam/badcases", json=body, headers=AUTH)
    assert again.status_code == 200 and again.json()["merged_into"] == r.json()["id"]
    import json as _json

    upload = await gateway.post("/api/bam/badcases/with-data", headers=AUTH,
                                data={"report": _json.dumps({**body, "data": []})},
                                files={"file": ("note.txt", b"hello " * 50_000, "text/plain")})
    assert upload.status_code == 201, upload.text
    assert upload.json()["media_type"] == "text"
    listed = await gateway.get("/api/bam/badcases", params={"q": "gateway"}, headers=AUTH)
    assert len(listed.json()["items"]) == 2
    assert (await gateway.post("/api/bam/badcases", json=body)).status_code == 401
