"""MSM serving benchmark: throughput and p50/p99 latency of `POST /serve/{deployment}/predict` at
concurrency 1 and 16, against `mlflow models serve --env-manager local` of the same ONNX model and
against bare onnxruntime in this process.

- MSM: `python -m msm all` (the embedded mode: API + deployer in one process, SQLite, local objects,
  NATS from MLIFE_TEST_NATS_URL) as a subprocess; the model is uploaded through the API, deployed (the
  gate overridden by a maintainer: there are no testing results here), brought up by the deployer over
  NATS, then called with one sample per request.
- MLflow: the same ONNX bytes saved with `mlflow.onnx.save_model` and served by `mlflow models serve
  --env-manager local` (mlflow==3.17.2 in `.venv-mlflow`, created by this script if missing, since
  MLflow's pins conflict with the main venv); requests `POST /invocations {"inputs": {"x": [[…]]}}`.
- onnxruntime: `session.run` of one row in a loop, and of 16 rows at once (what micro-batching hands to
  onnxruntime under c=16), intra-op threads = cores: the limit without HTTP.
The load generator (a minimal keep-alive HTTP/1.1 client, the same for both servers) runs in this process;
both servers stay up and are measured in `--rounds` alternating rounds of `--seconds` per scenario (after
a warm-up), since the machine is shared and its load drifts; the median round's req/s is reported, with
p50/p99 over all rounds. Goal: MSM >= 3x MLflow's throughput. Never exits non-zero on a miss.
`--quick`: 2 rounds of 1.5 s (a smoke run, about a minute with the servers' start); `--out PATH`: the figures
(ratio at c=1 and c=16, goal >= 3x; MSM p99 at c=16, goal <= 10 ms) as JSON. The load average is printed.
Run: .venv/bin/python scripts/testenv.py -- .venv/bin/python -m bench.msm [--seconds 4] [--rounds 3] [--json]
[--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
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
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np

from bench._support import add_report_args, figure, write_figures  # noqa: E402
from mlife_shared.auth import IDENTITY_HEADER, Identity, sign_identity

ROOT = Path(__file__).resolve().parents[1]
MLFLOW_VENV = ROOT / ".venv-mlflow"
MLFLOW_PINS = ["mlflow==3.17.2", "onnx==1.23.2", "onnxruntime==1.31.1"]
FEATURES, HIDDEN, CLASSES = 64, 128, 16
GOAL = 3.0
P99_GOAL_MS = 10.0
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "ORT_DISABLE_TELEMETRY": "1", "LATEST_VERSION_CHECK": "false",
         "COLLECT_ANALYTICS": "false", "DO_NOT_TRACK": "1"}


def model_bytes() -> bytes:
    """A small MLP classifier: x[N,64] → relu(x·W1+b1)·W2+b2 → softmax → probs[N,16]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.1, (FEATURES, HIDDEN)).astype(np.float32), "W1"),
             numpy_helper.from_array(np.zeros(HIDDEN, np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0, 0.1, (HIDDEN, CLASSES)).astype(np.float32), "W2"),
             numpy_helper.from_array(np.zeros(CLASSES, np.float32), "b2")]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h"]), helper.make_node("MatMul", ["h", "W2"], ["l0"]),
             helper.make_node("Add", ["l0", "b2"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    graph = helper.make_graph(nodes, "bench_mlp",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", CLASSES])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ms = np.asarray(latencies) * 1000
    return {"requests": len(latencies), "rps": len(latencies) / seconds, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99))}


class Connection:
    """A minimal HTTP/1.1 keep-alive client (pre-built request bytes, Content-Length responses): the
    load generator shares the machine with the servers, so it must cost far less than they do."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def call(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every process in a process group (the server and its workers), from
    /proc: the cost per request that the machine's load does not change, unlike req/s."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ..., utime (12), stime (13)
            total += int(fields[11]) + int(fields[12])
    return total / tick


def build_request(url: str, body: bytes, headers: dict[str, str]) -> tuple[str, int, bytes]:
    parts = httpx.URL(url)
    lines = [f"POST {parts.raw_path.decode()} HTTP/1.1", f"Host: {parts.host}:{parts.port}",
             "Content-Type: application/json", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return parts.host, int(parts.port or 80), ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def load(url: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float,
               check: Any, cpu: Callable[[], float] = lambda: float("nan")) -> dict[str, float]:
    host, port, request = build_request(url, body, headers)
    connections = [Connection(host, port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in connections))
    try:
        status, answer = await connections[0].call(request)
        if status != 200:
            raise RuntimeError(f"{url} answered {status}: {answer[:300]!r}")
        check(json.loads(answer))
        warm_until = time.perf_counter() + 1.0
        while time.perf_counter() < warm_until:
            await connections[0].call(request)
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + seconds

        async def worker(conn: Connection) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                status, _ = await conn.call(request)
                if status == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        start, cpu_start = time.perf_counter(), cpu()
        await asyncio.gather(*(worker(c) for c in connections))
        elapsed, cpu_s = time.perf_counter() - start, cpu() - cpu_start
    finally:
        for c in connections:
            c.close()
    result: dict[str, Any] = summary(latencies, elapsed)
    result["errors"] = errors
    result["cpu_s"] = cpu_s  # the server's CPU seconds over the measured window
    result["latencies"] = latencies
    return result


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout} s: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Target:
    url: str
    body: bytes
    headers: dict[str, str]
    check: Callable[[dict[str, Any]], None]
    stats: Callable[[], Awaitable[Any]] | None = None
    pgid: int | None = None


# ---- MSM -----------------------------------------------------------------------------------------

@asynccontextmanager
async def msm_target(work: Path, model: bytes, sample: list[float]) -> AsyncIterator[Target]:
    secret = uuid.uuid4().hex * 2
    port = free_port()
    env = {**os.environ, **QUIET, "MLIFE_HOME": str(work / "msm"), "MLIFE_IDENTITY_SECRET": secret,
           "MLIFE_ENVIRONMENT": "test", "MLIFE_NATS_URL": os.environ.get("MLIFE_TEST_NATS_URL",
                                                                         "nats://127.0.0.1:4222"),
           "MLIFE_MSM_PREDICTION_LOG_RATE": "0.01", "MLIFE_LOG_LEVEL": "WARNING"}
    log = work / "msm.log"
    subprocess.run([sys.executable, "-m", "msm", "migrate"], env=env, check=True, capture_output=True)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "msm", "all", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}/api/msm"
        wait_http(f"{base}/healthz", proc, 60, log)

        def auth(role: str) -> dict[str, str]:
            return {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), "bench", role), secret,  # type: ignore[arg-type]
                                                   ttl_seconds=3600)}

        name = f"bench-{uuid.uuid4().hex[:6]}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            version = await client.post(f"/models/{name}/versions", content=model,
                                        headers={**auth("engineer"), "content-type": "application/octet-stream"})
            version.raise_for_status()
            # A deployment serves a function: the model gets one first.
            (await client.patch(f"/models/{name}", json={"function": "bench"}, headers=auth("engineer"))
             ).raise_for_status()
            dep = await client.post("/deployments", headers=auth("maintainer"), json={
                "name": name, "versions": [{"model_version_id": version.json()["id"]}],
                "override_reason": "benchmark: no testing results"})
            if dep.status_code >= 400:
                raise RuntimeError(f"deploying answered {dep.status_code}: {dep.text[:1000]}")
            deadline = time.time() + 60
            while (status := (await client.get(f"/deployments/{dep.json()['id']}", headers=auth("viewer"))
                              ).json()["status"]) != "live":
                if status == "failed" or time.time() > deadline:
                    raise RuntimeError(f"the deployment is {status}: {log.read_text()[-2000:]}")
                await asyncio.sleep(0.2)

        def check(answer: dict[str, Any]) -> None:
            assert len(answer["outputs"]["probs"]) == CLASSES

        async def stats() -> Any:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                return (await client.get(f"/serve/{name}/stats", headers=auth("viewer"))).json()["batching"]

        yield Target(f"{base}/serve/{name}/predict", json.dumps({"inputs": {"x": sample}}).encode(),
                     auth("viewer"), check, stats, proc.pid)
    finally:
        stop(proc)


# ---- MLflow --------------------------------------------------------------------------------------

def ensure_mlflow_venv() -> Path:
    mlflow = MLFLOW_VENV / "bin" / "mlflow"
    if not mlflow.exists():
        print(f"creating {MLFLOW_VENV} with {' '.join(MLFLOW_PINS)} (MLflow's pins conflict with the main venv)",
              file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(MLFLOW_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        *MLFLOW_PINS], check=True)
    return MLFLOW_VENV


@asynccontextmanager
async def mlflow_target(work: Path, model: bytes, sample: list[float]) -> AsyncIterator[Target]:
    venv = ensure_mlflow_venv()
    onnx_path, model_dir = work / "model.onnx", work / "mlflow-model"
    onnx_path.write_bytes(model)
    # `mlflow models serve` runs `uvicorn` from PATH: the peer's own venv goes first.
    env = {**os.environ, **QUIET, "MLFLOW_TRACKING_URI": f"file://{work / 'mlruns'}",
           "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([str(venv / "bin" / "python"), "-c",
                    "import sys, onnx, mlflow.onnx; "
                    "mlflow.onnx.save_model(onnx.load(sys.argv[1]), sys.argv[2])", str(onnx_path), str(model_dir)],
                   env=env, check=True, capture_output=True)
    port = free_port()
    log = work / "mlflow.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(venv / "bin" / "mlflow"), "models", "serve", "-m", str(model_dir),
                                 "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", proc, 120, log)

        def check(answer: dict[str, Any]) -> None:
            predictions = answer["predictions"]
            probs = predictions["probs"] if isinstance(predictions, dict) else predictions[0]["probs"]
            assert len(np.asarray(probs).reshape(-1)) == CLASSES

        yield Target(f"http://127.0.0.1:{port}/invocations", json.dumps({"inputs": {"x": [sample]}}).encode(), {},
                     check, pgid=proc.pid)
    finally:
        stop(proc)


async def rounds(targets: dict[str, Target], rounds_: int, seconds: float) -> dict[str, Any]:
    """Both servers stay up; each round measures every (server, concurrency) once, in alternating order, so
    that load from elsewhere on the machine falls on both alike. Per cell: the median round's req/s, and
    p50/p99 over every round's latencies."""
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    names = list(targets)
    for r in range(rounds_):
        for c in (1, 16):
            for name in (names if r % 2 == 0 else names[::-1]):
                t = targets[name]
                cpu = functools.partial(group_cpu_seconds, t.pgid) if t.pgid else (lambda: float("nan"))
                runs.setdefault((name, c), []).append(await load(t.url, t.body, t.headers, c, seconds, t.check, cpu))
    out: dict[str, Any] = {name: {} for name in names}
    for (name, c), results in runs.items():
        latencies = [x for res in results for x in res.pop("latencies")]
        cell: dict[str, Any] = dict(summary(latencies, 1.0))
        cell["rps"] = float(np.median([res["rps"] for res in results]))
        cell["rps_rounds"] = [round(res["rps"]) for res in results]
        cell["errors"] = sum(res["errors"] for res in results)
        cell["cpu_us_per_request"] = 1e6 * sum(r["cpu_s"] for r in results) / max(1, sum(r["requests"] for r in results))
        out[name][f"c{c}"] = cell
    return out


# ---- bare onnxruntime ----------------------------------------------------------------------------

def ort_scenarios(model: bytes, sample: list[float], seconds: float) -> dict[str, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    out = {}
    for rows in (1, 16):
        feeds = {"x": np.asarray([sample] * rows, dtype=np.float32)}
        for _ in range(200):
            session.run(None, feeds)
        latencies = []
        deadline = time.perf_counter() + min(seconds, 3.0)
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            session.run(None, feeds)
            latencies.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - start
        result = summary(latencies, elapsed)
        result["rows_per_s"] = result["rps"] * rows
        out[f"rows{rows}"] = result
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    model = model_bytes()
    sample = np.random.default_rng(1).normal(0, 1, FEATURES).astype(np.float32).round(4).tolist()
    work = Path(tempfile.mkdtemp(prefix="bench-msm-"))
    results: dict[str, Any] = {"model_bytes": len(model), "seconds": args.seconds, "rounds": args.rounds}
    try:
        results["ort"] = ort_scenarios(model, sample, args.seconds)
        async with AsyncExitStack() as stack:
            targets = {"msm": await stack.enter_async_context(msm_target(work, model, sample))}
            try:
                targets["mlflow"] = await stack.enter_async_context(mlflow_target(work, model, sample))
            except Exception as exc:  # noqa: BLE001 - report the peer's failure instead of hiding the MSM figures
                results["mlflow_error"] = f"{type(exc).__name__}: {exc}"[:2000]
            results.update(await rounds(targets, args.rounds, args.seconds))
            assert targets["msm"].stats is not None
            results["msm"]["batching"] = await targets["msm"].stats()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load"] = list(os.getloadavg())
    report(results) if not args.json else print(json.dumps(results, indent=2))
    return results


def figures(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The bench contract's rows: the throughput ratio at c=1 and c=16, and MSM's p99 at c=16."""
    rows = []
    for c in ("c1", "c16"):
        msm, peer = r["msm"][c]["rps"], r["mlflow"][c]["rps"] if "mlflow" in r else None
        ratio = msm / peer if peer else None
        rows.append(figure(f"predict: throughput MSM/MLflow at concurrency {c[1:]}", ratio, "x", f">= {GOAL:g}x",
                           None if ratio is None else ratio >= GOAL, peer=peer, peer_name="mlflow models serve",
                           detail=f"MSM {msm:.0f} req/s, p50 {r['msm'][c]['p50_ms']:.2f} ms, server CPU "
                           f"{r['msm'][c]['cpu_us_per_request']:.0f} us/request"
                           + (f" (MLflow {r['mlflow'][c]['cpu_us_per_request']:.0f})" if peer else "")
                           + ("" if peer else f"; MLflow failed: {r.get('mlflow_error', '')[:200]}")))
    p99 = r["msm"]["c16"]["p99_ms"]
    rows.append(figure("predict: MSM p99 at concurrency 16", p99, "ms", f"<= {P99_GOAL_MS:g} ms", p99 <= P99_GOAL_MS,
                       peer=r["mlflow"]["c16"]["p99_ms"] if "mlflow" in r else None, peer_name="mlflow models serve"))
    rows.append(figure("predict: bare onnxruntime 1-row runs (the limit without HTTP)", r["ort"]["rows1"]["rps"],
                       "runs/s", "", None, detail=f"16-row runs: {r['ort']['rows16']['rows_per_s']:.0f} rows/s"))
    return rows


def report(r: dict[str, Any]) -> None:
    print(f"ONNX MLP {FEATURES}->{HIDDEN}->{CLASSES} ({r['model_bytes']} bytes), one sample per request, "
          f"{r['rounds']} alternating rounds of {r['seconds']:g} s per scenario, {os.cpu_count()} cores shared by "
          "servers and client")
    print(f"  {'server':<34}{'conc':>5}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'CPU us/req':>11}"
          "  req/s per round")
    for c in ("c1", "c16"):
        for server in ("msm", "mlflow"):
            if server in r:
                x = r[server][c]
                print(f"  {server:<34}{c[1:]:>5}{x['rps']:>10.0f}{x['p50_ms']:>9.2f}{x['p99_ms']:>9.2f}"
                      f"{x['errors']:>8}{x['cpu_us_per_request']:>11.0f}  {x['rps_rounds']}")
    for rows in ("rows1", "rows16"):
        x = r["ort"][rows]
        print(f"  {'onnxruntime in-process, ' + rows[4:] + ' row(s)/run':<34}{'-':>5}{x['rps']:>10.0f}"
              f"{x['p50_ms']:>9.3f}{x['p99_ms']:>9.3f}   ({x['rows_per_s']:.0f} rows/s)")
    print(f"  MSM micro-batching: {r['msm'].get('batching')}")
    print(f"  load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in r['load'])}")
    if "mlflow" in r:
        for c in ("c1", "c16"):
            ratio = r["msm"][c]["rps"] / r["mlflow"][c]["rps"]
            print(f"  MSM / MLflow throughput at concurrency {c[1:]}: {ratio:.2f}x "
                  f"(goal >= {GOAL:g}x: {'met' if ratio >= GOAL else 'MISSED'})")
    else:
        print(f"  MLflow peer failed: {r['mlflow_error']}")
    print(f"  MSM c1 / onnxruntime 1-row runs: {r['msm']['c1']['rps'] / r['ort']['rows1']['rps']:.3f} "
          f"(HTTP + validation + JSON overhead); MSM c16 rows/s / onnxruntime 16-row rows/s: "
          f"{r['msm']['c16']['rps'] / r['ort']['rows16']['rows_per_s']:.3f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=4.0, help="measured seconds per scenario and round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (median req/s is reported)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the text")
    add_report_args(p)
    args = p.parse_args()
    if args.quick:
        args.seconds, args.rounds = min(args.seconds, 1.5), min(args.rounds, 2)
    out = asyncio.run(main(args))
    write_figures(args.out, "msm", figures(out), out, quick=args.quick)
