"""The backbone's test service, the pinger (tests/backbone/pinger.py): its settings and app, a producer and a
consumer database pair with their relay and consumer runner."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
from nats.js.errors import NotFoundError
from pydantic import SecretStr

from mlife_shared.app import create_app
from mlife_shared.auth import IDENTITY_HEADER, Identity, sign_identity
from mlife_shared.db import Database
from mlife_shared.events import stream_for_subject
from mlife_shared.messaging.bus import provision_streams
from mlife_shared.messaging.consumer import ConsumerRunner, Subscription
from mlife_shared.messaging.relay import Relay
from tests.backbone.pinger import PINGER, PingerSettings, record_effect
from tests.support.auth import SECRET

TESTER = Identity(user_id=uuid.uuid4(), username="tess", role="tester")


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


def env_for_subprocess() -> dict[str, str]:
    """This environment, with the checkout on the path (for `python -m tests.…`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    return env
