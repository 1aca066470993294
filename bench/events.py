"""Event backbone benchmark: the MLife outbox pipeline against raw JetStream, in one run, on one server.

Every stage runs in its own OS process, as deployed (the producer is an API process, the relay runs in
the producing service's worker, the consumer in the consuming service's worker); each child is
`python -m bench.events --role ...` started by this process, which only orchestrates and computes.
MLife pipeline: `--producers` producer processes commit one row + `outbox.add()` per transaction through
`Database.transaction()`; one `Relay` process (library defaults: batch 256, poll 0.5 s, LISTEN/NOTIFY) on
the producer's database; one `ConsumerRunner` process (dam database) whose handler inserts an effect row.
Raw peer, same split: `--producers` publisher processes (nats-py `publish_async`, payloads of the
envelope's size, separate stream) and one consumer process (pull, batches of 32, timeout 1 s, ack each).
Latency = handler ran (raw: message arrived) - producing commit returned (raw: publish called), both
`time.time()` on this one machine, written by the children to JSON files keyed by event id.
  steady:   `--rate` events/s for `--seconds`, open loop: event i is sent at t0 + i/rate, never waiting
            (the producers take every `--producers`-th slot); the achieved send rate is reported
  flat out: `--events` events, `--tasks` concurrent transactions in each producer process;
            throughput = first commit -> last effect. Stage rates (commit, publish, handle) are printed too.
Fresh nats-server from the wheel (JetStream in a temp dir), fresh PostgreSQL databases
(MLIFE_TEST_PG_HOST/PORT/USER); all removed and every child killed at the end, also on error or Ctrl-C.
Run (or `make bench`):
  .venv/bin/python -m bench.events [--seconds 10] [--rate 300] [--events 5000] [--producers 2] [--tasks 4]
It prints the ratios and whether the goals are met; it never exits non-zero on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
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
from nats.aio.msg import Msg
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
ROOT = Path(__file__).resolve().parents[1]
Proc = asyncio.subprocess.Process


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


# ---------------------------------------------------------------- children (one role per process)

class Control:
    """A child's lifeline: stdin `go <t0>` starts producers at wall time t0; stdin EOF (parent gone or done),
    SIGTERM/SIGINT or `--deadline` seconds set `stop`."""

    def __init__(self) -> None:
        self.go, self.stop, self.t0 = asyncio.Event(), asyncio.Event(), 0.0

    async def start(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        loop.call_later(deadline, self.stop.set)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self._watch = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            if line.startswith(b"go "):
                self.t0 = float(line.split()[1])
                self.go.set()
        self.stop.set()

    async def until(self, event: asyncio.Event) -> bool:
        waits = [asyncio.create_task(event.wait()), asyncio.create_task(self.stop.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for t in waits:
            t.cancel()
        return event.is_set() and not self.stop.is_set()


CPU0 = [0.0]  # this child's CPU time when it became ready


def ready() -> None:
    CPU0[0] = time.process_time()
    print("ready", flush=True)


async def drive(a: argparse.Namespace, ctl: Control, send: Callable[[int], Awaitable[None]]) -> None:
    """This producer's share (indices index, index+P, ...), from wall time t0: steady on the fixed schedule
    t0 + i/rate without waiting for earlier sends; flat out from `tasks` workers back to back. Bounded."""
    total = int(a.rate * a.seconds) if a.run == "steady" else a.events
    mine, loop = range(a.index, total, a.producers), asyncio.get_running_loop()
    start = loop.time() + (ctl.t0 - time.time())
    await asyncio.sleep(max(0.0, start - loop.time()))
    tasks: set[asyncio.Task[None]] = set()
    if a.run == "steady":
        for i in mine:
            await asyncio.sleep(max(0.0, start + i / a.rate - loop.time()))
            if ctl.stop.is_set():
                break
            tasks.add(asyncio.create_task(send(i)))
    else:
        todo = iter(mine)

        async def worker() -> None:
            for i in todo:
                if ctl.stop.is_set():
                    return
                await send(i)

        tasks = {asyncio.create_task(worker()) for _ in range(a.tasks)}
    if tasks:
        await asyncio.wait(tasks, timeout=a.deadline)


class _Rollback(Exception):
    pass


async def role_producer(a: argparse.Namespace, ctl: Control) -> dict[str, Any]:
    db, sent, errors = Database(a.db), {}, [0]

    async def commit(i: int) -> uuid.UUID:
        async with db.transaction() as session:
            row_id = uuid.uuid4()
            await session.execute(sa.insert(bench_rows).values(id=row_id, n=i))
            return (await outbox.add(session, BenchPinged(row_id=row_id, n=i, run=a.run))).id

    async def send(i: int) -> None:
        try:
            event_id = await commit(i)
        except Exception:  # noqa: BLE001 - counted, reported
            errors[0] += 1
        else:
            sent[str(event_id)] = time.time()  # the commit has returned

    async def warm() -> None:  # opens the pool's connections and compiles the statements; nothing commits
        with suppress(_Rollback):
            async with db.transaction() as session:
                await session.execute(sa.insert(bench_rows).values(id=uuid.uuid4(), n=-1))
                raise _Rollback

    try:
        await asyncio.gather(*(warm() for _ in range(a.tasks)))
        ready()
        if await ctl.until(ctl.go):
            await drive(a, ctl, send)
        return {"sent": sent, "errors": errors[0]}
    finally:
        await db.dispose()


class StampedRelay(Relay):
    """The library relay, noting (time, rows) of each published batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[tuple[float, int]] = []
        self.started = asyncio.Event()  # set at the first batch, i.e. after LISTEN

    async def publish_batch(self) -> int:
        self.started.set()
        n = await super().publish_batch()
        if n:
            self.batches.append((time.time(), n))
        return n


