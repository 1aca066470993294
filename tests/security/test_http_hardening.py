"""The HTTP servers themselves (issue 13, deliverable 4): JSON nesting limits on every body of every service
and the gateway, `/metrics` behind a token or an identity, the gateway's Host header parsed as an RFC 3986
authority, and header / body read timeouts against slow-loris clients (real sockets, a real uvicorn)."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.edge.host import HostAllowList, InvalidHostHeader, parse_host
from mlife_shared.auth import IDENTITY_HEADER, Identity, Role, sign_identity
from mlife_shared.http_limits import JsonDepthScanner
from tests.support.platform import service_process
from tests.support.stack import SECRET, Stack

LIMIT = 64


def deep(levels: int, leaf: str = "1") -> bytes:
    return ("[" * levels + leaf + "]" * levels).encode()


def deep_object(levels: int) -> bytes:
    return ('{"a":' * levels + "1" + "}" * levels).encode()


def identity(role: Role) -> dict[str, str]:
    return {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), f"h4-{role}", role), SECRET, ttl_seconds=600)}


JSON = {"Content-Type": "application/json"}
UNKNOWN_ID = "00000000-0000-4000-8000-0000000000aa"  # fixed: test ids must be the same in every xdist worker

# (service, method, path, role): JSON routes of every service, including the viewer's predict
ROUTES = [
    ("msm", "POST", "/api/msm/serve/anything/predict", "viewer"),
    ("msm", "POST", "/api/msm/deployments", "maintainer"),
    ("bam", "POST", "/api/bam/badcases", "tester"),
    ("bam", "PATCH", f"/api/bam/badcases/{UNKNOWN_ID}", "tester"),
    ("dam", "POST", "/api/dam/datasets", "engineer"),
    ("dam", "POST", "/api/dam/files/check", "viewer"),
    ("mtt", "POST", "/api/mtt/tasks", "engineer"),  # an upload route at the gateway: streamed, not buffered
    ("mtt", "PATCH", f"/api/mtt/tasks/{UNKNOWN_ID}", "engineer"),
]


# --- the scanner -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,ok", [
    (deep(LIMIT), True),
    (deep(LIMIT + 1), False),
    (deep_object(LIMIT + 1), False),
    (b'{"a": "' + b"[" * 1000 + b'"}', True),  # brackets inside a string do not count
    (b'["\\"' + b"[" * 1000 + b'"]', True),  # nor after an escaped quote
    (b'["\\\\"' + b"," + b"[" * 100 + b"]" * 100 + b"]", False),  # an escaped backslash ends nothing
    (b"\n".join([deep(40)] * 50), True),  # JSON lines: each line starts again at 0
    (b"]]]]" + deep(LIMIT), True),  # unbalanced closers do not go negative (the parser refuses the text)
])
def test_the_depth_scanner_counts_only_structure(text: bytes, ok: bool) -> None:
    whole = JsonDepthScanner(LIMIT).feed(text)
    assert whole is ok
    byte_by_byte = JsonDepthScanner(LIMIT)  # state carries across chunks of any size (escapes included)
    assert all(byte_by_byte.feed(text[i:i + 1]) for i in range(len(text))) is ok
    assert JsonDepthScanner(LIMIT).feed(text, last=True) is ok  # a whole body (its brackets counted first)
    head, tail = JsonDepthScanner(LIMIT), len(text) // 2  # the last chunk counted on top of the depth before it
    assert (head.feed(text[:tail]) and head.feed(text[tail:], last=True)) is ok


def _true_depth(text: bytes) -> int:
    """The deepest nesting of a JSON text, byte by byte: the scanner's reference."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text.decode("latin-1"):
        if in_string:
            escaped, in_string = (False, True) if escaped else (c == "\\", c != '"')
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth = max(0, depth - 1)
    return deepest


_TEXT = st.text(alphabet='ab[]{}"\\ \n', max_size=12)  # strings full of what the scanner must not count
_JSON = st.recursive(st.none() | st.integers() | _TEXT,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
                     max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(_JSON, min_size=1, max_size=3), cuts=st.lists(st.integers(0, 400), max_size=6),
       limit=st.integers(2, 6))
