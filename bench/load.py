"""Load test: N clients (default 50) for S seconds (default 30) of a mixed workload through the gateway AND
against the services direct, in the same run on the same data, alternating rounds.

The platform is started the way the gateway tests start it (`tests.support.stack.start_stack`: every service
as `python -m <svc> all` on its own PostgreSQL database, a NATS server of its own, the gateway in front), on
the PostgreSQL + NATS + S3 of `scripts/testenv.py`. Seeded first: some thousands of badcases through the import
route, a few DAM files, an ONNX model deployed and live in MSM (the model of bench/msm.py).

The workload, per client (half the clients hold a viewer's token, half an engineer's): BAM lists (full text,
filters), BAM stats, DAM file lists, MSM predictions, MTT task lists, and for the engineers DAM uploads (a small
new file each time). Through the gateway a client sends `Authorization: Bearer <API token>`; direct, the
service's own `X-MLife-Identity` (signed once, as the gateway would). The load generator is a minimal
keep-alive HTTP/1.1 client per connection (pre-built requests) in this process.

Goal: through the gateway p99 <= 250 ms and throughput >= 0.5x the services' own; no errors.
Run: .venv/bin/python scripts/testenv.py -- .venv/bin/python -m bench.load [--clients 50] [--seconds 30] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np

from bench._support import add_report_args, figure, write_figures
from mlife_shared.auth import IDENTITY_HEADER, Identity, sign_identity

P99_GOAL_MS = 250.0
RATIO_GOAL = 0.5


# ---- a minimal keep-alive HTTP/1.1 client ------------------------------------------------------------------

class Connection:
    """One keep-alive connection: pre-built request bytes in, (status, body) out; reads Content-Length and
    chunked answers. Cheap, since the load generator shares the 2 cores with the servers."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def call(self, request: bytes) -> tuple[int, bytes]:
        reused = self.writer is not None and not self.writer.is_closing()
        if not reused:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            if not reused or getattr(exc, "partial", b""):
                raise
            # the server closed this idle keep-alive connection (uvicorn: after 5 s) as the request went out:
            # what every HTTP client does, once, on a fresh connection
            self.close()
            await self.open()
            assert self.reader is not None and self.writer is not None
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = 0, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                body += await self.reader.readexactly(size + 2)
                del body[-2:]
            data = bytes(body)
        else:
            data = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def build(method: str, url: str, headers: dict[str, str], body: bytes | None = None) -> tuple[str, int, bytes]:
    """(host, port, request bytes) of one HTTP/1.1 request."""
    parts = httpx.URL(url)
    lines = [f"{method} {parts.raw_path.decode()} HTTP/1.1", f"Host: {parts.host}:{parts.port}",
             *(f"{k}: {v}" for k, v in headers.items())]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return parts.host, int(parts.port or 80), ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan")}
    ms = np.asarray(latencies) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}


# ---- the workload ------------------------------------------------------------------------------------------

Make = Callable[[], bytes]  # a request's bytes (a new body for uploads)


@dataclass
class Side:
    """One way to reach the platform (the gateway, or the services direct): per kind, how to make a request."""

    name: str
    host: str
    port: dict[str, int]  # service -> port
    kinds: dict[str, tuple[str, Make, float]] = field(default_factory=dict)  # kind -> (service, make, weight)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    per_kind: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0


