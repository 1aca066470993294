from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest
from nats.js.errors import NotFoundError
from pydantic import SecretStr

from mlife_shared.app import create_app
from mlife_shared.auth import Identity, IDENTITY_HEADER, sign_identity
from mlife_shared.db import Database
from mlife_shared.events import stream_for_subject
from mlife_shared.messaging.bus import provision_streams
from mlife_shared.messaging.consumer import ConsumerRunner, Subscription
from mlife_shared.messaging.relay import Relay
from tests.backbone.pinger import PINGER, PingerSettings, create_test_tables, record_effect
from tests.conftest import free_port

SECRET = "test-identity-secret-" + uuid.uuid4().hex
TESTER = Identity(user_id=uuid.uuid4(), username="tess", role="tester")


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pinger_settings(db_url: str, nats_url: str, tmp: Path) -> PingerSettings:
    return PingerSettings(environment="test", database_url=db_url, nats_url=nats_url,
                          identity_secret=SecretStr(SECRET), object_store_path=tmp / "objects", home=tmp)


@asynccontextmanager
async def pinger_client(db_url: str, nats_url: str, tmp: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(PINGER, pinger_settings(db_url, nats_url, tmp))
    async with app.router.lifespan_context(app):
        headers = {IDENTITY_HEADER: sign_identity(TESTER, SECRET)}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                     base_url="http://pinger", headers=headers) as client:
            yield client


@dataclass
class Pair:
    """The producer's and the consumer's databases, and a JetStream context."""

    producer_url: str
    consumer_url: str
    nats_url: str
    js: object
    nc: object

    def relay(self, **kw: object) -> Relay:
        return Relay(Database(self.producer_url), self.js, poll_seconds=0.05, **kw)  # type: ignore[arg-type]

    def runner(self, *, max_deliver: int = 5, backoff: list[float] | None = None,
               ack_wait: float = 30.0) -> ConsumerRunner:
        sub = Subscription(name="pings", subject="ping.recorded", handler=record_effect, ack_wait_seconds=ack_wait)
        return ConsumerRunner("ponger", Database(self.consumer_url), self.js, [sub],  # type: ignore[arg-type]
                              max_deliver=max_deliver, backoff=backoff or [0.05])


async def reset_streams(js: object) -> None:
    await provision_streams(js)  # type: ignore[arg-type]
    stream = stream_for_subject("ping.recorded")
    await js.purge_stream(stream)  # type: ignore[attr-defined]
    with suppress(NotFoundError):
        await js.delete_consumer(stream, "ponger-pings")  # type: ignore[attr-defined]


@pytest.fixture
async def pair(make_database: Callable[[str], Awaitable[str]], nats_url: str) -> AsyncIterator[Pair]:
    producer = await make_database("bam.migrations")
    consumer = await make_database("dam.migrations")
    await create_test_tables(producer)
    await create_test_tables(consumer)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await reset_streams(js)
    yield Pair(producer, consumer, nats_url, js, nc)
    await nc.close()


class OwnNats:
    """A nats-server of the test's own (from the wheel), to stop and restart at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mlife-nats-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = Path(sys.executable).parent / "nats-server"
        self.proc = subprocess.Popen([str(binary), "-a", "127.0.0.1", "-p", str(self.port), "-js",
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


@pytest.fixture
async def own_nats() -> AsyncIterator[OwnNats]:
    server = OwnNats()
    server.start()
    await server.wait_ready()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


def env_for_subprocess() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    return env
