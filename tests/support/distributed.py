"""The platform for the end-to-end loop, as a distributed install runs it: every service on its own fresh
PostgreSQL database, the S3 server from `scripts/testenv.py`, the gateway in front, and NATS as compose runs
it (the committed deploy/nats/nats.conf, a user and password per service). MTT runs split (api, worker and two
separate runner processes logged in as `mtt-runner`); the others run `all`."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.support.objects import s3_env
from tests.support.platform import SERVICES, Processes
from tests.support.processes import READY_TIMEOUT, free_port
from tests.support.smtp import Mailbox


@dataclass
class Platform(Processes):
    url: str = ""
    token: str = ""


async def _ready(platform: Platform, name: str, url: str, timeout: float = READY_TIMEOUT) -> None:
    why = await platform.ready(name, url, timeout)
    assert why is None, f"{name} was not ready ({why.split(':')[0]}):\n{platform.logs()}"


def _start_mtt(platform: Platform, port: int, env: dict[str, str], passwords: dict[str, str]) -> None:
    platform.start("mtt-api", ["-m", "mtt", "api", "--port", str(port)], env)
    platform.start("mtt-worker", ["-m", "mtt", "worker"], env)
    # Runner processes log in as `mtt-runner`: the run queue and nothing else of the bus.
    runner_env = dict(env, MLIFE_MTT_NATS_USER="mtt-runner", MLIFE_MTT_NATS_PASSWORD=passwords["mtt-runner"])
    for n in (1, 2):  # two runners share the work queue, as two replicas would
        platform.start(f"mtt-runner-{n}", ["-m", "mtt", "runner", "--id", f"e2e-runner-{n}"], runner_env)


async def start_distributed(home: Path, mailbox: Mailbox | None = None) -> Platform:
    """Started and ready; on failure everything started is stopped again. `mailbox`: the SMTP server the
    gateway sends alert e-mails through."""
    platform = Platform(home=home, token="mlf_e2e_admin_" + uuid.uuid4().hex)
    try:
        await _start(platform, mailbox)
    except BaseException:
        await platform.stop()
        raise
    return platform


async def _start(platform: Platform, mailbox: Mailbox | None) -> None:
    home = platform.home
    nats = await platform.start_nats(authenticated=True)
    base = dict(os.environ, MLIFE_ENVIRONMENT="test", MLIFE_IDENTITY_SECRET="e2e-secret-" + uuid.uuid4().hex,
                MLIFE_NATS_URL=nats.url, MLFLOW_DISABLE_TELEMETRY="true",
                MLIFE_LOG_LEVEL=os.environ.get("MLIFE_E2E_LOG_LEVEL", "WARNING"),
                ORT_DISABLE_TELEMETRY="1", **s3_env())
    urls = {}
    for service in SERVICES:
        db = await platform.database(f"{service}.migrations", "mlife_e2e")
        port = free_port()
        (home / service).mkdir()
        env = dict(base, MLIFE_HOME=str(home / service), **{f"MLIFE_{service.upper()}_DATABASE_URL": db,
                                                             f"MLIFE_{service.upper()}_NATS_PASSWORD":
                                                             nats.passwords[service]})
        if service == "mtt":
            _start_mtt(platform, port, env, nats.passwords)
        else:
            platform.start(service, ["-m", service, "all", "--port", str(port)], env)
        urls[service] = f"http://127.0.0.1:{port}"
    for service, url in urls.items():
        await _ready(platform, "mtt-api" if service == "mtt" else service, url)
    gw_port = free_port()
    env = dict(base, MLIFE_HOME=str(home / "gateway"),
               MLIFE_GATEWAY_DATABASE_URL=await platform.database("gateway.migrations", "mlife_e2e"),
               MLIFE_GATEWAY_ADMIN_TOKEN=platform.token, MLIFE_GATEWAY_NATS_PASSWORD=nats.passwords["gateway"],
               MLIFE_GATEWAY_ALLOWED_HOSTS=json.dumps(["127.0.0.1", "localhost"]),
               # webhooks to the tests' receivers on loopback; subscribers' logins through the auth callout
               MLIFE_GATEWAY_WEBHOOK_ALLOW_HOSTS=json.dumps(["127.0.0.1"]),
               MLIFE_GATEWAY_AUTH_CALLOUT_SEED=nats.callout_seed or "",
               **({"MLIFE_GATEWAY_SMTP_HOST": mailbox.host, "MLIFE_GATEWAY_SMTP_PORT": str(mailbox.port)}
                  if mailbox else {}),
               **{f"MLIFE_GATEWAY_{s.upper()}_URL": u for s, u in urls.items()})
    (home / "gateway").mkdir()
    platform.start("gateway", ["-m", "gateway", "all", "--migrate", "--port", str(gw_port)], env)
    platform.url = f"http://127.0.0.1:{gw_port}"
    await _ready(platform, "gateway", platform.url)


def permission_violations(platform: Platform) -> list[str]:
    """The processes whose log shows something their NATS permissions refused."""
    logs = {n: platform.home / f"{n}.log" for n in platform.procs}
    return [n for n, log in logs.items()
            if log.exists() and "nats_permissions_violation" in log.read_text(errors="replace")]
