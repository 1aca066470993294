"""Idle memory of `mlife up`: the embedded platform (NATS, the four services, the gateway and MLflow when
`.venv-mlflow` exists: `sh services/mtt/scripts/mlflow-venv.sh`) started in a temporary MLIFE_HOME on free ports,
awaited (/readyz), left idle ~10 s, then optionally a few requests (a login and some GETs) and idle again.

Per process (every descendant of the launcher, and the launcher itself) it reads /proc/<pid>/smaps_rollup:
RSS (resident, shared pages counted in every process that maps them), PSS (proportional: a shared page is
split between the processes mapping it, so the sum is the honest total) and USS (private pages only).
Goal row: PSS total <= 600 MiB, with MLflow. The RSS total is printed too, as `mlife up` itself prints it.
With a lazy MLflow: measured once its first use has started it, and (when the launcher stops an idle MLflow:
MLIFE_MLFLOW_IDLE_SECONDS, set short for the run) again once it has been stopped for idleness.
Run: .venv/bin/python -m bench.memory [--idle 10] [--no-requests] [--quick] [--out PATH]
(no database or NATS of the test environment is needed: `mlife up` brings its own.)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._support import add_report_args, figure, free_port, write_figures

GOAL_MIB = 600.0
TOKEN = "mlf_bench_memory_" + uuid.uuid4().hex
ROOT = Path(__file__).resolve().parents[1]


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children_of(p))
    return out


def rollup(pid: int) -> dict[str, float]:
    """RSS, PSS and USS (private clean + dirty) in MiB from smaps_rollup."""
    kb: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            kb[parts[0].rstrip(":")] = int(parts[1])
    uss = kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)
    return {"rss": kb.get("Rss", 0) / 1024, "pss": kb.get("Pss", 0) / 1024, "uss": uss / 1024}


def label(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    joined = " ".join(words)
    if "mlflow" in joined:
        return "mlflow: " + " ".join(Path(w).name for w in words[:4])[:50]
    if "-m" in words:
        i = words.index("-m")
        return " ".join(words[i + 1:i + 3])
    if words and words[0].endswith("nats-server"):
        return "nats-server"
    if words and words[0].endswith("/mlife"):
        return "mlife up (launcher)"
    return " ".join(Path(w).name for w in words[:3])[:60]


def snapshot(root: int) -> list[dict[str, Any]]:
    rows = []
    for pid in tree(root):
        try:
            rows.append({"pid": pid, "process": label(pid), **rollup(pid)})
        except OSError:
            continue  # gone in between
    return rows


def totals(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {k: round(sum(r[k] for r in rows), 1) for k in ("rss", "pss", "uss")}


def show(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"{'process':<44}{'pid':>8}{'RSS MiB':>10}{'PSS MiB':>10}{'USS MiB':>10}")
    for r in sorted(rows, key=lambda r: -r["pss"]):
        print(f"{r['process']:<44}{r['pid']:>8}{r['rss']:>10.1f}{r['pss']:>10.1f}{r['uss']:>10.1f}")
    t = totals(rows)
    print(f"{'total (' + str(len(rows)) + ' processes)':<52}{t['rss']:>10.1f}{t['pss']:>10.1f}{t['uss']:>10.1f}")
    print("(RSS total counts shared pages once per process: an overstatement; PSS total is the honest sum)")


def idle_stop_supported() -> bool:
    """Whether this `mlife up` stops an idle MLflow (MLIFE_MLFLOW_IDLE_SECONDS)."""
    from mlife.launcher import LauncherConfig

    return "mlflow_idle_seconds" in {f.name for f in dataclasses.fields(LauncherConfig)}


def start(home: Path, port: int, log: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLIFE_TEST_", "MLIFE_NATS_URL", "MLIFE_DATABASE_URL"))}
    env.update(MLIFE_HOME=str(home), MLIFE_PORT=str(port), MLIFE_NATS_PORT=str(free_port()),
               MLIFE_ADMIN_TOKEN=TOKEN, MLFLOW_DISABLE_TELEMETRY="true", ORT_DISABLE_TELEMETRY="1",
               MLIFE_LOG_LEVEL=os.environ.get("MLIFE_LOG_LEVEL", "WARNING"), **(extra_env or {}))
    mlflow = ROOT / ".venv-mlflow/bin/mlflow"
    if mlflow.is_file():
        env.setdefault("MLIFE_MLFLOW_BIN", str(mlflow))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlife"), "up"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)

    threading.Thread(target=read, daemon=True).start()
    return proc


def wait_up(proc: subprocess.Popen[str], log: list[str], timeout: float = 300) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if any("MLife is up" in line for line in log):
            return time.monotonic() - t0
        if proc.poll() is not None:
            raise RuntimeError("mlife up exited:\n" + "".join(log[-60:]))
        time.sleep(0.2)
    raise RuntimeError("mlife up was not ready in time:\n" + "".join(log[-60:]))


def some_requests(base: str) -> int:
    """A login (the token at /me) and a few list GETs through the gateway; returns how many answered 200."""
    ok = 0
    paths = ["/api/gateway/me", "/api/bam/badcases?limit=20", "/api/dam/datasets", "/api/mtt/tasks",
             "/api/msm/models", "/readyz", "/openapi.json"]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
        for _ in range(3):
            for p in paths:
                ok += c.get(p).status_code == 200
    return ok


def start_mlflow(url: str, timeout: float = 180) -> float:
    """The first connection to MLflow's port starts it (mlife up's lazy proxy); seconds until /health answers."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if httpx.get(f"{url}/health", timeout=150).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("MLflow did not answer through mlife up's proxy")


