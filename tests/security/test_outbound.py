"""No identity leaves the platform: the shared outbound guard (mlife_shared.outbound) refuses internal
addresses in every spelling, re-checks every redirect hop, sends no MLife credential and never echoes an
answer's body; DAM's pre-label endpoints go through it. Receivers are real local HTTP servers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from mlife_shared import outbound
from tests.dam.helpers import png
from tests.support.auth import as_role
from tests.support.outbox import outbox_events

SECRET_BODY = "INTERNAL-SECRET-BODY-0f3c9"


class Server:
    """A real HTTP server on 127.0.0.1 that records each request's headers and answers as told:
    `redirect_to` (a 302), `status` + `body`, or a predict answer with one output per input."""

    def __init__(self, *, status: int = 200, body: bytes | None = None, redirect_to: str | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                server.requests.append({"method": self.command, "path": self.path,
                                        "headers": {k.lower(): v for k, v in self.headers.items()}})
                if redirect_to is not None:
                    self.send_response(302)
                    self.send_header("location", redirect_to)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                out = body
                if out is None:
                    batch = json.loads(raw)["inputs"]["input"]
                    out = json.dumps({"outputs": {"y": [[0.1, 0.9] for _ in batch]}}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/predict"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        s.close()


BLOCKED = [
    "http://127.0.0.1/", "http://127.1.2.3:8080/x", "http://localhost/", "http://LOCALHOST./",
    "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/", "http://224.0.0.1/", "http://240.0.0.1/",
    "http://255.255.255.255/", "http://[::1]/", "http://[::]/", "http://[fe80::1]/", "http://[fc00::1]/",
    "http://[fd12:3456::1]/", "http://[ff02::1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:169.254.169.254]/",
    "http://[::127.0.0.1]/", "http://[2002:7f00:1::]/", "http://[64:ff9b::a00:1]/",
    "http://2130706433/", "http://0x7f.1/", "http://017700000001/", "http://0x7f000001/", "http://127.1/",
    "https://127.0.0.1:443/", "ftp://example.org/", "file:///etc/passwd", "gopher://127.0.0.1/",
    "http://user:pw@example.org/", "http://@127.0.0.1/", "http:///nohost", "not a url",
]


@pytest.mark.parametrize("url", BLOCKED)
async def test_the_guard_refuses_internal_addresses_in_every_spelling(url: str) -> None:
    with pytest.raises(outbound.UnsafeUrl) as caught:
        await outbound.check_url(url, [], what="the_field")
    assert str(caught.value.message).startswith("the_field")
    with pytest.raises(outbound.UnsafeUrl):
        await outbound.fetch("GET", url, allow=[], what="the_field")


async def test_the_allow_list_is_exact_about_host_network_and_port() -> None:
    assert (await outbound.check_url("http://127.0.0.1:8080/", ["127.0.0.1:8080"])).port == 8080
    assert await outbound.check_url("http://127.0.0.1:8080/", ["127.0.0.0/8"])
    assert await outbound.check_url("http://localhost:8080/", ["localhost"])
    assert await outbound.check_url("http://[::1]:8080/", ["[::1]:8080"])
    for url, allow in [("http://127.0.0.1:8081/", ["127.0.0.1:8080"]), ("http://10.0.0.1/", ["127.0.0.0/8"]),
                       ("http://169.254.169.254/", ["localhost"]), ("http://[::1]:8081/", ["[::1]:8080"])]:
        with pytest.raises(outbound.UnsafeUrl):
            await outbound.check_url(url, allow)


async def test_a_redirect_to_an_internal_address_is_refused_on_the_hop(servers: list[Server]) -> None:
    inner = Server(body=b"{}")
    servers.append(inner)
    outer = Server(redirect_to=f"http://127.0.0.1:{inner.port}/admin")
    servers.append(outer)
    with pytest.raises(outbound.UnsafeUrl) as caught:
        await outbound.fetch("GET", outer.url, allow=[f"127.0.0.1:{outer.port}"], what="prelabel.endpoint")
    assert "non-public" in str(caught.value.message)
    assert len(outer.requests) == 1 and inner.requests == []  # the second hop was never made
    # allow-listed too, the hop is followed (manually, re-checked), and the redirect count is bounded
    got = await outbound.fetch("GET", outer.url, allow=[f"127.0.0.1:{outer.port}", f"127.0.0.1:{inner.port}"])
    assert got.status_code == 200 and inner.requests[0]["path"] == "/admin"
    loop = Server(redirect_to="/again")
    servers.append(loop)
    with pytest.raises(outbound.OutboundError, match="redirected more than 3 times"):
        await outbound.fetch("GET", loop.url, allow=[f"127.0.0.1:{loop.port}"], max_redirects=3)
    assert len(loop.requests) == 4


async def test_no_platform_credential_is_sent_and_the_host_header_keeps_the_name(servers: list[Server]) -> None:
    s = Server(body=b"ok")
    servers.append(s)
    got = await outbound.fetch("POST", f"http://localhost:{s.port}/x", allow=[f"localhost:{s.port}"],
                               headers={"X-MLife-Identity": "forged", "Authorization": "Bearer platform",
                                        "Cookie": "mlife_session=1", "x-custom": "kept"}, content=b"{}")
    assert got.status_code == 200 and got.content == b"ok"
    h = s.requests[0]["headers"]
    assert "x-mlife-identity" not in h and "authorization" not in h and "cookie" not in h
    assert h["x-custom"] == "kept" and h["host"] == f"localhost:{s.port}"  # connected to the checked address
    # the endpoint's own secret goes to that endpoint, never across a redirect to another origin
    other = Server(body=b"ok")
    servers.append(other)
    hop = Server(redirect_to=f"http://localhost:{other.port}/y")
    servers.append(hop)
    await outbound.fetch("GET", hop.url, allow=["127.0.0.1", "localhost"],
                         secret_headers={"authorization": "Bearer its-own"})
    assert hop.requests[0]["headers"]["authorization"] == "Bearer its-own"
    assert "authorization" not in other.requests[0]["headers"]


async def test_answers_are_bounded(servers: list[Server]) -> None:
    s = Server(body=b"x" * 5000)
    servers.append(s)
    with pytest.raises(outbound.OutboundError, match="larger than 1000 bytes") as caught:
        await outbound.fetch("GET", s.url, allow=["127.0.0.1"], max_bytes=1000)
    assert "xxxx" not in str(caught.value.message)


async def _features_doc(dam: httpx.AsyncClient) -> str:
    md5s = [(await dam.post("/files", content=png(4, 4, seed=700 + i))).json()["md5"] for i in range(2)]
    rows = [{"md5": m, "feat": "[0.5, 0.5]"} for m in md5s]
    return (await dam.post("/documents", params={"name": "feats"}, json=rows)).json()["id"]


@pytest.mark.parametrize("endpoint", [
    "http://127.0.0.1:9/predict", "http://localhost/predict", "http://10.1.2.3/predict",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/predict", "http://2130706433/predict",
])
async def test_dam_refuses_an_internal_prelabel_endpoint_at_create(dam: httpx.AsyncClient, dam_db: str,  # noqa: F811
                                                                   endpoint: str) -> None:
    doc = await _features_doc(dam)
    r = await dam.post("/labelling-tasks", json={"document_id": doc, "labels": ["a", "b"], "label_studio": False,
                                                 "prelabel": {"endpoint": endpoint, "input_column": "feat"}})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "UnsafeUrl" and r.json()["detail"].startswith("prelabel.endpoint")
    assert await outbox_events(dam_db, "labelling.requested") == []


async def test_dam_sends_no_identity_to_a_prelabel_endpoint(dam: httpx.AsyncClient, servers: list[Server]) -> None:
    s = Server()
    servers.append(s)
    dam.app.state.settings.outbound_allow_hosts = [f"127.0.0.1:{s.port}"]  # type: ignore[attr-defined]
    doc = await _features_doc(dam)
    r = await dam.post("/labelling-tasks", headers=as_role("engineer", "erin"), json={
        "document_id": doc, "labels": ["a", "b"], "label_studio": False,
        "prelabel": {"endpoint": s.url + "?key=k", "input_column": "feat"}})
    assert r.status_code == 201, r.text
    assert r.json()["prelabel_source"] == f"endpoint:{s.url}"  # the query (it may hold a key) is not kept
    items = (await dam.get(f"/labelling-tasks/{r.json()['id']}/items")).json()
    assert [i["prelabel"] for i in items] == ["b", "b"]
    headers = s.requests[0]["headers"]
    assert "x-mlife-identity" not in headers and "authorization" not in headers and "cookie" not in headers
    # an Authorization the user gives for this endpoint is that endpoint's own secret: sent, never stored
    r = await dam.post("/labelling-tasks", json={
        "document_id": doc, "labels": ["a", "b"], "label_studio": False,
        "prelabel": {"endpoint": s.url, "input_column": "feat", "authorization": "Bearer ext-key"}})
    assert r.status_code == 201 and s.requests[-1]["headers"]["authorization"] == "Bearer ext-key"
    assert "ext-key" not in r.text


async def test_dam_never_echoes_an_endpoint_answer(dam: httpx.AsyncClient, servers: list[Server]) -> None:
    failing = Server(status=500, body=SECRET_BODY.encode())
    garbled = Server(status=200, body=SECRET_BODY.encode())
    servers.extend([failing, garbled])
    dam.app.state.settings.outbound_allow_hosts = ["127.0.0.1"]  # type: ignore[attr-defined]
    doc = await _features_doc(dam)
    for s, expected in [(failing, "answered HTTP 500"), (garbled, "must answer")]:
        r = await dam.post("/labelling-tasks", json={"document_id": doc, "labels": ["a"], "label_studio": False,
                                                     "prelabel": {"endpoint": s.url, "input_column": "feat"}})
        assert r.status_code == 422 and expected in r.json()["detail"], r.text
        assert SECRET_BODY not in r.text and "127.0.0.1" in r.json()["detail"]
    listed = await dam.get("/labelling-tasks")
    assert listed.json() == [] and SECRET_BODY not in listed.text
