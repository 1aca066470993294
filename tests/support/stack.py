"""The whole platform as separate processes for the gateway, browser, CLI and security tests: every service
that has an API (real `python -m <svc> all` processes on fresh PostgreSQL databases), its own NATS server, and
the gateway (`python -m gateway all`: its API and its worker, which sends the webhooks). A service whose API does
not come up is left down and reported: the gateway then answers 503 for it, which the tests check as such."""

from __future__ import annotations

import importlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support import processes
from tests.support.platform import SERVICES, Processes
from tests.support.processes import READY_TIMEOUT, free_port

ROLES = ("viewer", "tester", "engineer", "maintainer")
SECRET = "stack-secret-" + uuid.uuid4().hex
ADMIN_TOKEN = "mlf_stack_admin_" + uuid.uuid4().hex
ADMIN_PASSWORD = "stack-admin-" + uuid.uuid4().hex[:10]
PASSWORD = "a long test password"
METRICS_TOKEN = "stack-metrics-" + uuid.uuid4().hex  # what Prometheus would send to every /metrics


@dataclass
class Stack(Processes):
    url: str = ""
    admin_token: str = ADMIN_TOKEN
    admin_password: str = ADMIN_PASSWORD
    up: dict[str, str] = field(default_factory=dict)  # service -> url
    down: dict[str, str] = field(default_factory=dict)  # service -> why
    tokens: dict[str, str] = field(default_factory=dict)  # role -> API token of a user with that role
    metrics_token: str = METRICS_TOKEN
    started: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)  # service -> (argv, env)

    def auth(self, role: str = "maintainer") -> dict[str, str]:
        token = self.admin_token if role == "admin" else self.tokens[role]
        return {"Authorization": f"Bearer {token}"}


def _has_api(service: str) -> bool:
    try:
        spec = importlib.import_module(f"{service}.app").SPEC
        return bool(spec.routers())
    except Exception:  # noqa: BLE001 - a service under construction that does not import is "down"
        return False


async def _start_services(stack: Stack, base_env: dict[str, str]) -> None:
    started: dict[str, str] = {}
    for service in SERVICES:
        if not _has_api(service):
            stack.down[service] = "no API yet"
            continue
        try:
            db = await stack.database(f"{service}.migrations", "mlife_stack")
        except Exception as exc:  # noqa: BLE001
            stack.down[service] = f"migration failed: {exc}"
            continue
        port = free_port()
        (stack.home / service).mkdir(parents=True, exist_ok=True)
        env = dict(base_env, MLIFE_HOME=str(stack.home / service), **{f"MLIFE_{service.upper()}_DATABASE_URL": db})
        # api + worker in one process, as `mlife up` runs them: events flow (deployments come up, …)
        stack.started[service] = (["-m", service, "all", "--port", str(port)], env)
        stack.start(service, *stack.started[service])
        started[service] = f"http://127.0.0.1:{port}"
    await _wait_services(stack, started)


async def _wait_services(stack: Stack, started: dict[str, str]) -> None:
    for service, url in started.items():
        why = await stack.ready(service, url, READY_TIMEOUT)
        if why is None:
            stack.up[service] = url
        else:
            stack.down[service] = why
            stack.procs[service].terminate()


async def restart_services(stack: Stack, env: dict[str, str | None]) -> None:
    """Stop every service that is up and start it again on its port and database, its environment changed by
    `env` (None removes a variable): what an operator does after installing or removing a plugin package."""
    urls = dict(stack.up)
    processes.stop([stack.procs[s] for s in urls], timeout=30)
    stack.up.clear()
    for service in urls:
        argv, old = stack.started[service]
        new = {k: v for k, v in {**old, **env}.items() if v is not None}
        stack.started[service] = (argv, new)
        stack.start(service, argv, new)
    await _wait_services(stack, urls)


async def _start_gateway(stack: Stack, base_env: dict[str, str]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    gw_db = await stack.database("gateway.migrations", "mlife_stack")
    port = free_port()
    env = dict(base_env, MLIFE_HOME=str(stack.home / "gateway"), MLIFE_GATEWAY_DATABASE_URL=gw_db,
               MLIFE_GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN, MLIFE_GATEWAY_ADMIN_PASSWORD=ADMIN_PASSWORD,
               MLIFE_GATEWAY_ALLOWED_HOSTS=json.dumps(["127.0.0.1", "localhost"]),
               MLIFE_GATEWAY_SESSION_COOKIE_SECURE="false",
               # schemathesis fuzzes the login from 127.0.0.1 too; the limit itself is tested in test_users
               MLIFE_GATEWAY_LOGIN_MAX_FAILURES_PER_IP="1000000",
               **{f"MLIFE_GATEWAY_{s.upper()}_URL": stack.up.get(s, closed) for s in SERVICES})
    stack.start("gateway", ["-m", "gateway", "all", "--migrate", "--port", str(port)], env)
    stack.url = f"http://127.0.0.1:{port}"
    why = await stack.ready("gateway", stack.url, READY_TIMEOUT)
    if why is not None:
        raise RuntimeError(f"the gateway did not start: {why}")


async def _users(stack: Stack) -> None:
    """A user and an API token per role."""
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


async def start_stack(home: Path, nats_url: str | None = None, env: dict[str, str] | None = None) -> Stack:
    """`nats_url` is ignored: the stack always runs a NATS server of its own (anonymous, as `mlife up` does).
    `env` is added to every process's environment (e.g. a PYTHONPATH holding plugin packages)."""
    stack = Stack(home=home)
    try:
        await _start(stack, env or {})
    except BaseException:
        await stop_stack(stack)
        raise
    return stack


async def _start(stack: Stack, env: dict[str, str]) -> None:
    home = stack.home
    nats = await stack.start_nats()
    base_env = dict(os.environ, MLIFE_ENVIRONMENT="test", MLIFE_IDENTITY_SECRET=SECRET, MLIFE_NATS_URL=nats.url,
                    MLIFE_OBJECT_STORE="local", MLIFE_OBJECT_STORE_PATH=str(home / "objects"),
                    MLIFE_LOG_LEVEL="WARNING", MLFLOW_DISABLE_TELEMETRY="true", MLIFE_METRICS_TOKEN=METRICS_TOKEN,
                    ORT_DISABLE_TELEMETRY="1",
                    # the browser test's webhook receiver listens on this machine; 127.0.0.1 itself stays refused
                    MLIFE_GATEWAY_WEBHOOK_ALLOW_HOSTS=json.dumps(["localhost"]))
    base_env.update(env)
    await _start_services(stack, base_env)
    await _start_gateway(stack, base_env)
    await _users(stack)


async def stop_stack(stack: Stack) -> None:
    await stack.stop()
