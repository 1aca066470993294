"""Event backbone benchmark: the MLife outbox pipeline against raw JetStream, in one run, on one server.

Each stage runs in its own OS process, as deployed (producer = an API process, relay = the producing
service's worker, consumer = the consuming service's worker): this process starts the children as
`python -m bench.events --role producer|relay|consumer|raw-consumer ...`, tells the producers
when to start, collects their JSON result files and computes; it does no pipeline work itself.
  MLife: `--producers` producer processes, each committing one row + `outbox.add()` per
    `Database.transaction()`; one `Relay` process (library defaults: batch 256, poll 0.5 s, LISTEN/NOTIFY)
    on the producer's database; one `ConsumerRunner` process (another database) whose handler inserts an
    effect row (idempotent via the inbox).
  Raw peer, same split: `--producers` publisher processes (nats-py `publish_async` of payloads of the
    envelope's size, own stream) and one consumer process (pull, batches of 32, timeout 1 s, ack each).
Latency = handler ran (raw: message arrived) - producing commit returned (raw: publish called), both
`time.time()` of this one machine, keyed by event id. The effect's commit time is reported too.
  steady:   `--rate` events/s for `--seconds`, open loop: event i is sent at t0 + i/rate, never waiting
            (the producers take turns); the achieved send rate (commits/s) is reported
  flat out: `--events` events, `--tasks` concurrent sends per producer process;
            throughput = first commit -> last effect
For information: each stage's rate (events / (its last event - first commit)), mean batch sizes, and the
CPU time per event of each process (time.process_time() of the children from ready to end).
Fresh nats-server from the wheel (JetStream in a temp dir) and PostgreSQL databases
(MLIFE_TEST_PG_HOST/PORT/USER), removed at the end; every child is killed at the end, also on error or
Ctrl-C, and stops by itself when its stdin closes or its deadline passes. Run (or `make bench`):
  .venv/bin/python -m bench.events [--seconds 10] [--rate 1000] [--events 5000] [--producers 2] [--tasks 4]
                                   [--quick] [--out FIGURES.json] [--json]
(`--rate 300` is the earlier steady rate; the p99 goal is stated at 1,000/s, so only that rate checks it.)
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

from bench._support import add_report_args, figure, own_nats, write_figures
from mlife_shared.db import Database
from mlife_shared.events import Envelope, EventData, new_envelope, register
from mlife_shared.heap import freeze_startup_heap
from mlife_shared.messaging import outbox
from mlife_shared.messaging.bus import provision_streams
from mlife_shared.messaging.consumer import ConsumerRunner, Subscription
from mlife_shared.messaging.relay import Relay
from mlife_shared.migrations import upgrade

GOAL_RATIO, GOAL_P99_MS, GOAL_RATE = 0.25, 20.0, 1000.0
RAW_STREAM, RAW_BATCH = "BENCH_RAW", 32
ROOT = Path(__file__).resolve().parents[1]
Result = dict[str, Any]


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


# ---------------------------------------------------------------- the children, one role per process

class Control:
    """A child's lifeline: stdin `go <t0>` starts a producer at wall time t0; stdin EOF (the parent is done
    or gone), SIGTERM/SIGINT or `--deadline` seconds set `stop`. `ready()` tells the parent it is set up."""

    def __init__(self) -> None:
        self.go, self.stop, self.t0, self.cpu0 = asyncio.Event(), asyncio.Event(), 0.0, 0.0

    async def start(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        loop.call_later(deadline, self.stop.set)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self._reading = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            if line.startswith(b"go "):
                self.t0 = float(line.split()[1])
                self.go.set()
        self.stop.set()

    def ready(self) -> None:
        freeze_startup_heap()  # as every MLife process does once started (raw children too: same treatment)
        self.cpu0 = time.process_time()
        print("ready", flush=True)

    async def started(self) -> bool:
        """Wait for `go` (or stop); True when it is time to send."""
        waits = [asyncio.create_task(self.go.wait()), asyncio.create_task(self.stop.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for t in waits:
            t.cancel()
        return not self.stop.is_set()


async def drive(a: argparse.Namespace, ctl: Control, send: Callable[[int], Awaitable[None]]) -> None:
    """This producer's share (event numbers index, index + producers, ...) from wall time t0: steady at
    t0 + i/rate without waiting for earlier sends; flat out from `tasks` workers back to back. Bounded."""
    mine = range(a.index, int(a.rate * a.seconds) if a.run == "steady" else a.events, a.producers)
    loop = asyncio.get_running_loop()
    start = loop.time() + (ctl.t0 - time.time())
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

        await asyncio.sleep(max(0.0, start - loop.time()))
        tasks = {asyncio.create_task(worker()) for _ in range(a.tasks)}
    if tasks:
        await asyncio.wait(tasks, timeout=a.deadline)


class _Rollback(Exception):
    pass


async def role_producer(a: argparse.Namespace, ctl: Control) -> Result:
    """MLife (`--db` given): one row + `outbox.add()` per transaction, noting when each commit returned.
    Raw: `publish_async`, noting when each publish was called; the PubAcks are awaited at the end."""
    sent, errors, acks = {}, [0], []
    if a.db:
        db = Database(a.db)
        close: Callable[[], Awaitable[None]] = db.dispose

        async def send(i: int, *, warm: bool = False) -> None:
            with suppress(_Rollback):
                async with db.transaction() as session:
                    row_id = uuid.uuid4()
                    await session.execute(sa.insert(bench_rows).values(id=row_id, n=i))
                    envelope = await outbox.add(session, BenchPinged(row_id=row_id, n=i, run=a.run))
                    if warm:  # opens a pooled connection and compiles the statements; commits nothing
                        raise _Rollback
                sent[str(envelope.id)] = time.time()  # the commit has returned
    else:
        nc = await nats.connect(a.nats)
        js, close = nc.jetstream(), nc.close
        pad = "x" * max(0, a.size - len(json.dumps({"i": 0, "pad": ""})))

        async def send(i: int, *, warm: bool = False) -> None:
            if not warm:
                sent[str(i)] = time.time()
                acks.append(await js.publish_async(f"bench.raw.{a.run}", json.dumps({"i": i, "pad": pad}).encode()))

    async def counted(i: int) -> None:
        try:
            await send(i)
        except Exception:  # noqa: BLE001 - counted and reported
            errors[0] += 1

    try:
        await asyncio.gather(*(send(-1, warm=True) for _ in range(a.tasks)))
        ctl.ready()
        if await ctl.started():
            await drive(a, ctl, counted)
        if acks:
            await asyncio.wait(acks, timeout=60)
        errors[0] += sum(not f.done() or f.exception() is not None for f in acks)
        return {"sent": sent, "errors": errors[0]}
    finally:
        await close()


class StampedRelay(Relay):
    """The library relay, noting (time, rows) of each published batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[tuple[float, int]] = []
        self.listening = asyncio.Event()  # the first batch runs after LISTEN

    async def publish_batch(self) -> int:
        self.listening.set()
        n = await super().publish_batch()
        if n:
            self.batches.append((time.time(), n))
        return n


