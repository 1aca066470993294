"""The predict lane (msm.serving.lane) answers a prediction in front of the router, and every other outcome is the
reference route's: two apps on one database, one with the lane and one without, must answer every request alike
(status, body, headers, metrics), and only the failures may reach the route behind the lane."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import msm.serving.router as serving_router
from mlife_shared.auth import IDENTITY_HEADER
from msm.app import SPEC, create
from tests.msm.onnx_models import identity_classifier
from tests.msm.test_serving_many import serve
from tests.support.apps import asgi_client, serve_app
from tests.support.msm import make_settings
from tests.support.processes import free_port

LIMIT = 4096  # max_request_bytes of both apps
VARYING = {"prediction_id", "latency_ms"}  # differ between any two predictions


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _cases() -> dict[str, dict[str, Any]]:
    sample = b'{"inputs": {"x": [0.25, 1, 0, 0.5]}}'
    return {
        "one sample": {"content": sample},
        "a batch": {"json": {"inputs": {"x": [[0, 1, 0, 0], [1, 0, 0, 0]]}, "client_id": "c1"}},
        "a body in chunks": {"content": _chunks(sample[:10], sample[10:])},
        "no identity": {"content": sample, "headers": {IDENTITY_HEADER: ""}},
        "a forged identity": {"content": sample, "headers": {IDENTITY_HEADER: "not.a.token"}},
        "declared past the limit": {"content": b" " * (LIMIT + 1)},
        "streamed past the limit": {"content": _chunks(b"{" + b" " * LIMIT, b"  }")},
        "not JSON": {"content": b"{inputs"},
        "too deep": {"content": b'{"inputs": {"x": ' + b"[" * 80 + b"0" + b"]" * 80 + b"}}"},
        "wrong rank": {"json": {"inputs": {"x": [[[0, 1, 0, 0]]]}}},
        "unknown input": {"json": {"inputs": {"y": [0, 1, 0, 0]}}},
        "an unknown key": {"json": {"inputs": {"x": [0, 1, 0, 0]}, "extra": 1}},
        "a NaN": {"content": b'{"inputs": {"x": [NaN, 1, 0, 0]}}'},
        "unknown deployment": {"content": sample, "path": "/serve/nobody/predict"},
        "a slash in the deployment": {"content": sample, "path": "/serve/emotion/x/predict"},
        "a NUL in the query": {"content": sample, "path": "/serve/emotion/predict?x=%00"},
        "GET": {"method": "GET"},
    }


async def _call(client: httpx.AsyncClient, case: dict[str, Any]) -> httpx.Response:
    case = dict(case)
    method, path = case.pop("method", "POST"), case.pop("path", "/serve/emotion/predict")
    return await client.request(method, path, **case)


def _same(a: httpx.Response, b: httpx.Response, what: str) -> None:
    assert a.status_code == b.status_code, (what, a.text, b.text)
    body_a, body_b = a.json(), b.json()
    if a.status_code == 200:
        assert set(body_a) == set(body_b) and set(body_a) >= VARYING, what
        body_a, body_b = ({k: v for k, v in x.items() if k not in VARYING} for x in (body_a, body_b))
        assert a.headers["content-length"] == str(len(a.content)), what
    assert body_a == body_b, what
    skip = {"x-request-id", "content-length", "date", "server"}
    assert {k: v for k, v in a.headers.items() if k not in skip} == \
           {k: v for k, v in b.headers.items() if k not in skip}, what
    assert ("x-request-id" in a.headers) == ("x-request-id" in b.headers), what  # (not on the NUL refusal)


def _predict_counts(metrics: str) -> dict[str, str]:
    found = re.findall(r'mlife_http_requests_total\{[^}]*method="(\w+)",route="([^"]*predict[^"]*)",'
                       r'[^}]*status="(\d+)"\} (\S+)', metrics)
    return {f"{method} {route} {status}": count for method, route, status, count in found}


async def test_the_lane_answers_every_predict_as_the_route_behind_it(
        msm_db: str, nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(msm_db, nats_url, tmp_path, max_request_bytes=LIMIT)
    route_calls: list[str] = []
    answer = serving_router.predict_answer

    async def counted(*args: Any) -> bytes:  # the route behind the lane calls this one; the lane its own
        route_calls.append(args[1])
        return await answer(*args)

    monkeypatch.setattr(serving_router, "predict_answer", counted)
    async with (asgi_client(SPEC, settings) as lane,
                asgi_client(dataclasses.replace(SPEC, customize=None), settings) as plain):
        lane.db_url = msm_db  # type: ignore[attr-defined]
        await serve(lane, "emotion", identity_classifier(4))
        for what in _cases():  # (each call gets its cases anew: a streamed body is read once)
            route_calls.clear()
            with_lane = await _call(lane, _cases()[what])
            handed_over = list(route_calls)
            _same(with_lane, await _call(plain, _cases()[what]), what)
            if with_lane.status_code == 200:
                assert handed_over == [], f"{what}: the lane handed a prediction over"
                assert route_calls == ["emotion"], f"{what}: the app without the lane answers through the route"
        metrics = (await lane.get("/metrics")).text
        lane_counts = _predict_counts(metrics)
        assert 'route="/api/msm/deployments"' in metrics  # a FastAPI route's template, with its router's prefix
        assert lane_counts == _predict_counts((await plain.get("/metrics")).text)
        # each outcome under the route's own template, as the router labels it
        assert lane_counts["POST /api/msm/serve/{deployment}/predict 200"] == "3.0"
        assert lane_counts["POST /api/msm/serve/{deployment}/predict 401"] == "2.0"


async def test_the_lane_leaves_a_stalled_body_to_the_body_guard(
        msm_db: str, nats_url: str, tmp_path: Path) -> None:
    """Over real HTTP: a predict whose body stops arriving gets the guard's 408 and its connection is closed."""
    settings = make_settings(msm_db, nats_url, tmp_path, http_body_timeout_seconds=0.5)
    port = free_port()
    async for client in serve_app(create(settings), port, "msm"):
        client.db_url = msm_db  # type: ignore[attr-defined]
        await serve(client, "emotion", identity_classifier(4))
        ok = await client.post("/serve/emotion/predict", json={"inputs": {"x": [0, 1, 0, 0]}})
        assert ok.status_code == 200, ok.text
        token = client.headers[IDENTITY_HEADER]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST /api/msm/serve/emotion/predict HTTP/1.1\r\nHost: x\r\n{IDENTITY_HEADER}: {token}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"inputs\": ".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # read() returns at the close
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"BodyReadTimeout" in answer and b"connection: close" in answer.lower()
