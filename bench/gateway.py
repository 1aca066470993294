"""Gateway overhead: `GET /api/bam/healthz` through the gateway against BAM direct, and an authenticated list
(`GET /api/bam/badcases?limit=50`: an API token at the gateway, the signed identity direct), one keep-alive
connection each, sequential requests, in alternating rounds of the same run (the machine is shared).

BAM runs as `python -m bam api` and the gateway as `python -m gateway api --migrate`, each on a fresh
PostgreSQL database of its own (`scripts/testenv.py`'s), the gateway's other upstreams a closed port.
Prints p50/p95/p99 of both and the differences. Goal: p50 through the gateway - p50 direct <= +1 ms (healthz).
Run: .venv/bin/python scripts/testenv.py -- .venv/bin/python -m bench.gateway [--requests 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import add_report_args, figure, write_figures
from bench.load import Connection, build, percentiles
from mlife_shared.auth import IDENTITY_HEADER, Identity, sign_identity

GOAL_MS = 1.0
SECRET = "bench-gateway-" + uuid.uuid4().hex
ADMIN_TOKEN = "mlf_bench_admin_" + uuid.uuid4().hex


async def start(home: Path, env_extra: dict[str, str]) -> tuple[Any, str, str]:
    """(platform, BAM url, gateway url)."""
    from tests.support import processes
    from tests.support.platform import SERVICES, Processes

    platform = Processes(home=home)
    try:
        base = dict(os.environ, MLIFE_ENVIRONMENT="test", MLIFE_IDENTITY_SECRET=SECRET, MLIFE_OBJECT_STORE="local",
                    MLIFE_LOG_LEVEL="WARNING", MLIFE_NATS_URL=os.environ.get("MLIFE_TEST_NATS_URL",
                                                                             "nats://127.0.0.1:4222"),
                    MLFLOW_DISABLE_TELEMETRY="true", ORT_DISABLE_TELEMETRY="1", **env_extra)
        bam_db = await platform.database("bam.migrations", "mlife_bench")
        gw_db = await platform.database("gateway.migrations", "mlife_bench")
        bam_port, gw_port = processes.free_port(), processes.free_port()
        closed = f"http://127.0.0.1:{processes.free_port()}"
        bam_url, gw_url = f"http://127.0.0.1:{bam_port}", f"http://127.0.0.1:{gw_port}"
        platform.start("bam", ["-m", "bam", "api", "--port", str(bam_port)],
                       dict(base, MLIFE_HOME=str(home / "bam"), MLIFE_BAM_DATABASE_URL=bam_db))
        platform.start("gateway", ["-m", "gateway", "api", "--migrate", "--port", str(gw_port)],
                       dict(base, MLIFE_HOME=str(home / "gateway"), MLIFE_GATEWAY_DATABASE_URL=gw_db,
                            MLIFE_GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN,
                            MLIFE_GATEWAY_ALLOWED_HOSTS=json.dumps(["127.0.0.1", "localhost"]),
                            **{f"MLIFE_GATEWAY_{s.upper()}_URL": bam_url if s == "bam" else closed for s in SERVICES}))
        for name, url in (("bam", bam_url), ("gateway", gw_url)):
            why = await platform.ready(name, url, processes.READY_TIMEOUT)
            if why is not None:
                raise RuntimeError(f"{name} did not start: {why}")
    except BaseException:
        await platform.stop()
        raise
    return platform, bam_url, gw_url


async def sequential(url: str, headers: dict[str, str], n: int) -> list[float]:
    host, port, request = build("GET", url, headers)
    conn = Connection(host, port)
    await conn.open()
    out = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            status, body = await conn.call(request)
            out.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"{url} answered {status}: {body[:300]!r}")
    finally:
        conn.close()
    return out


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="mlife-bench-gateway-"))
    platform, bam, gw = await start(home, dict(kv.split("=", 1) for kv in args.env))
    identity = {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), "admin", "maintainer"), SECRET,
                                               ttl_seconds=6 * 3600)}
    token = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    scenarios = {
        "healthz": {"gateway": (f"{gw}/api/bam/healthz", {}), "direct": (f"{bam}/api/bam/healthz", {})},
        "list": {"gateway": (f"{gw}/api/bam/badcases?limit=50", token),
                 "direct": (f"{bam}/api/bam/badcases?limit=50", identity)},
    }
    samples: dict[str, dict[str, list[float]]] = {s: {"gateway": [], "direct": []} for s in scenarios}
    try:
        for sides in scenarios.values():  # warm-up
            for url, headers in sides.values():
                await sequential(url, headers, 200)
        per_round = max(1, args.requests // args.rounds)
        for r in range(args.rounds):
            for scenario, sides in scenarios.items():
                order = ("gateway", "direct") if r % 2 == 0 else ("direct", "gateway")
                for side in order:
                    url, headers = sides[side]
                    samples[scenario][side] += await sequential(url, headers, per_round)
    finally:
        await platform.stop()
    out: dict[str, Any] = {"requests": args.requests, "rounds": args.rounds, "load": list(os.getloadavg())}
    for scenario, sides in samples.items():
        g, d = percentiles(sides["gateway"]), percentiles(sides["direct"])
        out[scenario] = {"gateway": g, "direct": d, "diff": {k: g[k] - d[k] for k in g}}
    return out


def report(r: dict[str, Any]) -> None:
    print(f"gateway overhead: {r['requests']} sequential keep-alive requests per side and scenario, "
          f"{r['rounds']} alternating rounds; loadavg {r['load']}")
    print(f"{'scenario':<9} {'side':<8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for scenario in ("healthz", "list"):
        for side in ("gateway", "direct", "diff"):
            s = r[scenario][side]
            sign = "+" if side == "diff" else ""
            print(f"{scenario:<9} {side:<8} {s['p50_ms']:>{sign}8.3f} {s['p95_ms']:>{sign}8.3f} {s['p99_ms']:>{sign}8.3f}")
    diff = r["healthz"]["diff"]["p50_ms"]
    print(f"healthz p50 overhead {diff:+.3f} ms (goal <= +{GOAL_MS:g} ms): {'met' if diff <= GOAL_MS else 'NOT met'}")


def figures(r: dict[str, Any]) -> list[dict[str, Any]]:
    h, lst = r["healthz"], r["list"]
    return [figure("gateway: healthz p50 overhead", h["diff"]["p50_ms"], "ms", f"<= +{GOAL_MS:g} ms",
                   h["diff"]["p50_ms"] <= GOAL_MS, peer=h["direct"]["p50_ms"], peer_name="BAM direct p50",
                   detail=f"gateway p50 {h['gateway']['p50_ms']:.2f} ms"),
            figure("gateway: authenticated list p50 overhead", lst["diff"]["p50_ms"], "ms", "", None,
                   peer=lst["direct"]["p50_ms"], peer_name="BAM direct p50",
                   detail=f"gateway p50 {lst['gateway']['p50_ms']:.2f} ms")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=3000, help="requests per side and scenario")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE added to both processes (repeatable)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_report_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.rounds = 600, 2
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    r = asyncio.run(measure(args))
    print(json.dumps(r, indent=2)) if args.json else report(r)
    write_figures(args.out, "gateway", figures(r), r, quick=args.quick)


if __name__ == "__main__":
    main()
