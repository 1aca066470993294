"""Event backbone benchmark: the MLife outbox pipeline against raw JetStream, in one run, on one server.

MLife pipeline: producer transactions (one row + `outbox.add()`, committed through `Database.transaction()`),
a `Relay` (poll 0.05 s, woken by LISTEN/NOTIFY) and a `ConsumerRunner` whose handler inserts an effect row
(idempotent via the inbox). Latency = time the handler ran - time the producing commit returned (both
`time.perf_counter()` in this process; commit times are kept in a dict keyed by event id).
  steady:   `--rate` events/s for `--seconds`, open loop (sent on a fixed schedule, never waiting)
  flat out: `--events` events from `--producers` concurrent producers; throughput = first commit -> last effect
Raw peer: nats-py `publish_async` of payloads of the envelope's size to a separate stream, and a pull consumer
fetching batches of 32 (timeout 1 s, like `ConsumerRunner`) and acking; same two modes.

All in this one process and event loop, on a fresh nats-server from the wheel (JetStream in a temp dir) and
fresh PostgreSQL databases (MLIFE_TEST_PG_HOST/PORT/USER), all removed at the end. Run (or `make bench`):
  .venv/bin/python -m bench.events [--seconds 10] [--rate 300] [--events 5000] [--producers 8] [--json]
It prints the ratios and whether the goals are met; it never exits non-zero on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import nats
import sqlalchemy as sa
import structlog
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import FetchTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import Database
from mlife_shared.events import Envelope, EventData, new_envelope, register
from mlife_shared.messaging import outbox
from mlife_shared.messaging.bus import provision_streams
from mlife_shared.messaging.consumer import ConsumerRunner, Subscription
from mlife_shared.messaging.relay import Relay
from mlife_shared.migrations import upgrade

GOAL_RATIO, GOAL_P99_MS = 0.25, 50.0
RAW_STREAM, RAW_BATCH = "BENCH_RAW", 32


@register
class BenchPinged(EventData):
    """Sent when the benchmark producer committed one bench row (bench/events.py only)."""

    subject = "bench.pinged"
    producer = "bench"
    row_id: uuid.UUID
    n: int
    run: str


bench_metadata = sa.MetaData()
bench_rows = sa.Table("bench_row", bench_metadata, sa.Column("id", sa.Uuid, primary_key=True),
                      sa.Column("n", sa.Integer))
bench_effects = sa.Table("bench_effect", bench_metadata, sa.Column("event_id", sa.Uuid, primary_key=True),
                         sa.Column("row_id", sa.Uuid), sa.Column("n", sa.Integer))


class Tracker:
    """Send and arrival times (perf_counter) keyed by message id; `done` once `expected` have arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.sent: dict[Any, float] = {}
        self.seen: dict[Any, float] = {}
        self.done = asyncio.Event()

    def arrived(self, key: Any) -> None:
        self.seen[key] = time.perf_counter()
        if len(self.seen) >= self.expected:
            self.done.set()

    async def wait(self, timeout: float) -> None:
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.done.wait(), timeout)

    def result(self, mode: str) -> dict[str, Any]:
        lat = sorted((self.seen[k] - t) * 1000 for k, t in self.sent.items() if k in self.seen)
        first, last = min(self.sent.values(), default=0.0), max(self.seen.values(), default=0.0)
        span = max(self.sent.values(), default=0.0) - first
        out: dict[str, Any] = {"mode": mode, "sent": len(self.sent), "received": len(lat),
                               "sent_rate": len(self.sent) / span if span > 0 else 0.0,
                               "throughput": len(lat) / (last - first) if lat and last > first else 0.0}
        for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
            out[name] = lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
        return out


async def _quiet(_: Exception) -> None:
    pass


