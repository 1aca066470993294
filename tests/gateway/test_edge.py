"""The gateway's edge: request ids forwarded, timeouts, upstream errors in the error shape, the Host
allow-list, request-size limits (streamed bodies included), identity headers never trusted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from tests.support.gateway import ADMIN_TOKEN

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_request_id_is_forwarded_and_returned(edge: httpx.AsyncClient) -> None:
    r = await edge.get("/api/mtt/echo", headers={**AUTH, "X-Request-ID": "rid-42"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "rid-42"
    seen = r.json()["headers"]
    assert seen["x-request-id"] == "rid-42"
    assert "authorization" not in seen and "cookie" not in seen, "credentials never reach a service"
    assert seen["x-mlife-identity"], "the signed identity is forwarded"
    generated = await edge.get("/api/mtt/echo", headers=AUTH)
    assert generated.headers["x-request-id"] == generated.json()["headers"]["x-request-id"]


async def test_a_refused_request_still_has_a_request_id(edge: httpx.AsyncClient) -> None:
    r = await edge.get("/api/mtt/echo", headers={"X-Request-ID": "rid-401"})
    assert r.status_code == 401 and r.headers["x-request-id"] == "rid-401"


async def test_a_slow_service_is_a_504_naming_it(edge: httpx.AsyncClient) -> None:
    r = await edge.get("/api/mtt/slow", headers=AUTH)
    assert r.status_code == 504
    assert r.json()["error"] == "GatewayTimeout" and "mtt" in r.json()["detail"]


async def test_upstream_errors_come_back_in_the_error_shape(edge: httpx.AsyncClient) -> None:
    text = await edge.get("/api/mtt/text-error", headers=AUTH)
    assert text.status_code == 500
    assert text.json() == {"error": "InternalServerError", "detail": "the mtt service answered 500: upstream exploded"}
    bare = await edge.get("/api/mtt/bare-error", headers=AUTH)
    assert bare.status_code == 409 and bare.json() == {"error": "Conflict", "detail": "bare detail"}


async def test_a_down_service_is_named(edge: httpx.AsyncClient) -> None:
    r = await edge.post("/api/bam/badcases", json={}, headers=AUTH)
    assert r.status_code == 503 and r.json()["detail"] == "the bam service is unavailable; retry in a moment"


async def test_hosts_outside_the_allow_list_are_refused(edge: httpx.AsyncClient) -> None:
    r = await edge.get("/healthz", headers={"Host": "evil.test"})
    assert r.status_code == 400 and r.json()["error"] == "InvalidHost"
    assert (await edge.get("/healthz", headers={"Host": "gateway:8000"})).status_code == 200
    assert (await edge.get("/healthz", headers={"Host": "ui.example.org"})).status_code == 200
    assert (await edge.get("/healthz", headers={"Host": "example.org.evil.test"})).status_code == 400


async def test_declared_body_over_the_limit_is_413(edge: httpx.AsyncClient) -> None:
    r = await edge.post("/api/mtt/tasks/t1/run", content=b"x" * 1001, headers=AUTH)
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge" and "1000" in r.json()["detail"]
    ok = await edge.post("/api/mtt/tasks/t1/run", content=b"x" * 1000, headers=AUTH)
    assert ok.status_code == 200 and ok.json()["size"] == 1000


async def test_upload_routes_take_larger_bodies_streamed(edge: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(50):
            yield b"y" * 1000  # 50 kB, chunked: no Content-Length

    r = await edge.post("/api/dam/files", content=chunks(), headers=AUTH)
    assert r.status_code == 200 and r.json()["size"] == 50_000

    async def too_many() -> AsyncIterator[bytes]:
        for _ in range(200):
            yield b"z" * 1000

    big = await edge.post("/api/dam/files", content=too_many(), headers=AUTH)
    assert big.status_code == 413 and "100000" in big.json()["detail"]
    streamed_small_route = await edge.post("/api/mtt/tasks/t1/run", content=chunks(), headers=AUTH)
    assert streamed_small_route.status_code == 413


async def test_a_client_sent_identity_header_is_replaced(edge: httpx.AsyncClient) -> None:
    r = await edge.get("/api/mtt/echo", headers={**AUTH, "X-MLife-Identity": "forged"})
    assert r.json()["headers"]["x-mlife-identity"] != "forged"
    assert (await edge.get("/api/mtt/echo", headers={"X-MLife-Identity": "forged"})).status_code == 401


async def test_invalid_content_length_is_400(edge: httpx.AsyncClient) -> None:
    r = await edge.post("/api/mtt/tasks", content=b"{}", headers={**AUTH, "Content-Length": "abc"})
    assert r.status_code == 400


async def test_proxied_requests_keep_the_proxy_route_in_the_metrics(edge: httpx.AsyncClient) -> None:
    """Service requests skip the gateway's router (ProxyFastPath); they are still counted per route template,
    refused with 405 where the service's API has no such method, and answered in the error shape."""
    assert (await edge.get("/api/mtt/echo", headers=AUTH)).status_code == 200
    metrics = (await edge.get("/api/gateway/metrics", headers=AUTH)).text
    assert 'route="/api/{service}/{path:path}"' in metrics and 'status="200"' in metrics
    missing = await edge.get("/api/nosuch/thing", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"


async def test_a_revoked_token_is_refused_at_once_although_just_used(edge: httpx.AsyncClient) -> None:
    """The edge remembers who a token is for (auth_cache_seconds), and forgets on any change made through it."""
    password = "correct horse battery"
    r = await edge.post("/api/gateway/users", json={"username": "carl", "password": password, "role": "viewer"},
                        headers=AUTH)
    assert r.status_code == 201, r.text
    csrf = (await edge.post("/api/gateway/login", json={"username": "carl", "password": password})).json()["csrf_token"]
    created = (await edge.post("/api/gateway/tokens", json={"name": "cached"}, headers={"X-CSRF-Token": csrf})).json()
    edge.cookies.clear()
    bearer = {"Authorization": f"Bearer {created['token']}"}
    for _ in range(3):  # the first reads the database, the others the cache
        assert (await edge.get("/api/mtt/echo", headers=bearer)).status_code == 200
    assert (await edge.delete(f"/api/gateway/tokens/{created['id']}", headers=bearer)).status_code == 204
    r = await edge.get("/api/mtt/echo", headers=bearer)
    assert r.status_code == 401 and r.json()["error"] == "InvalidToken"


async def test_a_cookie_an_upstream_sets_reaches_its_caller_and_never_goes_up_with_other_requests(
        edge: httpx.AsyncClient) -> None:
    first = await edge.get("/api/mtt/set-cookie", headers=AUTH)
    cookies = first.headers.get_list("set-cookie")
    assert first.status_code == 200 and len(cookies) == 2 and "upstream_session=one-callers-secret" in cookies[0]
    edge.cookies.clear()  # the next caller has no cookie of its own
    later = await edge.get("/api/mtt/echo", headers=AUTH)
    assert later.status_code == 200
    assert "cookie" not in later.json()["headers"], later.json()["headers"]


async def test_the_query_path_and_forwarding_headers_reach_the_service_as_sent(edge: httpx.AsyncClient) -> None:
    r = await edge.get("/api/mtt/a%2Fb/echo?q=dusk%20road&tag=x&tag=y&empty=", headers=AUTH)
    seen = r.json()
    assert r.status_code == 200 and seen["query"] == "q=dusk%20road&tag=x&tag=y&empty="
    assert seen["path"] == "/api/mtt/a/b/echo"  # decoded by the service's server, from the raw path sent
    assert seen["headers"]["x-forwarded-host"] == "gateway" and seen["headers"]["x-forwarded-proto"] == "https"
    assert "authorization" not in seen["headers"] and seen["headers"]["x-mlife-identity"]
    assert "date" not in r.headers and "server" not in r.headers  # the gateway's own server adds its own
    head = await edge.head("/api/mtt/echo", headers=AUTH)
    assert head.status_code == 200 and head.content == b""
