"""The platform for the end-to-end loop, as real processes: every service on its own fresh PostgreSQL
database, NATS JetStream and the S3 server from `scripts/testenv.py`, the gateway in front. MTT runs split
as in a distributed install (api, worker and a separate runner process); the others run `all`. NATS is a
JetStream server of the platform's own (the services' durable consumers must not share work with other
tests' consumers of the same names)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from mlife_shared.migrations import upgrade
from tests.conftest import PG_HOST, PG_PORT, PG_USER, free_port, pg_url

SERVICES = ("bam", "dam", "mtt", "msm")


@dataclass
class Platform:
    url: str
    token: str
    home: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)

    def logs(self) -> str:
        out = []
        for name in self.procs:
            log = self.home / f"{name}.log"
            if log.exists():
                out.append(f"--- {name} ---\n" + log.read_text(errors="replace")[-2000:])
        return "\n".join(out)


def s3_env() -> dict[str, str]:
    endpoint = os.environ.get("MLIFE_TEST_S3_ENDPOINT")
    assert endpoint, "MLIFE_TEST_S3_* is not set: run the tests with `make test`, which starts an S3 server"
    return {"MLIFE_OBJECT_STORE": "s3", "MLIFE_S3_ENDPOINT": endpoint,
            "MLIFE_S3_ACCESS_KEY": os.environ["MLIFE_TEST_S3_ACCESS_KEY"],
            "MLIFE_S3_SECRET_KEY": os.environ["MLIFE_TEST_S3_SECRET_KEY"],
            "MLIFE_S3_BUCKET": os.environ.get("MLIFE_TEST_S3_BUCKET", "mlife-test")}


async def _database(migrations: str, platform: Platform) -> str:
    name = f"mlife_e2e_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    platform.databases.append(name)
    url = pg_url(name)
    await asyncio.to_thread(upgrade, migrations, url)
    return url


def _start_binary(platform: Platform, name: str, argv: list[str], env: dict[str, Any] | None = None) -> None:
    log = open(platform.home / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
    platform.procs[name] = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)


def _start(platform: Platform, name: str, argv: list[str], env: dict[str, Any]) -> None:
    _start_binary(platform, name, [sys.executable, *argv], env)


async def _ready(platform: Platform, name: str, url: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as c:
        while asyncio.get_running_loop().time() < deadline:
            assert platform.procs[name].poll() is None, f"{name} exited:\n{platform.logs()}"
            try:
                if (await c.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise AssertionError(f"{name} was not ready in {timeout}s:\n{platform.logs()}")


async def _own_nats(platform: Platform) -> tuple[str, dict[str, str]]:
    """NATS as compose runs it: the committed deploy/nats/nats.conf (authenticated, a user per service),
    passwords in its environment; only its address, store and monitoring port differ. Returns the URL and
    each user's password."""
    from mlife.launcher import nats_binary
    from mlife_shared.messaging import natsauth

    port = free_port()
    (platform.home / "nats").mkdir()
    conf = platform.home / "nats.conf"
    conf.write_text(natsauth.relocate(natsauth.DEPLOY_CONFIG.read_text(), listen=f"127.0.0.1:{port}",
                                      store_dir=str(platform.home / "nats"), monitor=f"127.0.0.1:{free_port()}"))
    users = re.findall(r'^\s*user: "([^"]+)"$', conf.read_text(), re.M)
    passwords = {user: secrets.token_hex(32) for user in users}
    _start_binary(platform, "nats", [nats_binary(), "-c", str(conf)],
                  dict(os.environ, **{natsauth.password_env(u): p for u, p in passwords.items()}))
    deadline = asyncio.get_running_loop().time() + 20
    while asyncio.get_running_loop().time() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return f"nats://127.0.0.1:{port}", passwords
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("the platform's NATS server did not start:\n" + platform.logs())


@pytest.fixture(scope="session")
async def distributed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    home = tmp_path_factory.mktemp("e2e")
    token = "mlf_e2e_admin_" + uuid.uuid4().hex
    platform = Platform(url="", token=token, home=home)
    try:
        nats_url, nats_passwords = await _own_nats(platform)
        base = dict(os.environ, MLIFE_ENVIRONMENT="test", MLIFE_IDENTITY_SECRET="e2e-secret-" + uuid.uuid4().hex,
                    MLIFE_NATS_URL=nats_url, MLIFE_LOG_LEVEL="WARNING", MLFLOW_DISABLE_TELEMETRY="true",
                    ORT_DISABLE_TELEMETRY="1", **s3_env())
        urls = {}
        for service in SERVICES:
            db = await _database(f"{service}.migrations", platform)
            port = free_port()
            (home / service).mkdir()
            env = dict(base, MLIFE_HOME=str(home / service), **{f"MLIFE_{service.upper()}_DATABASE_URL": db,
                                                                 f"MLIFE_{service.upper()}_NATS_PASSWORD":
                                                                 nats_passwords[service]})
            if service == "mtt":
                _start(platform, "mtt-api", ["-m", "mtt", "api", "--port", str(port)], env)
                _start(platform, "mtt-worker", ["-m", "mtt", "worker"], env)
                # Runner processes log in as `mtt-runner`: the run queue and nothing else of the bus.
                runner_env = dict(env, MLIFE_MTT_NATS_USER="mtt-runner",
                                  MLIFE_MTT_NATS_PASSWORD=nats_passwords["mtt-runner"])
                for n in (1, 2):  # two runners share the work queue, as two replicas would
                    _start(platform, f"mtt-runner-{n}", ["-m", "mtt", "runner", "--id", f"e2e-runner-{n}"],
                           runner_env)
                platform.procs["mtt"] = platform.procs["mtt-api"]
            else:
                _start(platform, service, ["-m", service, "all", "--port", str(port)], env)
            urls[service] = f"http://127.0.0.1:{port}"
        for service, url in urls.items():
            await _ready(platform, service, url)
        gw_port = free_port()
        env = dict(base, MLIFE_HOME=str(home / "gateway"), MLIFE_GATEWAY_DATABASE_URL=await _database(
                   "gateway.migrations", platform), MLIFE_GATEWAY_ADMIN_TOKEN=token,
                   MLIFE_GATEWAY_NATS_PASSWORD=nats_passwords["gateway"],
                   MLIFE_GATEWAY_ALLOWED_HOSTS=json.dumps(["127.0.0.1", "localhost"]),
                   **{f"MLIFE_GATEWAY_{s.upper()}_URL": u for s, u in urls.items()})
        (home / "gateway").mkdir()
        _start(platform, "gateway", ["-m", "gateway", "api", "--migrate", "--port", str(gw_port)], env)
        platform.url = f"http://127.0.0.1:{gw_port}"
        await _ready(platform, "gateway", platform.url)
        yield platform
        # Every process ran under its own NATS user: none did anything its permissions refuse.
        logs = {n: home / f"{n}.log" for n in platform.procs}
        refused = [n for n, log in logs.items()
                   if log.exists() and "nats_permissions_violation" in log.read_text(errors="replace")]
        assert not refused, f"NATS permissions violations in {refused}:\n{platform.logs()}"
    finally:
        procs = [p for n, p in platform.procs.items() if n != "mtt"]
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
        try:
            for name in platform.databases:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