@asynccontextmanager
async def own_nats() -> AsyncIterator[str]:
    """A nats-server 2.x from the wheel with JetStream in a temp dir; stopped and removed afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = Path(tempfile.mkdtemp(prefix="mlife-bench-nats-"))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "nats-server"), "-a", "127.0.0.1", "-p", str(port),
                             "-js", "-sd", str(store)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with suppress(Exception):
                nc = await nats.connect(url, connect_timeout=0.5, max_reconnect_attempts=0, error_cb=_quiet)
                await nc.jetstream().account_info()
                await nc.close()
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("nats-server did not start")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        proc.kill()  # no-op once it has exited
        shutil.rmtree(store, ignore_errors=True)


@asynccontextmanager
async def databases(*migrations: str) -> AsyncIterator[list[str]]:
    """Fresh PostgreSQL databases migrated with each package, plus the bench tables; dropped afterwards."""
    host, port = os.environ.get("MLIFE_TEST_PG_HOST", "127.0.0.1"), int(os.environ.get("MLIFE_TEST_PG_PORT", "5432"))
    user = os.environ.get("MLIFE_TEST_PG_USER", "postgres")
    names = [f"mlife_bench_{uuid.uuid4().hex[:12]}" for _ in migrations]
    admin = await asyncpg.connect(host=host, port=port, user=user, database="postgres")
    try:
        urls = []
        for name, package in zip(names, migrations, strict=True):
            await admin.execute(f'CREATE DATABASE "{name}"')
            urls.append(f"postgresql+asyncpg://{user}@{host}:{port}/{name}")
            await asyncio.to_thread(upgrade, package, urls[-1])
            db = Database(urls[-1])
            async with db.engine.begin() as conn:
                await conn.run_sync(bench_metadata.create_all)
            await db.dispose()
        yield urls
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def open_loop(rate: float, seconds: float, send: Callable[[int], Awaitable[None]]) -> None:
    """Start `send(i)` every 1/rate s without waiting for the previous ones; then wait for all (bounded)."""
    loop, tasks = asyncio.get_running_loop(), set()
    start = loop.time()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        tasks.add(asyncio.create_task(send(i)))
    if tasks:
        await asyncio.wait(tasks, timeout=60)


async def flat_out(total: int, workers: int, send: Callable[[int], Awaitable[None]]) -> None:
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await send(i)

    with suppress(asyncio.TimeoutError):  # report what got through rather than fail
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(workers))), timeout=max(120, total / 20))


async def bench_pipeline(nats_url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    async with databases("bam.migrations", "dam.migrations") as (producer_url, consumer_url):
        producer = Database(producer_url)
        trackers = {"steady": Tracker(int(args.rate * args.seconds)), "flat": Tracker(args.events)}

        async def handler(event: Envelope[BenchPinged], session: AsyncSession) -> None:
            await session.execute(sa.insert(bench_effects).values(event_id=event.id, row_id=event.data.row_id,
                                                                   n=event.data.n))
            trackers[event.data.run].arrived(event.id)

        async def send(i: int, run: str) -> None:
            async with producer.transaction() as session:
                row_id = uuid.uuid4()
                await session.execute(sa.insert(bench_rows).values(id=row_id, n=i))
                envelope = await outbox.add(session, BenchPinged(row_id=row_id, n=i, run=run))
            trackers[run].sent[envelope.id] = time.perf_counter()  # the commit has returned

        conns = [await nats.connect(nats_url) for _ in range(2)]
        await provision_streams(conns[0].jetstream())
        relay = Relay(Database(producer_url), conns[0].jetstream(), poll_seconds=0.05)
        runner = ConsumerRunner("benchsink", Database(consumer_url), conns[1].jetstream(),
                                [Subscription(name="pings", subject=BenchPinged.subject, handler=handler)])
        stop = asyncio.Event()
        loops = [asyncio.create_task(relay.run(stop)), asyncio.create_task(runner.run(stop))]
        try:
            await open_loop(args.rate, args.seconds, lambda i: send(i, "steady"))
            await trackers["steady"].wait(120)
            results.append(trackers["steady"].result(f"mlife steady {args.rate:g}/s"))
            await flat_out(args.events, args.producers, lambda i: send(i, "flat"))
            await trackers["flat"].wait(max(60, args.events / 10))
            results.append(trackers["flat"].result(f"mlife flat x{args.producers}"))
        finally:
            stop.set()
            await asyncio.wait(loops, timeout=15)
            for db in (producer, relay.db, runner.db):
                await db.dispose()
            for nc in conns:
                await nc.close()
    return results


async def bench_raw(nats_url: str, args: argparse.Namespace, size: int) -> list[dict[str, Any]]:
    pub, sub = await nats.connect(nats_url), await nats.connect(nats_url)  # like the relay's and the runner's
    js, jsub = pub.jetstream(), sub.jetstream()
    await js.add_stream(StreamConfig(name=RAW_STREAM, subjects=["bench.raw.>"]))
    pad = "x" * max(0, size - len(json.dumps({"i": 0, "pad": ""})))
    results = []
    try:
        for mode, subject in ((f"raw steady {args.rate:g}/s", "bench.raw.steady"), ("raw flat", "bench.raw.flat")):
            steady = subject.endswith("steady")
            tracker = Tracker(int(args.rate * args.seconds) if steady else args.events)
            durable = subject.replace(".", "_")
            await jsub.add_consumer(RAW_STREAM, ConsumerConfig(durable_name=durable, filter_subject=subject,
                                                               ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1000))
            psub = await jsub.pull_subscribe_bind(durable, stream=RAW_STREAM)
            consume = asyncio.create_task(raw_consume(psub, tracker))
            acks: list[asyncio.Future[Any]] = []

            async def send(i: int, subject: str = subject) -> None:
                tracker.sent[i] = time.perf_counter()
                acks.append(await js.publish_async(subject, json.dumps({"i": i, "pad": pad}).encode()))

            await (open_loop(args.rate, args.seconds, send) if steady else flat_out(args.events, 1, send))
            await asyncio.wait_for(asyncio.gather(*acks, return_exceptions=True), 60)
            await tracker.wait(60)
            consume.cancel()
            await asyncio.wait([consume], timeout=5)
            results.append(tracker.result(mode))
    finally:
        await pub.close()
        await sub.close()
    return results


async def raw_consume(psub: JetStreamContext.PullSubscription, tracker: Tracker) -> None:
    while not tracker.done.is_set():
        try:
            msgs = await psub.fetch(RAW_BATCH, timeout=1.0)
        except (FetchTimeoutError, asyncio.TimeoutError):
            continue
        for msg in msgs:
            tracker.arrived(json.loads(msg.data)["i"])
            await msg.ack()


def envelope_size() -> int:
    sample = new_envelope(BenchPinged(row_id=uuid.uuid4(), n=123456, run="steady"))
    return len(json.dumps(sample.model_dump(mode="json"), separators=(",", ":")))


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    by = {r["mode"].split()[0] + " " + r["mode"].split()[1]: r for r in results}
    ratio = by["mlife flat"]["throughput"] / by["raw flat"]["throughput"] if by["raw flat"]["throughput"] else 0.0
    p99 = by["mlife steady"]["p99"]
    summary = {"results": results, "throughput_ratio": ratio, "mlife_steady_p99_ms": p99,
               "raw_steady_p99_ms": by["raw steady"]["p99"], "goal_ratio_met": ratio >= GOAL_RATIO,
               "goal_p99_met": p99 <= GOAL_P99_MS and by["mlife steady"]["received"] == by["mlife steady"]["sent"],
               "args": vars(args), "payload_bytes": envelope_size()}
    if args.json:
        print(json.dumps(summary, indent=2))
        return summary
    print(f"payload {summary['payload_bytes']} B; one process, nats-server from the wheel, fresh PostgreSQL DBs")
    print("sent/s: commits (mlife) or publishes (raw) per second; recv/s: first send -> last arrival")
    print(f"{'mode':<20}{'sent':>6}{'recv':>6}{'sent/s':>8}{'recv/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}")
    for r in results:
        print(f"{r['mode']:<20}{r['sent']:>6}{r['received']:>6}{r['sent_rate']:>8.0f}{r['throughput']:>8.0f}"
              f"{r['p50']:>9.1f}{r['p95']:>9.1f}{r['p99']:>9.1f}{r['max']:>9.1f}")
    print(f"throughput ratio mlife/raw = {ratio:.3f}  (goal >= {GOAL_RATIO}: "
          f"{'met' if summary['goal_ratio_met'] else 'MISSED'})")
    print(f"steady p99: mlife {p99:.1f} ms, raw {by['raw steady']['p99']:.1f} ms  "
          f"(goal <= {GOAL_P99_MS:g} ms: {'met' if summary['goal_p99_met'] else 'MISSED'})")
    return summary


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with own_nats() as url:
        pipeline = await bench_pipeline(url, args)
        raw = await bench_raw(url, args, envelope_size())
    return report(pipeline + raw, args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each steady run")
    p.add_argument("--rate", type=float, default=300.0, help="events/s of the steady runs")
    p.add_argument("--events", type=int, default=5000, help="events of each flat-out run")
    p.add_argument("--producers", type=int, default=8, help="concurrent producers of the flat-out pipeline run")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    return p.parse_args(argv)


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(main(parse_args()))
