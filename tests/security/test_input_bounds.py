"""Integer bounds on every numeric parameter: each service's own OpenAPI is walked and every integer
query/path parameter of every route gets 2^31, 2^63, 2^64 and -2^63-1 (with a valid identity of the
highest role, real resources in the path where the service has them, on real PostgreSQL). The answer is
a 422 that names the parameter, never a 5xx. A body integer the schema missed is caught by the shared
safety net (mlife_shared.errors) as a 422 too."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlife_shared.app import create_app
from mlife_shared.auth import IDENTITY_HEADER, Identity, sign_identity

SECRET = "bounds-test-secret-" + uuid.uuid4().hex
VALUES = [2**31, 2**63, 2**64, -(2**63) - 1]
MAINTAINER = {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), "mia", "maintainer"), SECRET, ttl_seconds=3600)}


def _integer(schema: dict[str, Any]) -> dict[str, Any] | None:
    if schema.get("type") == "integer":
        return schema
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            if found := _integer(sub):
                return found
    return None


def integer_parameters(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, path, operation, parameter name) for every integer query/path parameter."""
    out = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                if p["in"] in ("query", "path") and _integer(p.get("schema", {})):
                    out.append((method, path, op, p["name"]))
    return out


def fill(op: dict[str, Any], path: str, known: dict[str, str], target: str, value: int) -> tuple[str, dict]:
    """The path with its other parameters filled (real ids where known) and the query with the value."""
    params: dict[str, Any] = {}
    for p in op.get("parameters", []):
        name, schema = p["name"], p.get("schema", {})
        if name == target:
            v: Any = value
        elif name in known:
            v = known[name]
        elif not p.get("required"):
            continue
        elif _integer(schema):
            v = 1
        elif schema.get("format") == "uuid":
            v = str(uuid.uuid4())
        else:
            v = "x"
        if p["in"] == "path":
            path = path.replace("{" + name + "}", str(v))
        else:
            params[name] = v
    return path, params


async def service(name: str, make_database: Callable[[str], Awaitable[str]], nats_url: str,
                  tmp_path: Path, **extra: Any) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    spec = importlib.import_module(f"{name}.app").SPEC
    settings_cls = importlib.import_module(f"{name}.config").Settings
    db = await make_database(f"{name}.migrations")
    settings = settings_cls(environment="test", database_url=db, nats_url=nats_url, identity_secret=SECRET,
                            home=tmp_path / name, object_store_path=tmp_path / f"{name}-objects", **extra)
    app = create_app(spec, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{name}", headers=MAINTAINER,
                                     timeout=60) as client:
            yield client, app.openapi()


async def walk(client: httpx.AsyncClient, spec: dict[str, Any], known: dict[str, str]) -> list[str]:
    checked, failures = 0, []
    for method, path, op, name in integer_parameters(spec):
        schema = next(_integer(p.get("schema", {})) or {} for p in op["parameters"] if p["name"] == name)
        low, high = schema.get("minimum", -(2**63)), schema.get("maximum", 2**63 - 1)
        if high > 2**63 - 1 or low < -(2**63) or "maximum" not in schema:
            failures.append(f"{method.upper()} {path} {name}: declares no bound the database can hold ({schema})")
        for value in VALUES:
            url, params = fill(op, path, known, name, value)
            body = {} if method in ("post", "put", "patch") else None
            r = await client.request(method.upper(), url, params=params, json=body)
            checked += 1
            where = f"{method.upper()} {path} {name}={value}"
            if r.status_code >= 500:
                failures.append(f"{where}: {r.status_code} {r.text[:200]}")
            elif not low <= value <= high and (r.status_code != 422 or name not in r.text):
                failures.append(f"{where}: {r.status_code}, not a 422 naming {name!r}: {r.text[:200]}")
    assert checked, "the walk found no integer parameter: the OpenAPI walk is broken"
    return failures


async def test_bam(make_database, nats_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async for client, spec in service("bam", make_database, nats_url, tmp_path):
        created = await client.post("/api/bam/badcases", json={
            "function": "emotion", "data": [{"kind": "md5", "value": "1" * 32, "media_type": "image"}],
            "prediction": "happy", "ground_truth": "sad"})
        assert created.status_code in (200, 201), created.text
        assert await walk(client, spec, {"badcase_id": created.json()["id"]}) == []


async def test_dam(make_database, nats_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async for client, spec in service("dam", make_database, nats_url, tmp_path):
        doc = await client.post("/api/dam/documents", params={"name": "t"},
                                json=[{"md5": "0" * 32, "label": "a"}])
        if doc.status_code != 201:  # a plain table when there is no such file
            doc = await client.post("/api/dam/documents", params={"name": "t"}, json=[{"x": 1.0, "label": "a"}])
        assert doc.status_code == 201, doc.text
        d = doc.json()["id"]
        assert await walk(client, spec, {"document_id": d, "a": d, "b": d}) == []


async def test_mtt(make_database, nats_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:10]
    async for client, spec in service("mtt", make_database, nats_url, tmp_path, work_root=tmp_path / "work",
                                      runs_stream=f"MLIFE_MTT_RUNS_B{tag.upper()}",
                                      runs_subject_prefix=f"mtt_b{tag}.run"):
        assert await walk(client, spec, {}) == []


async def test_msm(make_database, nats_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async for client, spec in service("msm", make_database, nats_url, tmp_path):
        assert await walk(client, spec, {}) == []


async def test_a_missed_body_bound_is_a_422_not_a_500(make_database, nats_url: str,  # type: ignore[no-untyped-def]
                                                       tmp_path: Path) -> None:
    """The safety net: a driver's integer overflow reaching the error renderer is a 422 that says what to fix."""
    from fastapi import FastAPI
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from mlife_shared.errors import install_error_handlers

    db = await make_database("dam.migrations")
    engine = create_async_engine(db)
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/int4")
    async def int4(n: int) -> dict[str, int]:
        async with engine.connect() as conn:
            return {"n": (await conn.execute(text("SELECT CAST(:n AS integer)"), {"n": n})).scalar_one()}

    @app.get("/python")
    async def python(n: int) -> dict[str, int]:
        import sqlite3

        sqlite3.connect(":memory:").execute("SELECT ?", (n,))
        return {"n": n}

    @app.get("/other")
    async def other() -> None:
        raise OverflowError("math range error")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path, n in [("/int4", 2**31), ("/int4", 2**63), ("/int4", -(2**63) - 1), ("/python", 2**63),
                        ("/python", -(2**63) - 1)]:
            if True:
                r = await client.get(path, params={"n": n})
                assert r.status_code == 422 and r.json()["error"] == "Unprocessable", (path, n, r.text)
        assert (await client.get("/int4", params={"n": 5})).json() == {"n": 5}
        assert (await client.get("/other")).status_code == 500  # a real server bug stays a 500
    await engine.dispose()