def workload(side_name: str, url: Callable[[str, str], str], auth: Callable[[str], dict[str, str]],
             deployment: str, sample: list[float], role: str) -> dict[str, tuple[str, Make, float]]:
    """kind -> (service, request maker, weight) for a client of `role` (viewer or engineer)."""
    h = auth(role)
    kinds: dict[str, tuple[str, Make, float]] = {}

    def get(service: str, path: str) -> Make:
        _, _, raw = build("GET", url(service, path), h)
        return lambda: raw

    kinds["bam list q"] = ("bam", get("bam", "/badcases?q=camera&limit=50"), 3)
    kinds["bam list filter"] = ("bam", get("bam", "/badcases?function=lane%20detection&status=new&limit=50"), 3)
    kinds["bam stats"] = ("bam", get("bam", "/stats?group_by=function"), 1.5)
    kinds["dam files"] = ("dam", get("dam", "/files?limit=50"), 2)
    kinds["mtt tasks"] = ("mtt", get("mtt", "/tasks?limit=50"), 0.5)
    predict = json.dumps({"inputs": {"x": [sample]}}).encode()
    _, _, praw = build("POST", url("msm", f"/serve/{deployment}/predict"),
                       {**h, "Content-Type": "application/json"}, predict)
    kinds["msm predict"] = ("msm", lambda: praw, 3)
    if role == "engineer":
        upload_url = url("dam", "/files")

        def upload() -> bytes:
            blob = os.urandom(4096)
            return build("POST", upload_url, {**h, "Content-Type": "application/octet-stream"}, blob)[2]

        kinds["dam upload"] = ("dam", upload, 1)
    return kinds


async def run_round(sides: list[tuple[str, int, dict[str, tuple[str, Make, float]]]], seconds: float,
                    tally: Tally, seed: int) -> None:
    """Every client (host, port map, kinds) sends requests back to back for `seconds`."""
    deadline = time.perf_counter() + seconds

    async def client(i: int, host: str, ports: dict[str, int], kinds: dict[str, tuple[str, Make, float]]) -> None:
        rng = random.Random(seed * 1000 + i)
        names = list(kinds)
        weights = [kinds[k][2] for k in names]
        conns: dict[int, Connection] = {}
        try:
            while time.perf_counter() < deadline:
                kind = rng.choices(names, weights)[0]
                service, make, _ = kinds[kind]
                port = ports[service]
                conn = conns.get(port) or conns.setdefault(port, Connection(host, port))
                request = make()
                start = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(conn.call(request), 60)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    conn.close()
                    tally.errors[f"{kind}: {type(exc).__name__}"] = tally.errors.get(f"{kind}: {type(exc).__name__}", 0) + 1
                    continue
                took = time.perf_counter() - start
                tally.requests += 1
                if status >= 400:
                    key = f"{kind}: {status} {body[:120]!r}"
                    tally.errors[key] = tally.errors.get(key, 0) + 1
                    continue
                tally.latencies.append(took)
                tally.per_kind.setdefault(kind, []).append(took)
        finally:
            for c in conns.values():
                c.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(i, h, p, k) for i, (h, p, k) in enumerate(sides)))
    tally.seconds += time.perf_counter() - start


# ---- the platform and its data -----------------------------------------------------------------------------

async def seed(stack: Any, badcases: int, files: int) -> tuple[str, list[float]]:
    """Badcases (import route), DAM files, a live ONNX deployment in MSM; returns (deployment, a sample)."""
    from bench.bam import Vocabulary, body_chunks
    from bench.msm import FEATURES, model_bytes

    vocab = Vocabulary(7)
    chunks = body_chunks([vocab.report(i) for i in range(badcases)], "jsonl")
    async with httpx.AsyncClient(base_url=stack.url, timeout=300) as c:
        r = await c.post("/api/bam/badcases/import", content=b"".join(chunks),
                         headers={**stack.auth("engineer"), "content-type": "application/x-ndjson"})
        r.raise_for_status()
        for _ in range(files):
            (await c.post("/api/dam/files", content=os.urandom(8192),
                          headers={**stack.auth("engineer"), "content-type": "application/octet-stream"})
             ).raise_for_status()
        name = f"load-{uuid.uuid4().hex[:6]}"
        version = await c.post(f"/api/msm/models/{name}/versions", content=model_bytes(),
                               headers={**stack.auth("engineer"), "content-type": "application/octet-stream"})
        version.raise_for_status()
        (await c.patch(f"/api/msm/models/{name}", json={"function": "lane detection"},
                       headers=stack.auth("engineer"))).raise_for_status()
        dep = await c.post("/api/msm/deployments", headers=stack.auth("maintainer"), json={
            "name": name, "versions": [{"model_version_id": version.json()["id"]}],
            "override_reason": "load bench: no testing results"})
        if dep.status_code != 201:
            raise RuntimeError(f"the deployment was refused: {dep.status_code} {dep.text[:500]}")
        deadline = time.time() + 90
        while (status := (await c.get(f"/api/msm/deployments/{dep.json()['id']}", headers=stack.auth("viewer"))
                          ).json()["status"]) != "live":
            if status == "failed" or time.time() > deadline:
                raise RuntimeError(f"the deployment is {status}")
            await asyncio.sleep(0.3)
    sample = [round(random.Random(1).uniform(-1, 1), 4) for _ in range(FEATURES)]
    return name, sample


