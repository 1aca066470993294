"""`python -m bench`: the runner behind `make bench` merges every bench's figures into one JSON and a table.

One real bench runs through it in its quick mode (MTT's: it needs no server, ~20 s); the table and the regression
check are exercised on documents shaped like the runner's own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.__main__ import compare, table

ROOT = Path(__file__).resolve().parents[2]


def _doc(met: bool, value: float) -> dict[str, object]:
    figure = {"name": "events: throughput MLife/raw", "value": value, "unit": "x", "goal": ">= 0.25x", "met": met,
              "peer": 13023.0, "peer_name": "raw events/s", "detail": ""}
    return {"benches": [{"bench": "events", "ok": True, "command": ".venv/bin/python -m bench.events",
                         "figures": [figure]},
                        {"bench": "dam", "ok": False, "error": "exit 1", "command": ".venv/bin/python -m bench.dam",
                         "figures": []}]}


def test_table_has_a_row_per_figure_and_names_a_failed_bench() -> None:
    text = table(_doc(True, 0.31))
    rows = text.splitlines()
    assert rows[0].startswith("| bench | figure |")
    assert "| `.venv/bin/python -m bench.events` | events: throughput MLife/raw | 0.310× | 13,023 raw events/s |" in text
    assert "| >= 0.25x | yes |" in text
    assert "the bench failed: exit 1" in text


def test_compare_names_a_goal_that_was_met_and_is_missed_now() -> None:
    assert compare(_doc(True, 0.31), _doc(True, 0.40)) == []
    assert compare(_doc(True, 0.31), _doc(False, 0.12)) == [
        "regressed: events: events: throughput MLife/raw: 0.310× -> 0.120×"]
    gone = _doc(True, 0.3)
    gone["benches"][0]["figures"] = []  # type: ignore[index]
    assert compare(_doc(True, 0.31), gone) == ["gone: events: events: throughput MLife/raw"]


def test_a_quick_run_writes_one_json_of_the_benches_figures(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "mtt", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["quick"] is True and [b["bench"] for b in doc["benches"]] == ["mtt"]
    bench = doc["benches"][0]
    assert bench["ok"] and bench["quick"] is True and bench["command"] == ".venv/bin/python -m bench.mtt --quick"
    assert bench["figures"], "the MTT bench reported no figures"
    for f in bench["figures"]:
        assert isinstance(f["value"], (int, float)) and f["value"] > 0, f
        assert f["unit"] and f["goal"] and f["met"] in (True, False, None), f
    assert "| `.venv/bin/python -m bench.mtt --quick` |" in proc.stdout  # the table printed at the end