async def role_relay(a: argparse.Namespace, ctl: Control) -> Result:
    nc = await nats.connect(a.nats)
    relay = StampedRelay(Database(a.db), nc.jetstream())
    try:
        running = asyncio.create_task(relay.run(ctl.stop))
        await asyncio.wait_for(relay.listening.wait(), 30)
        ctl.ready()
        await running
        return {"batches": relay.batches}
    finally:
        await relay.db.dispose()
        await nc.close()


class StampedRunner(ConsumerRunner):
    """The library consumer runner, noting when each batch's effects committed; stops at `expect` effects."""

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
        self.committed.update(dict.fromkeys(self.pending, time.time()))
        self.pending.clear()
        if len(self.committed) >= self.expect:
            self.ctl.stop.set()


async def role_consumer(a: argparse.Namespace, ctl: Control) -> Result:
    async def handler(event: Envelope[BenchPinged], session: AsyncSession) -> None:
        await session.execute(sa.insert(bench_effects).values(event_id=event.id, row_id=event.data.row_id,
                                                               n=event.data.n))
        if event.data.run == a.run:  # a leftover of an earlier run is applied but not counted
            runner.seen[str(event.id)] = time.time()
            runner.pending.append(str(event.id))

    nc = await nats.connect(a.nats)
    sub = Subscription(name="pings", subject=BenchPinged.subject, handler=handler)
    runner = StampedRunner("benchsink", Database(a.db), nc.jetstream(), [sub], expect=a.expect, ctl=ctl)
    try:
        await runner.ensure_consumer(sub)
        await runner.db.ping()
        ctl.ready()
        await runner.run(ctl.stop)
        return {"seen": runner.seen, "committed": runner.committed, "sizes": runner.sizes}
    finally:
        await runner.db.dispose()
        await nc.close()