def s3_env() -> dict[str, str]:
    if not os.environ.get("MLIFE_TEST_S3_ENDPOINT"):
        return {}
    return {"MLIFE_OBJECT_STORE": "s3", "MLIFE_S3_ENDPOINT": os.environ["MLIFE_TEST_S3_ENDPOINT"],
            "MLIFE_S3_ACCESS_KEY": os.environ["MLIFE_TEST_S3_ACCESS_KEY"],
            "MLIFE_S3_SECRET_KEY": os.environ["MLIFE_TEST_S3_SECRET_KEY"],
            "MLIFE_S3_BUCKET": os.environ["MLIFE_TEST_S3_BUCKET"]}


def _port(url: str) -> int:
    return int(httpx.URL(url).port or 80)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support import stack as stack_support

    home = Path(tempfile.mkdtemp(prefix="mlife-bench-load-"))
    env = {**s3_env(), "MLIFE_MSM_PREDICTION_LOG_RATE": "0.01", **dict(kv.split("=", 1) for kv in args.env)}
    stack = await stack_support.start_stack(home, env=env)
    try:
        if stack.down:
            raise RuntimeError(f"services down: {stack.down}")
        deployment, sample = await seed(stack, args.badcases, args.files)
        gw_port = _port(stack.url)
        gw_ports = {s: gw_port for s in stack.up}
        direct_ports = {s: _port(u) for s, u in stack.up.items()}
        identities = {role: {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), f"{role}-user", role),  # type: ignore[arg-type]
                                                            stack_support.SECRET, ttl_seconds=6 * 3600)}
                      for role in ("viewer", "engineer")}
        gw_url = lambda s, p: f"{stack.url}/api/{s}{p}"  # noqa: E731
        direct_url = lambda s, p: f"{stack.up[s]}/api/{s}{p}"  # noqa: E731
        roles = ["viewer" if i % 2 == 0 else "engineer" for i in range(args.clients)]
        clients = {
            "gateway": [("127.0.0.1", gw_ports, workload("gateway", gw_url, lambda r: stack.auth(r), deployment,
                                                         sample, role)) for role in roles],
            "direct": [("127.0.0.1", direct_ports, workload("direct", direct_url, lambda r: identities[r],
                                                            deployment, sample, role)) for role in roles],
        }
        # warm-up: a few seconds of each, not counted
        for name in ("gateway", "direct"):
            await run_round(clients[name], min(3.0, args.seconds / 4), Tally(), seed=0)
        tallies = {"gateway": Tally(), "direct": Tally()}
        per_round = args.seconds / args.rounds
        loads = []
        for r in range(args.rounds):
            order = ("gateway", "direct") if r % 2 == 0 else ("direct", "gateway")
            for name in order:
                await run_round(clients[name], per_round, tallies[name], seed=r + 1)
                loads.append(os.getloadavg()[0])
        if args.hold:
            print(f"holding the stack for {args.hold} s: gateway {stack.url}, services {stack.up}", flush=True)
            await asyncio.sleep(args.hold)
    finally:
        await stack_support.stop_stack(stack)
    out: dict[str, Any] = {"clients": args.clients, "seconds": args.seconds, "rounds": args.rounds,
                           "badcases": args.badcases, "load_during": loads}
    for name, t in tallies.items():
        out[name] = {"requests": t.requests, "ok": len(t.latencies), "rps": len(t.latencies) / t.seconds,
                     "errors": sum(t.errors.values()), "error_kinds": dict(sorted(t.errors.items())[:10]),
                     **percentiles(t.latencies),
                     "per_kind": {k: {"n": len(v), **percentiles(v)} for k, v in sorted(t.per_kind.items())}}
    out["ratio"] = out["gateway"]["rps"] / out["direct"]["rps"] if out["direct"]["rps"] else float("nan")
    return out


