"""The example DAG (integrations/airflow/.../mlife_digits_loop.py) closes the loop of `mlife demo` for the digits
under a real Apache Airflow 3 (`airflow dags test`, its own venv, SQLite metadata) against the running platform:
every waiting operator deferred to its trigger; v1 again is blocked by the gate and its task FAILED with the
regressed badcases named; v3 passed and serves as `production`."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from pathlib import Path

import pytest

from mlife import steps
from mlife.client import Client
from tests.pipelines.conftest import Airflow
from tests.support.stack import Stack

DAG_ID = "mlife_digits_loop"
DEFERRED = ("train_v1", "train_v2", "train_v3")  # a task just queued cannot have finished yet


def task_states(home: Path) -> dict[str, str]:
    with sqlite3.connect(home / "airflow.db") as db:
        return dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (DAG_ID,)).fetchall())


def task_output(out: str, task_id: str) -> str:
    """What `airflow dags test` printed while it ran one task (it runs them one at a time, in process)."""
    parts = re.split(r"\[DAG TEST\] starting task_id=(\w+)", out)
    return "".join(text for name, text in zip(parts[1::2], parts[2::2], strict=True) if name == task_id)


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
    with sqlite3.connect(airflow.home / "airflow.db") as db:  # the failed task is not a leaf: the run succeeded
        assert db.execute("SELECT state FROM dag_run WHERE dag_id = ?", (DAG_ID,)).fetchall() == [("success",)]

    with Client(stack.url, token=stack.admin_token) as c:
        # the gate blocked v1 again: the deployment is kept, blocked, with the badcases v1 fails and v2 passes
        deployments = c.objects("GET", "/api/msm/deployments", params={"name": name})
        blocked = [d for d in deployments if d["status"] == "blocked"]
        assert len(blocked) == 1, deployments
        regressed = blocked[0]["gate"]["regressed_badcases"]
        assert regressed
        # ... and the failed task says so, naming every regressed badcase (the first 20) and the gate's reason
        failed_log = task_output(out, "deploy_v1_again")
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
        testing = list(c.iter_badcases(function=name, source="testing", model_version="1"))
        serving = list(c.iter_badcases(function=name, source="serving"))
        assert testing and serving
        added = {b["id"] for b in testing + serving}  # v1's: what add_to_test_data sent (v2's came later)
        sets = c.objects("GET", "/api/dam/datasets", params={"name": f"badcase test set: {name}"})
        assert [ds["item_count"] for ds in sets] == [len(added)], sets
        assert set(regressed) <= added
        # what v1 regressed is what production (v2, then v3) passes: BAM marks those badcases fixed
        fixed = steps.poll("BAM marking the regressed badcases fixed", lambda: (
            found if set(regressed) <= set(found := steps.badcase_ids(c, name, status="fixed")) else None),
            timeout=300)
        assert set(regressed) <= set(fixed)

        # the testing operator's task: v2 on the test split, succeeded
        tests = [t for t in c.list_tasks(kind="test", function=name, limit=500)
                 if t.get("name", "").startswith(f"{name} ({DAG_ID}")]
        assert [t["status"] for t in tests] == ["succeeded"], tests

    # the operators that start a task deferred to their trigger (`dags test` runs each trigger in line)
    for task_id in DEFERRED:
        assert "running trigger in line" in task_output(out, task_id), task_id
    # test_v2 is not deferrable: it polled in the worker (and succeeded, above)
    assert "test_v2" in out and "running trigger in line" not in task_output(out, "test_v2")
