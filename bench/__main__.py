"""`python -m bench`: every bench, one after the other, and one JSON of all their figures.

Each bench is `python -m bench.<name> [--quick] --out <file>` in its own process (a bench that fails or times out
is recorded as such, and the others still run); the figures are merged into one document,
`bench/results/latest.json` (`quick.json` with `--quick`), and printed as a table. `--table FILE` prints the
README's Markdown table from such a document without running anything. A regression shows as a changed figure or
a `met` that went false between two documents (`--compare OLD.json`).

Run inside the test environment (PostgreSQL, NATS, S3): `make bench` (everything, ~30 min on 2 cores) or
`make bench QUICK=1` (a smoke run of every bench, a few minutes). Never exits non-zero on a missed goal; it exits
1 when a bench itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCHES = ["events", "bam", "dam", "msm", "mtt", "gateway", "load", "memory"]
RESULTS = Path(__file__).resolve().parent / "results"


def run_one(name: str, quick: bool, timeout: float, extra: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"mlife-bench-{name}-") as tmp:
        out = Path(tmp) / "figures.json"
        cmd = [sys.executable, "-m", f"bench.{name}", "--out", str(out), *(["--quick"] if quick else []), *extra]
        started = time.monotonic()
        print(f"== bench.{name}: {' '.join(cmd[1:])}", flush=True)
        try:
            proc = subprocess.run(cmd, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
            code: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            code = f"timed out after {timeout:.0f} s"
        seconds = round(time.monotonic() - started, 1)
        command = f".venv/bin/python -m bench.{name}" + (" --quick" if quick else "")
        if code == 0 and out.exists():
            doc: dict[str, Any] = json.loads(out.read_text())
            doc.update(seconds=seconds, command=command, ok=True)
            return doc
        return {"bench": name, "ok": False, "error": f"exit {code}" if isinstance(code, int) else code,
                "seconds": seconds, "command": command, "figures": []}


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text}{'×' if unit == 'x' else ' ' + unit if unit else ''}"


def table(doc: dict[str, Any]) -> str:
    """The README's table: one row per figure, with its bench's command."""
    lines = ["| bench | figure | measured | same-run peer | goal | met |", "|---|---|---|---|---|---|"]
    for bench in doc["benches"]:
        if not bench.get("ok"):
            lines.append(f"| `{bench['command']}` | (the bench failed: {bench.get('error')}) | | | | |")
            continue
        for f in bench["figures"]:
            peer = f"{fmt(f.get('peer'), '')} {f.get('peer_name') or ''}".strip() if f.get("peer") is not None else ""
            met = {True: "yes", False: "**no**", None: "—"}[f.get("met")]
            detail = f" ({f['detail']})" if f.get("detail") else ""
            lines.append(f"| `{bench['command']}` | {f['name']}{detail} | {fmt(f['value'], f['unit'])} | {peer} | "
                         f"{f['goal']} | {met} |")
    return "\n".join(lines)


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Figures whose goal was met in `old` and is not in `new`, and figures that disappeared."""
    def rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {f"{b['bench']}: {f['name']}": f for b in doc["benches"] for f in b.get("figures", [])}
    before, after = rows(old), rows(new)
    out = [f"gone: {k}" for k in before if k not in after]
    out += [f"regressed: {k}: {fmt(before[k]['value'], before[k]['unit'])} -> {fmt(after[k]['value'], after[k]['unit'])}"
            for k in before if k in after and before[k].get("met") is True and after[k].get("met") is False]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run of every bench (small sizes)")
    p.add_argument("--only", action="append", choices=BENCHES, help="run only this bench (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="where the merged JSON goes "
                   "(default bench/results/latest.json, or quick.json with --quick)")
    p.add_argument("--timeout", type=float, default=None, help="seconds at most per bench "
                   "(default 1,800; 300 with --quick)")
    p.add_argument("--table", type=Path, default=None, help="print the Markdown table of this JSON and exit")
    p.add_argument("--compare", type=Path, default=None, help="list goals met in this older JSON and missed now")
    args = p.parse_args(argv)
    if args.table is not None:
        print(table(json.loads(args.table.read_text())))
        return 0
    timeout = args.timeout or (300.0 if args.quick else 1800.0)
    started = time.time()
    benches = [run_one(name, args.quick, timeout, []) for name in (args.only or BENCHES)]
    doc = {"quick": args.quick, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
           "seconds": round(time.time() - started, 1), "cores": os.cpu_count(), "benches": benches}
    out = args.out or RESULTS / ("quick.json" if args.quick else "latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.compare is not None and args.compare.exists():
        doc["regressions"] = compare(json.loads(args.compare.read_text()), doc)
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print("\n" + table(doc))
    for line in doc.get("regressions", []):
        print(line)
    failed = [b["bench"] for b in benches if not b.get("ok")]
    print(f"\nfigures: {out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
