"""A platform of processes: its databases, its own NATS server, its service processes with their logs,
readiness, and teardown. `tests.support.stack` (the gateway, UI, CLI and security suites) and
`tests.support.distributed` (the end-to-end loop) build theirs on it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import processes
from tests.support.nats import NatsServer, start_nats
from tests.support.postgres import create_database, drop_databases, pg_url

SERVICES = ("bam", "dam", "mtt", "msm")


class Service:
    """A service process of a test's own, on 127.0.0.1:<port>."""

    def __init__(self, name: str, port: int, proc: subprocess.Popen[bytes], log: Path | None = None) -> None:
        self.name, self.port, self.proc, self.log = name, port, proc, log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Processes:
    home: Path = Path(".")
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)  # name -> process, in start order
    databases: list[str] = field(default_factory=list)
    nats: NatsServer | None = None

    async def database(self, migrations: str, prefix: str) -> str:
        """A fresh database migrated with `migrations` (a clone of the session's template); dropped at stop()."""
        name = await create_database(migrations, prefix)
        self.databases.append(name)
        return pg_url(name)

    async def start_nats(self, *, authenticated: bool = False) -> NatsServer:
        self.nats = await start_nats(self.home, authenticated=authenticated)
        self.procs["nats"] = self.nats.proc
        return self.nats

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """`argv` starting with "-m" runs this Python; stderr goes to <home>/<name>.log."""
        self.procs[name] = processes.start(self.home, name, argv, env)
        return self.procs[name]

    async def ready(self, name: str, url: str, timeout: float, path: str = "/healthz") -> str | None:
        """None once the process `name` answers 200 on `url + path`, otherwise why not."""
        return await processes.wait_ready(url, self.procs[name], self.home / f"{name}.log", timeout, path)

    def log(self, name: str, chars: int = 1500) -> str:
        return processes.tail(self.home / f"{name}.log", chars)

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n" + self.log(name, 2000) for name in self.procs
                         if (self.home / f"{name}.log").exists())

    async def stop(self) -> None:
        """The services first, NATS last (they flush to it while stopping); then the databases go."""
        nats = [p for n, p in self.procs.items() if n == "nats"]
        processes.stop([p for n, p in self.procs.items() if n != "nats"], timeout=30)
        processes.stop(nats, timeout=15)
        await drop_databases(self.databases)
        self.databases.clear()


@asynccontextmanager
async def service_process(home: Path, service: str, *, nats_url: str, secret: str, argv: tuple[str, ...] = (),
                          ready_path: str = "/healthz", **env: str) -> AsyncIterator[Service]:
    """`python -m <service> api <argv>` (the entry point `mlife up` runs, so its uvicorn configuration) on a fresh
    database of its own; a gateway's upstream services are a closed port. `env` adds or overrides variables
    (MLIFE_…); the process, its database and its log under `home` go when the block ends."""
    platform = Processes(home=home)
    try:
        db = await platform.database(f"{service}.migrations", "mlife_test")
        port = processes.free_port()
        closed = f"http://127.0.0.1:{processes.free_port()}"
        upstreams = {f"MLIFE_GATEWAY_{s.upper()}_URL": closed for s in SERVICES} if service == "gateway" else {}
        full_env = dict(os.environ, MLIFE_ENVIRONMENT="test", MLIFE_IDENTITY_SECRET=secret, MLIFE_NATS_URL=nats_url,
                        MLIFE_HOME=str(home), MLIFE_OBJECT_STORE="local", MLIFE_LOG_LEVEL="WARNING",
                        **{f"MLIFE_{service.upper()}_DATABASE_URL": db}, **upstreams)
        full_env.update(env)
        argv = ("-m", service, "api", *argv, "--host", "127.0.0.1", "--port", str(port))
        proc = platform.start(service, list(argv), full_env)
        why = await platform.ready(service, f"http://127.0.0.1:{port}", processes.READY_TIMEOUT, path=ready_path)
        assert why is None, f"{service} did not start: {why}"
        yield Service(service, port, proc, home / f"{service}.log")
    finally:
        await platform.stop()
