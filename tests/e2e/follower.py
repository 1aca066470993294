"""An outside subscriber as a process of its own, for the e2e event-API check: it knows only a subscriber's NATS
login (made through the gateway) and the docs, follows every public event with `mlife.events.subscribe` on the
durables the gateway provisioned, and appends each event it receives as a JSON line (id, type, stream,
sequence) before acknowledging it. SIGTERM stops it cleanly.

    python -m tests.e2e.follower --nats URL --user U --password P --durable D --out FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from contextlib import aclosing
from pathlib import Path

from mlife.events import subscribe


async def follow(args: argparse.Namespace) -> None:
    out = Path(args.out)
    # aclosing, as docs/subscribing.md says: a stop closes the subscription at once, which gives back what it
    # fetched and did not hand out, so the next start gets it first and in order
    async with aclosing(subscribe(">", durable=args.durable, url=args.nats, user=args.user, password=args.password,
                                  bind=True, wait=1.0)) as events:
        async for event in events:
            with out.open("a") as f:
                f.write(json.dumps({"id": event.id, "type": event.type, "stream": event.stream,
                                    "sequence": event.sequence}) + "\n")
            await event.ack()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    for name in ("--nats", "--user", "--password", "--durable", "--out"):
        p.add_argument(name, required=True)
    args = p.parse_args()
    task = asyncio.ensure_future(follow(args))
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass


if __name__ == "__main__":
    asyncio.run(main())
