"""The example DAG (integrations/airflow/.../mlife_digits_loop.py) closes the loop of `mlife demo` for the digits
under a real Apache Airflow 3 (`airflow dags test`, its own venv, SQLite metadata) against the running platform:
every waiting operator deferred to its trigger; v1 again is blocked by the gate and its task FAILED with the
regressed badcases named; v3 passed and serves as `production`."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from mlife.client import Client
from tests.pipelines.conftest import Airflow
from tests.support.stack import Stack

DAG_ID = "mlife_digits_loop"
DEFERRED = ("train_v1", "v1_registered", "deploy_v1", "train_v2", "v2_registered", "test_v2", "deploy_v2",
            "train_v3", "v3_registered", "deploy_v3")


def task_states(home: Path) -> dict[str, str]:
    with sqlite3.connect(home / "airflow.db") as db:
        return dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (DAG_ID,)).fetchall())


def task_logs(home: Path, task_id: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (home / "logs").rglob("*.log")
                     if f"task_id={task_id}" in str(p))


@pytest.mark.timeout(1800)
def test_dag_closes_the_loop_and_a_blocked_deployment_fails_its_task(stack: Stack, airflow: Airflow,
                                                                     digits_data: Path) -> None:
    run = uuid.uuid4().hex[:8]
    name = f"digits-{run}"
    conf = {"run": run, "data_dir": str(digits_data)}
    result = airflow.run("dags", "test", DAG_ID, "-c", json.dumps(conf))
    out = result.stdout
    states = task_states(airflow.home)
    assert states.get("deploy_v1_again") == "failed", (states, out[-6000:])
    others = {t: s for t, s in states.items() if t != "deploy_v1_again"}
    assert set(others.values()) == {"success"}, (others, out[-6000:])

    with Client(stack.url, token=stack.admin_token) as c:
        # the gate blocked v1 again: the deployment is kept, blocked, with the badcases v1 fails and v2 passes
        deployments = c.objects("GET", "/api/msm/deployments", params={"name": name})
        blocked = [d for d in deployments if d["status"] == "blocked"]
        assert len(blocked) == 1, deployments
        regressed = blocked[0]["gate"]["regressed_badcases"]
        assert regressed
        # ... and the failed task says so, naming every regressed badcase (the first 20) and the gate's reason
        failed_log = task_logs(airflow.home, "deploy_v1_again") + out
        assert f"BLOCKED deployment {blocked[0]['id']}" in failed_log
        assert all(b in failed_log for b in regressed[:20]), regressed
        assert "production v2 passes them, the candidate fails them" in failed_log

        # v1, v2 and v3 registered; v3 is live and production, and serves
        model = c.model(name)
        by_number = {v["version"]: v for v in model["versions"]}
        assert len(by_number) == 3, model["versions"]
        production = c.model_version(name, "production")
        assert production["version"] == max(by_number, key=int)
        live = c.deployment(name)
        assert live["status"] == "live" and live["versions"][0]["model_version_id"] == production["id"]

        # the loop's badcases: from testing and serving, in the function's badcase test set; v2 fixed some
        testing = list(c.iter_badcases(function=name, source="testing"))
        serving = list(c.iter_badcases(function=name, source="serving"))
        assert testing and serving
        sets = c.objects("GET", "/api/dam/datasets", params={"name": f"badcase test set: {name}"})
        assert any(ds["item_count"] >= len({b["id"] for b in testing + serving}) for ds in sets), sets
        assert set(regressed) <= {b["id"] for b in testing + serving}
        assert list(c.iter_badcases(function=name, status="fixed"))

        # the testing operator's task: v2 on the test split, succeeded
        tests = [t for t in c.list_tasks(kind="test", limit=500) if t.get("name", "").startswith(f"{name} ({DAG_ID}")]
        assert [t["status"] for t in tests] == ["succeeded"], tests

    # every waiting operator handed its wait to the trigger (dags test runs triggers in line)
    for task_id in DEFERRED:
        assert "MLifePollTrigger" in task_logs(airflow.home, task_id) or task_id in out
    assert out.count("running trigger in line") >= 1, out[-3000:]
