"""The closed loop end to end (issue 8): `mlife.demo` drives the platform through the gateway, and the
assertions read only public APIs — badcases from testing and from serving, the gate's refusal of the
regressing version naming the badcases it regressed (and BAM's record of them), the fixed version live and
answering. Once on PostgreSQL + NATS + S3 with MTT's runner as its own process, once on the embedded
default (`mlife up`: SQLite, local objects, NATS from the wheel)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mlife.client import Client
from mlife.demo import Demo, LoopResult
from tests.e2e.conftest import Platform
from tests.embedded.test_mlife_up import TOKEN as EMBEDDED_TOKEN
from tests.embedded.test_mlife_up import start, stop, wait_until_up
from tests.conftest import free_port


def run_loop(url: str, token: str, workdir: Path, lines: list[str]) -> tuple[Client, LoopResult]:
    client = Client(url, token)
    return client, Demo(client, workdir=workdir, timeout=300, out=lines.append).run()


def check(c: Client, r: LoopResult) -> None:
    # badcases born from testing (MTT → testing.completed → BAM) and from serving (MSM feedback → BAM)
    testing = list(c.iter_badcases(source="testing", model_name=r.model))
    serving = list(c.iter_badcases(source="serving", model_name=r.model))
    assert testing and serving, (len(testing), len(serving))
    assert {b["source"] for b in testing} == {"testing"} and {b["source"] for b in serving} == {"serving"}
    assert set(r.serving_badcases) <= {b["id"] for b in serving}

    # the badcase test set DAM built from them, seen by MTT/MSM as such
    ds = c.request("GET", f"/api/dam/datasets/{r.badcase_dataset_id}")
    assert ds["is_badcase_test_set"] and ds["item_count"] >= len(set(r.testing_badcases) | set(r.serving_badcases))

    # the gate: v3 was blocked, the refusal recorded with the badcases it regressed against production v2
    v2, v3, v4 = (r.models[k].version for k in ("v2", "v3", "v4"))
    blocked = c.request("GET", f"/api/msm/deployments/{r.blocked['deployment_id']}")
    assert blocked["status"] == "blocked"
    regressed = blocked["gate"]["regressed_badcases"]
    assert regressed and sorted(regressed) == sorted(r.blocked["regressed_badcases"])
    assert [v["model_version_id"] for v in blocked["versions"]] == [v3["id"]]
    for badcase_id in regressed[:5]:
        outcomes = c.request("GET", f"/api/bam/badcases/{badcase_id}/outcomes")["by_model_version"]
        by_version = {(o["model_name"], str(o["model_version"])): o["passed"] for o in outcomes}
        assert by_version[(r.model, str(v2["version"]))] is True, outcomes
        assert by_version[(r.model, str(v3["version"]))] is False, outcomes
    history = [h for b in regressed for h in c.request("GET", f"/api/bam/badcases/{b}/history")]
    assert any(h.get("new") == "regressed" for h in history), "BAM saw the fixed badcases regress"
    gate_now = c.request("GET", f"/api/msm/model-versions/{v3['id']}/gate")
    assert not gate_now["passed"] and set(regressed) <= set(gate_now["regressed_badcases"])

    # the fixed version is live, `production`, and serves predictions; v2's deployment was superseded
    final = c.request("GET", f"/api/msm/deployments/{r.deployments['v4']['id']}")
    assert final["status"] == "live" and [v["model_version_id"] for v in final["versions"]] == [v4["id"]]
    assert c.request("GET", f"/api/msm/deployments/{r.deployments['v2']['id']}")["status"] == "superseded"
    model = c.model(r.model)
    assert {a["alias"]: a["version"] for a in model["aliases"]}["production"] == str(v4["version"])
    assert r.final_predictions and {p["model_version"] for p in r.final_predictions} == {str(v4["version"])}
    right = sum(p["label"] == p["truth"] for p in r.final_predictions)
    assert right >= len(r.final_predictions) * 0.8, r.final_predictions


@pytest.mark.timeout(1200)
async def test_loop_on_postgresql_nats_s3(distributed: Platform, tmp_path: Path) -> None:
    lines: list[str] = []
    try:
        c, result = await asyncio.to_thread(run_loop, distributed.url, distributed.token, tmp_path, lines)
    except Exception as exc:
        raise AssertionError("\n".join(lines) + "\n" + distributed.logs()) from exc
    try:
        check(c, result)
    finally:
        c.close()


@pytest.mark.timeout(1200)
async def test_loop_on_the_embedded_default(tmp_path: Path) -> None:
    port, log = free_port(), []
    proc = start(tmp_path / "home", port, log)
    lines: list[str] = []
    try:
        await asyncio.to_thread(wait_until_up, proc, log)
        try:
            c, result = await asyncio.to_thread(run_loop, f"http://127.0.0.1:{port}", EMBEDDED_TOKEN,
                                                tmp_path / "work", lines)
        except Exception as exc:
            raise AssertionError("\n".join(lines) + "\n" + "".join(log[-80:])) from exc
        try:
            check(c, result)
        finally:
            c.close()
    finally:
        assert await asyncio.to_thread(stop, proc) == 0