async def role_relay(a: argparse.Namespace, ctl: Control) -> dict[str, Any]:
    nc = await nats.connect(a.nats)
    relay = StampedRelay(Database(a.db), nc.jetstream())
    try:
        task = asyncio.create_task(relay.run(ctl.stop))
        await asyncio.wait_for(relay.started.wait(), 30)
        ready()
        await task
        return {"batches": relay.batches}
    finally:
        await relay.db.dispose()
        await nc.close()


class StampedRunner(ConsumerRunner):
    """The library consumer runner, noting when each batch of this run committed and acked; stops at `expect`."""

    def __init__(self, *args: Any, expect: int, ctl: Control, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expect, self.ctl = expect, ctl
        self.seen: dict[str, float] = {}
        self.committed: dict[str, float] = {}
        self.pending: list[str] = []
        self.sizes: list[int] = []

    async def handle_batch(self, sub: Subscription, msgs: list[Msg]) -> None:
        self.sizes.append(len(msgs))
        await super().handle_batch(sub, msgs)
        now = time.time()
        self.committed.update((k, now) for k in self.pending)
        self.pending.clear()
        if len(self.committed) >= self.expect:
            self.ctl.stop.set()


async def role_consumer(a: argparse.Namespace, ctl: Control) -> dict[str, Any]:
    runner: StampedRunner

    async def handler(event: Envelope[BenchPinged], session: AsyncSession) -> None:
        await session.execute(sa.insert(bench_effects).values(event_id=event.id, row_id=event.data.row_id,
                                                               n=event.data.n))
        if event.data.run == a.run:
            runner.seen[str(event.id)] = time.time()
            runner.pending.append(str(event.id))

    nc = await nats.connect(a.nats)
    sub = Subscription(name="pings", subject=BenchPinged.subject, handler=handler)
    runner = StampedRunner("benchsink", Database(a.db), nc.jetstream(), [sub], expect=a.expect, ctl=ctl)
    try:
        await runner.ensure_consumer(sub)
        await runner.db.ping()
        ready()
        await runner.run(ctl.stop)
        return {"seen": runner.seen, "committed": runner.committed, "sizes": runner.sizes}
    finally:
        await runner.db.dispose()
        await nc.close()


async def role_raw_publisher(a: argparse.Namespace, ctl: Control) -> dict[str, Any]:
    nc = await nats.connect(a.nats)
    js, sent, acks = nc.jetstream(), {}, []
    pad = "x" * max(0, a.size - len(json.dumps({"i": 0, "pad": ""})))

    async def send(i: int) -> None:
        sent[str(i)] = time.time()
        acks.append(await js.publish_async(f"bench.raw.{a.run}", json.dumps({"i": i, "pad": pad}).encode()))

    try:
        ready()
        if await ctl.until(ctl.go):
            await drive(a, ctl, send)
        if acks:
            await asyncio.wait(acks, timeout=60)
        return {"sent": sent, "acked": time.time(), "errors": sum(not f.done() or f.exception() is not None
                                                                   for f in acks)}
    finally:
        await nc.close()


async def role_raw_consumer(a: argparse.Namespace, ctl: Control) -> dict[str, Any]:
    nc = await nats.connect(a.nats)
    js, durable, seen, sizes = nc.jetstream(), f"raw_{a.run}", {}, []
    try:
        await js.add_consumer(RAW_STREAM, ConsumerConfig(durable_name=durable, filter_subject=f"bench.raw.{a.run}",
                                                         ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1000))
        psub = await js.pull_subscribe_bind(durable, stream=RAW_STREAM)
        ready()
        while not ctl.stop.is_set() and len(seen) < a.expect:
            try:
                msgs = await psub.fetch(RAW_BATCH, timeout=1.0)
            except (FetchTimeoutError, asyncio.TimeoutError):
                continue
            sizes.append(len(msgs))
            for msg in msgs:
                seen[str(json.loads(msg.data)["i"])] = time.time()
                await msg.ack()
        return {"seen": seen, "sizes": sizes}
    finally:
        await nc.close()


ROLES = {"producer": role_producer, "relay": role_relay, "consumer": role_consumer,
         "raw-publisher": role_raw_publisher, "raw-consumer": role_raw_consumer}


async def child(a: argparse.Namespace) -> None:
    ctl, out = Control(), None
    await ctl.start(a.deadline)
    try:
        out = await ROLES[a.role](a, ctl)
        out["cpu"] = time.process_time() - CPU0[0]
    finally:
        Path(a.out).write_text(json.dumps(out or {}))


# ---------------------------------------------------------------- the orchestrating parent

class Children:
    """Child processes of this run; `kill_all()` ends whichever is still running."""

    def __init__(self, tmp: Path, common: list[str]) -> None:
        self.tmp, self.common, self.procs = tmp, common, []

    async def spawn(self, role: str, name: str, *extra: str) -> tuple[Proc, Path]:
        out = self.tmp / f"{name}.json"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.events", "--role", role, "--out", str(out), *self.common, *extra,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
        self.procs.append(proc)
        line = await asyncio.wait_for(proc.stdout.readline(), 60)  # type: ignore[union-attr]
        if line.strip() != b"ready":
            raise RuntimeError(f"{name} did not start (exit code {await proc.wait()})")
        return proc, out

    @staticmethod
    async def finish(proc: Proc, timeout: float, *, close: bool = False) -> None:
        """Wait for the child to exit (after closing its stdin, which stops it, when `close`), else kill it."""
        if close and proc.stdin is not None:
            proc.stdin.close()
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), timeout)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def kill_all(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with suppress(ProcessLookupError):
                    proc.terminate()
        for proc in self.procs:
            await self.finish(proc, 5)


def load(path: Path) -> dict[str, Any]:
    with suppress(OSError, ValueError):
        return json.loads(path.read_text()) or {}
    return {}


async def run_mode(kids: Children, a: argparse.Namespace, kind: str, run: str, dbs: list[str]) -> dict[str, Any]:
    """One measurement: sinks first (listening before the first commit), then the producers, `go`, collect."""
    expect = int(a.rate * a.seconds) if run == "steady" else a.events
    bound = a.seconds + 60 if run == "steady" else max(120.0, a.events / 20)
    args = ["--run", run, "--expect", str(expect)]
    relay = None
    if kind == "mlife":
        relay, _ = await kids.spawn("relay", f"{kind}-{run}-relay", *args, "--db", dbs[0], "--deadline", str(bound + 90))
        sink, sink_out = await kids.spawn("consumer", f"{kind}-{run}-consumer", *args, "--db", dbs[1],
                                          "--deadline", str(bound + 60))
    else:
        sink, sink_out = await kids.spawn("raw-consumer", f"{kind}-{run}-consumer", *args,
                                          "--deadline", str(bound + 60))
    role = "producer" if kind == "mlife" else "raw-publisher"
    producers = await asyncio.gather(*(kids.spawn(role, f"{kind}-{run}-producer{k}", *args, "--index", str(k),
                                                  "--db", dbs[0], "--deadline", str(bound))
                                       for k in range(a.producers)))
    go = f"go {time.time() + 0.3}\n".encode()
    for proc, _ in producers:
        proc.stdin.write(go)  # type: ignore[union-attr]
    for proc, _ in producers:
        await kids.finish(proc, bound + 15)
    await kids.finish(sink, bound + 75)
    if relay is not None:
        await kids.finish(relay, 15, close=True)
    sent: dict[str, float] = {}
    outs = [load(out) for _, out in producers]
    for o in outs:
        sent.update(o.get("sent", {}))
    got = load(sink_out)
    relay_out = load(kids.tmp / f"{kind}-{run}-relay.json")
    mode = f"{kind} {run} {a.rate:g}/s" if run == "steady" else f"{kind} flat {a.producers}x{a.tasks}"
    result = summarize(mode, sent, got.get("seen", {}))
    result["errors"] = sum(o.get("errors", 0) for o in outs)
    first = min(sent.values(), default=0.0)

    def rate(n: int, last: float) -> float:
        return n / (last - first) if n and last > first else 0.0

    stages = {"commit" if kind == "mlife" else "publish": rate(len(sent), max(sent.values(), default=0.0))}
    if kind == "raw":
        stages["puback"] = rate(len(sent), max((o.get("acked", 0.0) for o in outs), default=0.0))
    if relay_out.get("batches"):
        n = sum(b[1] for b in relay_out["batches"])
        stages["relay publish"] = rate(n, relay_out["batches"][-1][0])
        result["relay_batch"] = n / len(relay_out["batches"])
    stages["handle" if kind == "mlife" else "receive"] = result["throughput"]
    if got.get("committed"):
        stages["effect commit"] = rate(len(got["committed"]), max(got["committed"].values()))
        result["p99_commit"] = summarize(mode, sent, got["committed"])["p99"]
    result["consumer_batch"] = sum(got.get("sizes", [])) / max(1, len(got.get("sizes", [])))
    result["stages"] = stages
    cpu = {"producers": sum(o.get("cpu", 0.0) for o in outs), "relay": relay_out.get("cpu"), "consumer": got.get("cpu")}
    result["cpu_ms_per_event"] = {k: 1000 * v / max(1, len(sent)) for k, v in cpu.items() if v is not None}
    return result


def summarize(mode: str, sent: dict[str, float], seen: dict[str, float]) -> dict[str, Any]:
    lat = sorted((seen[k] - t) * 1000 for k, t in sent.items() if k in seen)
    first, last = min(sent.values(), default=0.0), max((seen[k] for k in sent if k in seen), default=0.0)
    span = max(sent.values(), default=0.0) - first
    out: dict[str, Any] = {"mode": mode, "sent": len(sent), "received": len(lat),
                           "sent_rate": (len(sent) - 1) / span if span > 0 else 0.0,
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


def envelope_size() -> int:
    sample = new_envelope(BenchPinged(row_id=uuid.uuid4(), n=123456, run="steady"))
    return len(json.dumps(sample.model_dump(mode="json"), separators=(",", ":")))


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    by = {" ".join(r["mode"].split()[:2]): r for r in results}
    ratio = by["mlife flat"]["throughput"] / by["raw flat"]["throughput"] if by["raw flat"]["throughput"] else 0.0
    p99 = by["mlife steady"]["p99"]
    summary = {"results": results, "throughput_ratio": ratio, "mlife_steady_p99_ms": p99,
               "raw_steady_p99_ms": by["raw steady"]["p99"], "goal_ratio_met": ratio >= GOAL_RATIO,
               "goal_p99_met": p99 <= GOAL_P99_MS and by["mlife steady"]["received"] == by["mlife steady"]["sent"],
               "args": vars(args), "payload_bytes": envelope_size()}
    if args.json:
        print(json.dumps(summary, indent=2))
        return summary
    print(f"payload {summary['payload_bytes']} B; one OS process per stage: mlife {args.producers} producer processes"
          f" -> relay -> consumer, raw {args.producers} publisher processes -> consumer; flat out {args.tasks}"
          f" concurrent sends per producer ({args.producers}x{args.tasks}); nats-server from the wheel, fresh"
          f" PostgreSQL DBs; {os.cpu_count()} CPUs")
    print("sent/s: commits (mlife) or publishes (raw) per second; recv/s: first send -> last arrival; "
          "latency: commit/publish -> handler ran/arrival (time.time() across processes)")
    print(f"{'mode':<20}{'sent':>6}{'recv':>6}{'sent/s':>8}{'recv/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}")
    for r in results:
        print(f"{r['mode']:<20}{r['sent']:>6}{r['received']:>6}{r['sent_rate']:>8.0f}{r['throughput']:>8.0f}"
              f"{r['p50']:>9.1f}{r['p95']:>9.1f}{r['p99']:>9.1f}{r['max']:>9.1f}"
              + (f"  ({r['errors']} send errors)" if r["errors"] else ""))
    print("info, events/s from the first send to the last of each stage; mean batch sizes:")
    for r in results:
        extra = "".join(f", {k} batch {r[k]:.1f}" for k in ("relay_batch", "consumer_batch") if k in r)
        commit = f", p99 to effect commit {r['p99_commit']:.1f} ms" if "p99_commit" in r else ""
        print(f"  {r['mode']:<18}" + ", ".join(f"{k} {v:.0f}" for k, v in r["stages"].items()) + extra + commit)
        print(f"  {'':<18}CPU ms/event: " + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_ms_per_event"].items()))
    print(f"throughput ratio mlife/raw = {ratio:.3f}  (goal >= {GOAL_RATIO}: "
          f"{'met' if summary['goal_ratio_met'] else 'MISSED'})")
    print(f"steady p99: mlife {p99:.1f} ms, raw {by['raw steady']['p99']:.1f} ms  "
          f"(goal <= {GOAL_P99_MS:g} ms: {'met' if summary['goal_p99_met'] else 'MISSED'})")
    return summary


async def main(a: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="mlife-bench-"))
    common = ["--seconds", str(a.seconds), "--rate", str(a.rate), "--events", str(a.events),
              "--producers", str(a.producers), "--tasks", str(a.tasks), "--size", str(envelope_size())]
    results = []
    try:
        async with own_nats() as url, databases("bam.migrations", "dam.migrations") as dbs:
            nc = await nats.connect(url)
            await provision_streams(nc.jetstream())
            await nc.jetstream().add_stream(StreamConfig(name=RAW_STREAM, subjects=["bench.raw.>"]))
            await nc.close()
            kids = Children(tmp, ["--nats", url, *common])
            try:
                for kind, run in (("mlife", "steady"), ("mlife", "flat"), ("raw", "steady"), ("raw", "flat")):
                    results.append(await run_mode(kids, a, kind, run, dbs))
            finally:
                await kids.kill_all()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report(results, a)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each steady run")
    p.add_argument("--rate", type=float, default=300.0, help="events/s of the steady runs")
    p.add_argument("--events", type=int, default=5000, help="events of each flat-out run")
    p.add_argument("--producers", type=int, default=2, help="producer (raw: publisher) processes")
    p.add_argument("--tasks", type=int, default=4, help="concurrent sends per producer process when flat out")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    for internal in ("--role", "--out", "--nats", "--db", "--run"):  # set by the parent for its children
        p.add_argument(internal, help=argparse.SUPPRESS)
    for internal, kind in (("--index", int), ("--expect", int), ("--size", int), ("--deadline", float)):
        p.add_argument(internal, type=kind, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    args = parse_args()
    asyncio.run(child(args) if args.role else main(args))