def report(r: dict[str, Any]) -> None:
    print(f"load: {r['clients']} clients x {r['seconds']:g} s per side ({r['rounds']} alternating rounds), "
          f"{r['badcases']} badcases; loadavg {os.getloadavg()}")
    print(f"{'side':<9} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name in ("gateway", "direct"):
        s = r[name]
        print(f"{name:<9} {s['requests']:>9} {s['rps']:>8.1f} {s['p50_ms']:>8.1f} {s['p95_ms']:>8.1f} "
              f"{s['p99_ms']:>8.1f} {s['errors']:>7}")
    print("per kind (gateway | direct): n, p50, p99 ms")
    for kind in r["gateway"]["per_kind"]:
        g, d = r["gateway"]["per_kind"][kind], r["direct"]["per_kind"].get(kind, {"n": 0, "p50_ms": 0, "p99_ms": 0})
        print(f"  {kind:<16} {g['n']:>6} {g['p50_ms']:>7.1f} {g['p99_ms']:>7.1f} | {d['n']:>6} {d['p50_ms']:>7.1f} "
              f"{d['p99_ms']:>7.1f}")
    for name in ("gateway", "direct"):
        if r[name]["error_kinds"]:
            print(f"{name} errors: {r[name]['error_kinds']}")
    ok = r["gateway"]["p99_ms"] <= P99_GOAL_MS and r["ratio"] >= RATIO_GOAL and r["gateway"]["errors"] == 0
    print(f"throughput gateway/direct = {r['ratio']:.2f}x (goal >= {RATIO_GOAL}x); gateway p99 "
          f"{r['gateway']['p99_ms']:.0f} ms (goal <= {P99_GOAL_MS:g} ms): {'met' if ok else 'NOT met'}")


def figures(r: dict[str, Any]) -> list[dict[str, Any]]:
    g, d = r["gateway"], r["direct"]
    detail = f"{r['clients']} clients x {r['seconds']:g} s, mixed workload"
    return [figure("load: p99 through the gateway", g["p99_ms"], "ms", f"<= {P99_GOAL_MS:g} ms",
                   g["p99_ms"] <= P99_GOAL_MS, peer=d["p99_ms"], peer_name="services direct", detail=detail),
            figure("load: throughput gateway/direct", r["ratio"], "x", f">= {RATIO_GOAL}x", r["ratio"] >= RATIO_GOAL,
                   detail=f"{g['rps']:.0f} vs {d['rps']:.0f} req/s"),
            figure("load: errors through the gateway", g["errors"], "requests", "0", g["errors"] == 0,
                   peer=d["errors"], peer_name="services direct")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30.0, help="measured seconds per side")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds the seconds are split into")
    p.add_argument("--badcases", type=int, default=5000)
    p.add_argument("--files", type=int, default=20)
    p.add_argument("--hold", type=float, default=0, help="keep the stack up this long afterwards (to profile)")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE added to every process (repeatable)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_report_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.seconds, args.rounds, args.badcases, args.files = 10, 5.0, 1, 1000, 5
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    r = asyncio.run(measure(args))
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        report(r)
    write_figures(args.out, "load", figures(r), r, quick=args.quick)


if __name__ == "__main__":
    main()