def test_the_depth_scanner_agrees_with_a_byte_by_byte_count_in_any_chunks(values: list[object], cuts: list[int],
                                                                          limit: int) -> None:
    text = "\n".join(json.dumps(v) for v in values).encode()  # JSON lines, strings with brackets and escapes
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    scanner = JsonDepthScanner(limit)
    fed = all(scanner.feed(text[a:b], last=b == len(text)) for a, b in itertools.pairwise(bounds))
    assert fed is (_true_depth(text) <= limit), text


# --- JSON depth through the gateway and at each service's own port ---------------------------------------

@pytest.mark.parametrize("service,method,path,role", ROUTES)
async def test_deep_json_is_refused_by_the_gateway_and_the_service(stack: Stack, service: str, method: str, path: str,
                                                                    role: str) -> None:
    if service not in stack.up:
        pytest.fail(f"{service} is down in the stack: {stack.down.get(service)}")
    token = {"Authorization": f"Bearer {stack.tokens[role]}"}
    async with httpx.AsyncClient(timeout=60) as c:
        for body in (deep(1000), deep(100_000), deep_object(5000)):
            via_gateway = await c.request(method, stack.url + path, content=body, headers={**token, **JSON})
            direct = await c.request(method, stack.up[service] + path, content=body,
                                     headers={**identity(role), **JSON})  # type: ignore[arg-type]
            for r in (via_gateway, direct):
                assert r.status_code == 422, (r.url, r.status_code, r.text[:300])
                assert r.json()["error"] == "JsonTooDeep" and f"{LIMIT} levels" in r.json()["detail"]
        # just under the limit the body reaches the route (which answers as it would: never JsonTooDeep)
        fine = await c.request(method, stack.url + path, content=deep(LIMIT - 1), headers={**token, **JSON})
        assert fine.status_code < 500 and "JsonTooDeep" not in fine.text, fine.text[:300]


async def test_deep_json_in_a_form_field_or_a_query_string_is_refused(stack: Stack) -> None:
    """JSON that arrives inside a multipart field (BAM's report with its data file) or a query parameter
    (MSM's upload metrics) is parsed by the route, not the body guard: it is bounded too (422, not 500)."""
    for service in ("bam", "msm"):
        if service not in stack.up:
            pytest.fail(f"{service} is down in the stack: {stack.down.get(service)}")
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as c:
        r = await c.post("/api/bam/badcases/with-data", headers=stack.auth("tester"),
                         data={"report": deep(5000).decode()}, files={"file": ("x.txt", b"hello", "text/plain")})
        assert r.status_code == 422 and r.json()["error"] == "JsonTooDeep", r.text[:300]
        r = await c.post("/api/msm/models/deep-metrics/versions", headers=stack.auth("engineer"),
                         params={"metrics": deep(3000).decode()}, content=b"not a model")
        assert r.status_code == 422 and r.json()["error"] == "JsonTooDeep", r.text[:300]