async def role_raw_consumer(a: argparse.Namespace, ctl: Control) -> Result:
    nc = await nats.connect(a.nats)
    js, durable, seen, sizes = nc.jetstream(), f"raw_{a.run}", {}, []
    try:
        await js.add_consumer(RAW_STREAM, ConsumerConfig(durable_name=durable, filter_subject=f"bench.raw.{a.run}",
                                                         ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1000))
        psub = await js.pull_subscribe_bind(durable, stream=RAW_STREAM)
        ctl.ready()
        while not ctl.stop.is_set() and len(seen) < a.expect:
            try:
                msgs = await psub.fetch(RAW_BATCH, timeout=1.0)
            except (TimeoutError, FetchTimeoutError):
                continue
            sizes.append(len(msgs))
            for msg in msgs:
                seen[str(json.loads(msg.data)["i"])] = time.time()
                await msg.ack()
        return {"seen": seen, "sizes": sizes}
    finally:
        await nc.close()


ROLES = {"producer": role_producer, "relay": role_relay, "consumer": role_consumer, "raw-consumer": role_raw_consumer}


async def child(a: argparse.Namespace) -> None:
    ctl, out = Control(), {}
    await ctl.start(a.deadline)
    try:
        out = await ROLES[a.role](a, ctl)
        out["cpu"] = time.process_time() - ctl.cpu0
    finally:
        Path(a.result).write_text(json.dumps(out))


# ---------------------------------------------------------------- the parent: orchestrates and computes

class Children:
    """The child processes of this run; `kill_all()` ends whichever is still running."""

    def __init__(self, tmp: Path, common: list[str]) -> None:
        self.tmp, self.common, self.procs = tmp, common, []

    async def spawn(self, role: str, name: str, *extra: str) -> tuple[asyncio.subprocess.Process, Path]:
        out = self.tmp / f"{name}.json"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.events", "--role", role, "--result", str(out), *self.common, *extra,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
        self.procs.append(proc)
        line = await asyncio.wait_for(proc.stdout.readline(), 60)  # type: ignore[union-attr]
        if line.strip() != b"ready":
            raise RuntimeError(f"{name} did not start (exit code {await proc.wait()})")
        return proc, out

    @staticmethod
    async def finish(proc: asyncio.subprocess.Process, timeout: float, *, close: bool = False) -> None:
        """Wait for the child to exit (first closing its stdin, which stops it, when `close`); else kill it."""
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


def load(path: Path) -> Result:
    with suppress(OSError, ValueError):
        return json.loads(path.read_text())
    return {}