def mlflow_gone(root: int, log: list[str], timeout: float) -> float:
    """Seconds until mlife up has stopped its idle MLflow (its line printed, no MLflow process left)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        stopped = any("MLflow stopped after" in line for line in log)
        if stopped and not any(label(pid).startswith("mlflow") for pid in tree(root)):
            return time.monotonic() - t0
        time.sleep(0.5)
    raise RuntimeError("mlife up did not stop its idle MLflow:\n" + "".join(log[-60:]))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="mlife-bench-memory-"))
    port, log = free_port(), list[str]()
    # long enough for the measure once MLflow is started (args.idle / 2 after its start), short for the run
    idle_stop = args.idle + 5 if idle_stop_supported() else 0.0
    proc = start(home, port, log, {"MLIFE_MLFLOW_IDLE_SECONDS": f"{idle_stop:g}"} if idle_stop else None)
    try:
        ready_s = wait_up(proc, log)
        time.sleep(args.idle)
        idle = snapshot(proc.pid)
        show(f"idle {args.idle:.0f} s after ready ({ready_s:.1f} s to ready)", idle)
        after: list[dict[str, Any]] = []
        answered = 0
        if not args.no_requests:
            answered = some_requests(f"http://127.0.0.1:{port}")
            time.sleep(args.idle / 2)
            after = snapshot(proc.pid)
            show(f"after {answered} answered GETs and {args.idle / 2:.0f} s idle", after)
        lazy = re.search(r"MLflow at (http://127\.0\.0\.1:\d+) \(started on its first use\)", "".join(log))
        started: list[dict[str, Any]] = []
        if lazy:
            started_s = start_mlflow(lazy.group(1))
            time.sleep(args.idle / 2)
            started = snapshot(proc.pid)
            show(f"MLflow started by a GET /health through its lazy proxy ({started_s:.1f} s), "
                 f"then {args.idle / 2:.0f} s idle", started)
        stopped: list[dict[str, Any]] = []
        if lazy and idle_stop:
            gone_s = mlflow_gone(proc.pid, log, timeout=idle_stop + 120)
            time.sleep(args.idle / 2)
            stopped = snapshot(proc.pid)
            show(f"MLflow stopped after {idle_stop:g} s idle (MLIFE_MLFLOW_IDLE_SECONDS; gone {gone_s:.1f} s "
                 f"after the measure above), then {args.idle / 2:.0f} s idle", stopped)
        mlflow = bool(lazy) or any("mlflow" in r["process"] for r in idle)
        return {"ready_s": ready_s, "idle": idle, "after": after, "answered": answered, "mlflow": mlflow,
                "mlflow_lazy": bool(lazy), "mlflow_started": started, "mlflow_idle_stop_s": idle_stop,
                "mlflow_stopped": stopped}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--idle", type=float, default=10.0, help="seconds idle after ready before measuring")
    p.add_argument("--no-requests", action="store_true", help="skip the second measure after a few GETs")
    add_report_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.idle = min(args.idle, 5.0)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"load average {os.getloadavg()}")
    raw = measure(args)
    idle, after = totals(raw["idle"]), totals(raw["after"]) if raw["after"] else None
    with_mlflow = "with MLflow" if raw["mlflow"] else "WITHOUT MLflow (.venv-mlflow missing)"
    figures = [
        figure("memory: mlife up idle PSS total", idle["pss"], "MiB", f"<= {GOAL_MIB:.0f} MiB",
               idle["pss"] <= GOAL_MIB, detail=f"{len(raw['idle'])} processes, {with_mlflow}"),
        figure("memory: mlife up idle RSS total", idle["rss"], "MiB", "", None,
               detail="shared pages counted once per process (overstates)"),
        figure("memory: mlife up idle USS total", idle["uss"], "MiB", "", None, detail="private pages only"),
    ]
    if after is not None:
        figures.append(figure("memory: mlife up PSS total after requests", after["pss"], "MiB",
                              f"<= {GOAL_MIB:.0f} MiB", after["pss"] <= GOAL_MIB,
                              detail=f"{raw['answered']} GETs answered 200"))
    if raw["mlflow_started"]:
        started = totals(raw["mlflow_started"])
        figures.append(figure("memory: mlife up PSS total once MLflow is started", started["pss"], "MiB",
                              f"<= {GOAL_MIB:.0f} MiB", started["pss"] <= GOAL_MIB,
                              detail="MLflow starts on its first use (a task tracked, its UI opened)"))
    if raw["mlflow_stopped"]:
        stopped = totals(raw["mlflow_stopped"])
        figures.append(figure("memory: mlife up PSS after MLflow's idle stop", stopped["pss"], "MiB",
                              f"<= {GOAL_MIB:.0f} MiB", stopped["pss"] <= GOAL_MIB,
                              detail=f"MLflow stopped once idle (MLIFE_MLFLOW_IDLE_SECONDS={raw['mlflow_idle_stop_s']:g} "
                                     "for the run, 600 by default); its next use starts it again"))
    if raw["mlflow_lazy"]:
        with_mlflow += " (configured; started on its first use)"
    print(f"\nGOAL: idle PSS total {idle['pss']:.1f} MiB (goal <= {GOAL_MIB:.0f}) {with_mlflow}; "
          f"RSS total {idle['rss']:.1f} MiB; load average {os.getloadavg()}")
    write_figures(args.out, "memory", figures, raw, quick=args.quick)


if __name__ == "__main__":
    main()
