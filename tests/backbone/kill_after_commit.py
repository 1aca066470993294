"""A consumer process that dies (os._exit) right after its handler's transaction committed and before
it acknowledged the message: what a crash or a SIGKILL at the worst moment looks like."""

from __future__ import annotations

import asyncio
import os
import sys

import nats
from nats.aio.msg import Msg

from mlife_shared.db import Database
from mlife_shared.messaging.consumer import ConsumerRunner, Subscription
from tests.backbone.pinger import record_effect

ACK_WAIT = 2.0


async def _die(self: Msg) -> None:  # noqa: ARG001
    os._exit(9)


async def main(consumer_url: str, nats_url: str) -> None:
    Msg.ack = _die  # type: ignore[method-assign]
    nc = await nats.connect(nats_url)
    sub = Subscription(name="pings", subject="ping.recorded", handler=record_effect, ack_wait_seconds=ACK_WAIT)
    runner = ConsumerRunner("ponger", Database(consumer_url), nc.jetstream(), [sub], max_deliver=5, backoff=[0.05])
    await runner.run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