async def run_mode(kids: Children, a: argparse.Namespace, kind: str, run: str, dbs: list[str]) -> Result:
    """One measurement: the sinks first (listening before the first commit), then the producers, `go`."""
    expect = int(a.rate * a.seconds) if run == "steady" else a.events
    bound = a.seconds + 60 if run == "steady" else max(120.0, a.events / 20)
    name, args = f"{kind}-{run}", ["--run", run, "--expect", str(expect)]
    relay = None
    if kind == "mlife":
        relay, relay_out = await kids.spawn("relay", f"{name}-relay", *args, "--db", dbs[0], "--deadline", str(bound + 90))
    sink, sink_out = await kids.spawn("consumer" if kind == "mlife" else "raw-consumer", f"{name}-consumer", *args,
                                      "--db", dbs[1], "--deadline", str(bound + 60))
    db = ["--db", dbs[0]] if kind == "mlife" else []
    producers = await asyncio.gather(*(kids.spawn("producer", f"{name}-producer{k}", *args, *db, "--index", str(k),
                                                  "--deadline", str(bound)) for k in range(a.producers)))
    go = f"go {time.time() + 0.3}\n".encode()
    for proc, _ in producers:
        proc.stdin.write(go)  # type: ignore[union-attr]
    for proc, _ in producers:
        await kids.finish(proc, bound + 15)
    await kids.finish(sink, bound + 75)
    outs, got = [load(out) for _, out in producers], load(sink_out)
    sent = {k: t for o in outs for k, t in o.get("sent", {}).items()}
    mode = f"{kind} steady {a.rate:g}/s" if run == "steady" else f"{kind} flat {a.producers}x{a.tasks}"
    result = summarize(mode, sent, got.get("seen", {}))
    first, cpu = min(sent.values(), default=0.0), {"producers": sum(o.get("cpu", 0.0) for o in outs)}

    def rate(n: int, last: float) -> float:
        return n / (last - first) if n and last > first else 0.0

    stages = {"commit" if kind == "mlife" else "publish": rate(len(sent), max(sent.values(), default=0.0))}
    if relay is not None:
        await kids.finish(relay, 15, close=True)
        batches, cpu["relay"] = (r := load(relay_out)).get("batches", []), r.get("cpu", 0.0)
        stages["relay"] = rate(sum(n for _, n in batches), max((t for t, _ in batches), default=0.0))
        result["relay_batch"] = sum(n for _, n in batches) / max(1, len(batches))
    stages["handle" if kind == "mlife" else "receive"] = result["throughput"]
    if got.get("committed"):
        stages["effect commit"] = rate(len(got["committed"]), max(got["committed"].values()))
        result["p99_commit"] = summarize(mode, sent, got["committed"])["p99"]
    cpu["consumer"] = got.get("cpu", 0.0)
    result.update(errors=sum(o.get("errors", 0) for o in outs), stages=stages,
                  consumer_batch=sum(got.get("sizes", [])) / max(1, len(got.get("sizes", []))),
                  cpu_ms_per_event={k: 1000 * v / max(1, len(sent)) for k, v in cpu.items()})
    return result


def summarize(mode: str, sent: dict[str, float], seen: dict[str, float]) -> Result:
    lat = sorted((seen[k] - t) * 1000 for k, t in sent.items() if k in seen)
    first, last = min(sent.values(), default=0.0), max((seen[k] for k in sent if k in seen), default=0.0)
    span = max(sent.values(), default=0.0) - first
    out: Result = {"mode": mode, "sent": len(sent), "received": len(lat),
                   "sent_rate": (len(sent) - 1) / span if span > 0 else 0.0,
                   "throughput": len(lat) / (last - first) if lat and last > first else 0.0}
    for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
        out[name] = lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    return out


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