async def test_deep_json_is_refused_on_the_gateways_own_routes(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as c:
        for path, headers in (("/api/gateway/login", {}), ("/api/gateway/users", stack.auth("admin")),
                              ("/api/gateway/tokens", stack.auth("viewer"))):
            r = await c.post(path, content=deep(2000), headers={**headers, **JSON})
            assert r.status_code == 422 and r.json()["error"] == "JsonTooDeep", (path, r.text[:300])
        # without a content type FastAPI parses JSON too, so the scan applies; JSON lines count as JSON
        r = await c.post("/api/gateway/users", content=deep(2000), headers=stack.auth("admin"))
        assert r.status_code == 422 and r.json()["error"] == "JsonTooDeep"
        assert "x-request-id" in r.headers  # refused inside the request context: logged and counted
        # chunked (no Content-Length): refused while it streams
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b"[" * 50

        r = await c.post("/api/gateway/users", content=chunks(), headers={**stack.auth("admin"), **JSON})
        assert r.status_code == 422 and r.json()["error"] == "JsonTooDeep"


# --- /metrics ---------------------------------------------------------------------------------------------

async def test_service_metrics_need_the_metrics_token_or_an_engineer(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=30) as c:
        for service, url in stack.up.items():
            for path in ("/metrics", f"/api/{service}/metrics"):
                anonymous = await c.get(url + path)
                assert anonymous.status_code == 401 and anonymous.json()["error"] == "Unauthorized", (service, path)
                assert "mlife_http_requests_total" not in anonymous.text
                wrong = await c.get(url + path, headers={"Authorization": "Bearer not-the-metrics-token"})
                assert wrong.status_code == 401, (service, path)
                viewer = await c.get(url + path, headers=identity("viewer"))
                assert viewer.status_code == 403 and "engineer" in viewer.json()["detail"], (service, path)
                forged = await c.get(url + path, headers={IDENTITY_HEADER: sign_identity(
                    Identity(uuid.uuid4(), "mallory", "maintainer"), "not-the-identity-secret-" + "x" * 32)})
                assert forged.status_code == 401, (service, path)
                for headers in ({"Authorization": f"Bearer {stack.metrics_token}"}, identity("engineer"),
                                identity("maintainer")):
                    ok = await c.get(url + path, headers=headers)
                    assert ok.status_code == 200 and "mlife_http_requests_total" in ok.text, (service, path)


async def test_gateway_metrics_need_the_metrics_token_or_an_engineer(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as c:
        for path in ("/metrics", "/api/gateway/metrics"):
            assert (await c.get(path)).status_code == 401
            assert (await c.get(path, headers={"Authorization": "Bearer wrong-token"})).status_code == 401
            viewer = await c.get(path, headers=stack.auth("viewer"))
            assert viewer.status_code == 403 and "mlife_http_requests_total" not in viewer.text
            for headers in ({"Authorization": f"Bearer {stack.metrics_token}"}, stack.auth("engineer"),
                            stack.auth("maintainer")):
                ok = await c.get(path, headers=headers)
                assert ok.status_code == 200 and 'service="gateway"' in ok.text, path
        # a service's metrics through the gateway: the caller's identity decides (the token stays at the edge)
        if "bam" in stack.up:
            assert (await c.get("/api/bam/metrics", headers=stack.auth("viewer"))).status_code == 403
            assert (await c.get("/api/bam/metrics", headers=stack.auth("engineer"))).status_code == 200
            proxied = await c.get("/api/bam/metrics", headers={"Authorization": f"Bearer {stack.metrics_token}"})
            assert proxied.status_code == 401  # the metrics token is no API token


# --- the Host header --------------------------------------------------------------------------------------

ALLOWED = ["localhost", "127.0.0.1", "::1", "*.example.org"]


@pytest.mark.parametrize("host", [
    "localhost", "localhost:8000", "LocalHost:8000", "localhost.", "127.0.0.1:8000", "[::1]", "[::1]:8000",
    "[0:0:0:0:0:0:0:1]:80", "ui.example.org", "a.b.example.org:443",
])
def test_well_formed_allowed_hosts_pass(host: str) -> None:
    assert HostAllowList(ALLOWED).check(host) is None


@pytest.mark.parametrize("host", [
    "localhost:8000@evil.example", "user@localhost", "localhost:8000@localhost", "evil.example#@localhost",
    "localhost, evil.example", "localhost,evil.example", "localhost evil.example", " localhost", "localhost\t",
    "localhost:", "localhost:0", "localhost:65536", "localhost:8000:9000", "localhost:+80", "localhost:8o",
    "::1", "[::1", "[::1]x", "[::1]:", "[fe80::1%25eth0]", "[v1.abc]", "[127.0.0.1]", "localhost/x",
    "localhost?x", "local%68ost", "localhost\\@evil", "", "example.org", "example.org.evil.test",
    "evil.test", "127.1", "0x7f.0.0.1", "-localhost", "lócalhost",
])
def test_malformed_or_foreign_hosts_are_refused(host: str) -> None:
    assert HostAllowList(ALLOWED).check(host) is not None


def test_the_parser_returns_host_and_port() -> None:
    assert parse_host("LocalHost.:8000") == parse_host("localhost:8000")
    assert (parse_host("[0:0::1]:443").host, parse_host("[0:0::1]:443").port) == ("::1", 443)
    with pytest.raises(InvalidHostHeader, match="user information"):
        parse_host("localhost:8000@evil.example")


async def test_the_running_gateway_refuses_userinfo_in_host(stack: Stack) -> None:
    port = stack.url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}@evil.example", f"127.0.0.1:{port}@evil.example", "localhost, evil.example",
                 f"localhost:{port}:1"):
        status, body = await _raw(int(port), f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
        assert status == 400 and b"InvalidHost" in body, (host, status, body[:200])
    status, _ = await _raw(int(port), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n"
                                      "Connection: close\r\n\r\n")
    assert status == 400
    status, _ = await _raw(int(port), f"GET /healthz HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n")
    assert status == 200


async def _raw(port: int, request: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request.encode("latin-1"))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# --- slow loris: header and body read timeouts (a real gateway process on a free port) --------------------

@pytest.fixture
async def served_gateway(nats_url: str, tmp_path: Path) -> AsyncIterator[int]:
    """`python -m gateway api` (the entry point `mlife up` runs, and so its uvicorn configuration) with
    one-second read timeouts."""
    async with service_process(tmp_path, "gateway", nats_url=nats_url, secret=SECRET,
                               MLIFE_GATEWAY_ALLOWED_HOSTS='["127.0.0.1"]', MLIFE_HTTP_HEADER_TIMEOUT_SECONDS="1",
                               MLIFE_HTTP_BODY_TIMEOUT_SECONDS="1") as gateway:
        yield gateway.port


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (waits at most 30 s, then fails)."""
    return await asyncio.wait_for(reader.read(), 30)


async def test_slow_loris_sockets_are_closed_while_a_normal_client_is_served(served_gateway: int) -> None:
    port = served_gateway
    sockets = []
    for i in range(150):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if i % 3:  # two thirds send part of a head and stop; the rest send nothing at all
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            await writer.drain()
        sockets.append((reader, writer))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        assert (await c.get("/healthz")).status_code == 200  # served while the 150 are open
        closed = await asyncio.gather(*(_closed_by_server(r) for r, _ in sockets))
        assert all(data == b"" for data in closed)  # closed without an answer: the head never completed
        assert (await c.get("/healthz")).status_code == 200
    for _, writer in sockets:
        writer.close()


async def test_a_head_trickled_after_a_keep_alive_response_is_cut_off(served_gateway: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served_gateway)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    assert first.startswith(b"HTTP/1.1 200")
    length = int(next(line.split(b":")[1] for line in first.split(b"\r\n") if line.lower().startswith(b"content-length")))
    await reader.readexactly(length)
    # the next head arrives a few bytes at a time and never ends
    for piece in (b"GET /hea", b"lthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"X-A: 1\r\n"):
        writer.write(piece)
        await writer.drain()
        if reader.at_eof():
            break
        await asyncio.sleep(0.3)
    assert await _closed_by_server(reader) == b""
    writer.close()


async def test_a_stalled_body_gets_408_and_the_connection_closes(served_gateway: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served_gateway)
    body = json.dumps({"username": "admin", "password": "x" * 80}).encode()
    writer.write(b"POST /api/gateway/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10])
    await writer.drain()
    answer = await _closed_by_server(reader)  # the rest of the body never comes
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert json.loads(payload)["error"] == "BodyReadTimeout"
    writer.close()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served_gateway}", timeout=30) as c:
        # a body that arrives whole is read as usual
        r = await c.post("/api/gateway/login", content=body, headers=JSON)
        assert r.status_code == 401


def test_loads_bounded_refuses_deep_json_from_files_and_form_fields() -> None:
    from mlife_shared.http_limits import JsonTooDeep, loads_bounded

    assert loads_bounded(b'{"a": [1, {"b": "[[[["}]}') == {"a": [1, {"b": "[[[["}]}
    with pytest.raises(JsonTooDeep, match="the report is nested deeper than 64 levels"):
        loads_bounded(deep(5000), what="the report")


def test_a_body_without_content_type_is_scanned_only_while_it_looks_like_json() -> None:
    # FastAPI parses such a body as JSON, so deep JSON is refused, in any UTF json.loads reads ...
    for encoding in ("utf-8", "utf-16", "utf-32"):
        assert not JsonDepthScanner(LIMIT, sniff=True).feed(deep(1000).decode().encode(encoding))
    # ... but raw uploads come without a content type too: binary and non-JSON text are left alone
    png = b"\x89PNG\r\n\x1a\n" + b"[" * 1000
    assert JsonDepthScanner(LIMIT, sniff=True).feed(png)
    assert JsonDepthScanner(LIMIT, sniff=True).feed(b"label,x\n" + b"[" * 1000)
    assert not JsonDepthScanner(LIMIT).feed(png)  # a body that says it is JSON is held to it


async def test_raw_uploads_full_of_brackets_are_not_mistaken_for_json(stack: Stack) -> None:
    body = b"\x89PNG\r\n\x1a\n" + b"[" * 5000 + uuid.uuid4().bytes
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as c:
        r = await c.post("/api/dam/files", content=body, headers=stack.auth("tester"))
        assert r.status_code in (200, 201), r.text[:300]
