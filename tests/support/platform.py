"""A platform of processes: its databases, its own NATS server, its service processes with their logs,
readiness, and teardown. `tests.support.stack` (the gateway, UI, CLI and security suites) and
`tests.support.distributed` (the end-to-end loop) build theirs on it."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import processes
from tests.support.nats import NatsServer, start_nats
from tests.support.postgres import create_database, drop_databases, pg_url


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