def report(results: list[Result], args: argparse.Namespace, load_avg: list[float]) -> Result:
    by = {" ".join(r["mode"].split()[:2]): r for r in results}
    ratio = by["mlife flat"]["throughput"] / by["raw flat"]["throughput"] if by["raw flat"]["throughput"] else 0.0
    p99 = by["mlife steady"]["p99"]
    summary = {"results": results, "throughput_ratio": ratio, "mlife_steady_p99_ms": p99,
               "raw_steady_p99_ms": by["raw steady"]["p99"], "goal_ratio_met": ratio >= GOAL_RATIO,
               "goal_p99_met": p99 <= GOAL_P99_MS and by["mlife steady"]["received"] == by["mlife steady"]["sent"],
               "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "payload_bytes": envelope_size(), "load_average_before_after": load_avg}
    steady = by["mlife steady"]
    write_figures(args.out, "events", [
        figure("events: throughput MLife/raw (flat out)", ratio, "x", f">= {GOAL_RATIO}x", summary["goal_ratio_met"],
               peer=by["raw flat"]["throughput"], peer_name="raw nats-py JetStream, events/s",
               detail=f"MLife {by['mlife flat']['throughput']:.0f} events/s"),
        figure(f"events: steady p99 at {args.rate:g}/s", p99, "ms", f"<= {GOAL_P99_MS:g} ms at {GOAL_RATE:g}/s",
               summary["goal_p99_met"] if args.rate >= GOAL_RATE else None, peer=by["raw steady"]["p99"],
               peer_name="raw nats-py JetStream p99, ms",
               detail=f"received {steady['received']}/{steady['sent']}, sent {steady['sent_rate']:.0f}/s")],
        summary, quick=args.quick)
    if args.json:
        print(json.dumps(summary, indent=2))
        return summary
    print(f"payload {summary['payload_bytes']} B; one OS process per stage: mlife {args.producers} producers -> relay"
          f" -> consumer, raw {args.producers} publishers -> consumer; flat out {args.tasks} concurrent sends per"
          f" producer; nats-server from the wheel, fresh PostgreSQL DBs; {os.cpu_count()} CPUs, 1-min load average"
          f" {load_avg[0]:.1f} before, {load_avg[1]:.1f} after")
    print("sent/s: commits (mlife) or publishes (raw) per second; recv/s: first send -> last arrival;"
          " latency: commit returned (raw: publish called) -> handler ran (raw: arrival)")
    print(f"{'mode':<20}{'sent':>6}{'recv':>6}{'sent/s':>8}{'recv/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}")
    for r in results:
        print(f"{r['mode']:<20}{r['sent']:>6}{r['received']:>6}{r['sent_rate']:>8.0f}{r['throughput']:>8.0f}"
              f"{r['p50']:>9.1f}{r['p95']:>9.1f}{r['p99']:>9.1f}{r['max']:>9.1f}"
              + (f"  ({r['errors']} send errors)" if r["errors"] else ""))
    print("info: stage rates (events/s, first send -> last of the stage), mean batches, CPU ms per event:")
    for r in results:
        batches = "".join(f", {k.split('_')[0]} batch {r[k]:.1f}" for k in ("relay_batch", "consumer_batch") if k in r)
        effect = f"; p99 to effect commit {r['p99_commit']:.1f} ms" if "p99_commit" in r else ""
        print(f"  {r['mode']:<18} " + ", ".join(f"{k} {v:.0f}" for k, v in r["stages"].items()) + batches + effect)
        print(f"  {'':<18} CPU " + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_ms_per_event"].items()))
    print(f"throughput ratio mlife/raw = {ratio:.3f}  (goal >= {GOAL_RATIO}: "
          f"{'met' if summary['goal_ratio_met'] else 'MISSED'})")
    print(f"steady p99: mlife {p99:.1f} ms, raw {by['raw steady']['p99']:.1f} ms  "
          f"(goal <= {GOAL_P99_MS:g} ms: {'met' if summary['goal_p99_met'] else 'MISSED'})")
    return summary


async def main(a: argparse.Namespace) -> Result:
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)  # type: ignore[union-attr]
    load_before, tmp, results = os.getloadavg()[0], Path(tempfile.mkdtemp(prefix="mlife-bench-")), []
    common = ["--seconds", str(a.seconds), "--rate", str(a.rate), "--events", str(a.events),
              "--producers", str(a.producers), "--tasks", str(a.tasks), "--size", str(envelope_size())]
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
    return report(results, a, [load_before, os.getloadavg()[0]])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=None, help="duration of each steady run (default 10, quick 3)")
    p.add_argument("--rate", type=float, default=GOAL_RATE,
                   help=f"events/s of the steady runs (default {GOAL_RATE:g}, the goal's rate; 300 was the old one)")
    p.add_argument("--events", type=int, default=None, help="events of each flat-out run (default 5000, quick 1500)")
    p.add_argument("--producers", type=int, default=2, help="producer (raw: publisher) processes")
    p.add_argument("--tasks", type=int, default=4, help="concurrent sends per producer process when flat out")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    for internal in ("--role", "--result", "--nats", "--db", "--run"):  # set by the parent for its children
        p.add_argument(internal, help=argparse.SUPPRESS)
    for internal, kind in (("--index", int), ("--expect", int), ("--size", int), ("--deadline", float)):
        p.add_argument(internal, type=kind, default=0, help=argparse.SUPPRESS)
    add_report_args(p)
    a = p.parse_args(argv)
    a.seconds = a.seconds if a.seconds is not None else (3.0 if a.quick else 10.0)
    a.events = a.events if a.events is not None else (1500 if a.quick else 5000)
    return a


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    args = parse_args()
    asyncio.run(child(args) if args.role else main(args))
