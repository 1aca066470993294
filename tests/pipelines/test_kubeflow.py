"""The Kubeflow pipeline (integrations/kubeflow): its compiled spec, and a run with kfp.local's SubprocessRunner
against the running platform closing the loop of `mlife demo` for the digits — v1 again is blocked by the gate and
its task FAILS naming the regressed badcases, v3 follows it all the same, passes and serves as `production`.

kfp runs from its own venv `.venv-kfp` (integrations/kubeflow/venv.sh installs it on first use: kfp needs
protobuf < 7, the services' venv holds 7); the test reads the compiled YAML with PyYAML, in this venv."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlife.client import Client
from tests.support.processes import exclusive
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
KFP = ROOT / "integrations" / "kubeflow"
PYTHON = ROOT / ".venv-kfp" / "bin" / "python"
BLOCKED = "deploy-3"  # the third `deploy` task of the pipeline: v1 requested again
# kfp.local's log: "Task 'deploy-3' finished with status FAILURE" (coloured on a terminal: stripped first)
FINISHED = re.compile(r"Task '([\w-]+)' finished with status (\w+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# every component with its inputs (parameters and artifacts) and outputs, as the compiled spec declares them
COMPONENTS = {
    "make-digits": ({"limit", "code_dir"}, {"Output", "data"}),
    "import-images": ({"data", "name"}, {"Output"}),
    "group-items": ({"function", "document_id", "name", "test_fraction"}, {"train_dataset_id", "test_dataset_id"}),
    "train-model": ({"function", "model", "params", "label", "train_dataset_id", "test_dataset_id", "code_dir",
                     "timeout"}, {"Output"}),
    "registered-version": ({"model", "task_id", "test_dataset_id", "badcase_dataset_id", "timeout"},
                           {"version_id", "version"}),
    "deploy": ({"deployment", "model", "version_id", "promote", "timeout"}, {"Output"}),
    "serve-and-feedback": ({"function", "deployment", "version_id", "data", "dataset_id", "traffic", "max_feedback",
                            "timeout"}, {"predictions", "wrong", "model_version"}),
    "add-to-test-data": ({"function", "version_id", "test_dataset_id", "timeout"}, {"Output"}),
    "fixed-by-production": ({"function", "version_id", "timeout"}, {"Output"}),
    "test-model": ({"function", "model", "dataset_id", "timeout"}, {"task_id", "accuracy"}),
}
# the DAG: each task and the tasks it waits for (data it takes, or an explicit .after())
EDGES = {
    "make-digits": set(),
    "import-images": {"make-digits"},
    "group-items": {"import-images"},
    "train-model": {"group-items"},  # v1
    "registered-version": {"train-model", "group-items"},
    "deploy": {"registered-version"},
    "serve-and-feedback": {"deploy", "registered-version", "make-digits", "group-items"},
    "add-to-test-data": {"serve-and-feedback", "registered-version", "group-items"},
    "train-model-2": {"add-to-test-data", "group-items"},  # v2: trained once the badcase test set is frozen
    "registered-version-2": {"train-model-2", "group-items", "add-to-test-data"},
    "test-model": {"registered-version-2", "group-items"},  # a testing task of v2 on the test split
    "deploy-2": {"registered-version-2", "test-model"},
    "fixed-by-production": {"deploy-2", "registered-version-2"},
    BLOCKED: {"fixed-by-production", "registered-version"},  # v1 again, once v2 fixed its badcases
    "train-model-3": {BLOCKED, "add-to-test-data", "group-items"},  # v3, after the blocked request
    "registered-version-3": {"train-model-3", "group-items", "add-to-test-data"},
    "deploy-4": {"registered-version-3"},
    "serve-and-feedback-2": {"deploy-4", "registered-version-3", "make-digits", "group-items"},
}


@pytest.fixture(scope="session")
def kfp_venv() -> Path:
    with exclusive("venv-kfp"):  # pytest-xdist workers: one installs, the other waits
        made = subprocess.run(["sh", str(KFP / "venv.sh")], text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, check=False)
    assert made.returncode == 0, f"integrations/kubeflow/venv.sh failed:\n{made.stdout[-4000:]}"
    return PYTHON


def kfp(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m mlife_kubeflow <args>` in .venv-kfp; stdout and stderr together."""
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(PYTHON), "-m", "mlife_kubeflow", *args], env={**base, **(env or {})}, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False)


def producers(task: dict[str, Any]) -> set[str]:
    inputs = task.get("inputs", {})
    found = {p["taskOutputParameter"]["producerTask"] for p in inputs.get("parameters", {}).values()
             if "taskOutputParameter" in p}
    found |= {a["taskOutputArtifact"]["producerTask"] for a in inputs.get("artifacts", {}).values()
              if "taskOutputArtifact" in a}
    return found | set(task.get("dependentTasks", []))


def test_the_compiled_pipeline_is_the_checked_in_yaml_with_its_components_and_dag(kfp_venv: Path,
                                                                                   tmp_path: Path) -> None:
    out = tmp_path / "pipeline.yaml"
    compiled = kfp("compile", str(out))
    assert compiled.returncode == 0, compiled.stdout
    stale = "integrations/kubeflow/pipeline.yaml is stale: .venv-kfp/bin/python -m mlife_kubeflow compile"
    assert out.read_text() == (KFP / "pipeline.yaml").read_text(), stale
    spec = yaml.safe_load(out.read_text())
    assert spec["pipelineInfo"]["name"] == "mlife-digits-loop"

    components = spec["components"]
    assert components["comp-make-digits"]["outputDefinitions"]["artifacts"]["data"]["artifactType"]["schemaTitle"] \
        == "system.Dataset"
    tasks = spec["root"]["dag"]["tasks"]
    declared = {}
    for name, task in tasks.items():  # a task's component: comp-deploy, comp-deploy-2, … (one per use)
        c = components[task["componentRef"]["name"]]
        declared[name] = ({*c["inputDefinitions"].get("parameters", {}), *c["inputDefinitions"].get("artifacts", {})},
                          {*c.get("outputDefinitions", {}).get("parameters", {}),
                           *c.get("outputDefinitions", {}).get("artifacts", {})})
    assert declared == {name: COMPONENTS[re.sub(r"-\d+$", "", name)] for name in EDGES}
    assert {name: producers(t) for name, t in tasks.items()} == EDGES
    assert all(t["cachingOptions"] == {} for t in tasks.values())  # caching off: every task acts on the platform
    # the blocked request is v1's version, not promoted; v3's training runs whatever became of it
    blocked = tasks[BLOCKED]["inputs"]["parameters"]
    assert blocked["version_id"]["taskOutputParameter"] == {"producerTask": "registered-version",
                                                            "outputParameterKey": "version_id"}
    assert blocked["promote"]["runtimeValue"]["constant"] is False
    assert tasks["train-model-3"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert [t for t, spec_ in tasks.items() if "triggerPolicy" in spec_] == ["train-model-3"]
    params = {t: tasks[t]["inputs"]["parameters"]["params"]["runtimeValue"]["constant"]
              for t in ("train-model", "train-model-2", "train-model-3")}
    assert params["train-model"]["C"] < params["train-model-2"]["C"] == params["train-model-3"]["C"]

    # every executor runs its function with kfp's executor in the image, installing nothing at run time
    for name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        assert "kfp.dsl.executor_main" in container["command"][2] and "pip install" not in container["command"][2]
        assert "from mlife_kubeflow import tasks" in container["command"][3], name


@pytest.mark.timeout(1500)
def test_the_pipeline_closes_the_loop_under_kfp_local_and_the_blocked_deployment_fails_its_task(
        stack: Stack, kfp_venv: Path, tmp_path: Path) -> None:
    name = f"digits-kfp-{uuid.uuid4().hex[:8]}"
    run = kfp("run", "--function", name, "--limit", "400", "--pipeline-root", str(tmp_path / "outputs"),
              env={"MLIFE_URL": stack.url, "MLIFE_TOKEN": stack.admin_token}, timeout=1400)
    log = ANSI.sub("", run.stdout)
    (tmp_path / "run.log").write_text(log)
    statuses = dict(FINISHED.findall(log))
    # the run fails, by one task only: the blocked request; every other task of the DAG ran and succeeded
    assert run.returncode == 1 and f"Inner task failed: '{BLOCKED}'" in log, log[-6000:]
    assert statuses == {task: "FAILURE" if task == BLOCKED else "SUCCESS" for task in EDGES}, (statuses, log[-6000:])

    with Client(stack.url, token=stack.admin_token) as c:
        blocked = [d for d in c.objects("GET", "/api/msm/deployments", params={"name": name})
                   if d["status"] == "blocked"]
        assert len(blocked) == 1
        regressed = blocked[0]["gate"]["regressed_badcases"]
        v1 = c.model_version(name, "1")
        assert regressed and [v["model_version_id"] for v in blocked[0]["versions"]] == [v1["id"]]
        # the failed task's log names the gate's verdict and every regressed badcase
        failed = log[log.index(f"Executing task '{BLOCKED}'"):log.index(f"Task '{BLOCKED}' finished")]
        assert "DeploymentBlocked" in failed and f"BLOCKED deployment {blocked[0]['id']}" in failed
        assert all(f"badcase {b}" in failed for b in regressed[:20]), (regressed, failed[-3000:])
        # badcases from v1's testing and from serving feedback make the function's badcase test set; v2 fixed them
        mine = {b["id"]: b for b in c.iter_badcases(function=name)}
        assert {b["source"] for b in mine.values()} == {"testing", "serving"}
        assert set(regressed) <= set(mine) and {mine[b]["status"] for b in regressed} == {"fixed"}
        sets = c.objects("GET", "/api/dam/datasets", params={"name": f"badcase test set: {name}"})
        of_v1 = {b for b, badcase in mine.items() if badcase["model_version"] == "1"}
        assert max(ds["item_count"] for ds in sets) >= len(of_v1) > 0
        tests = [t for t in c.list_tasks(kind="test", limit=500) if t.get("name") == f"{name} testing (kfp)"]
        assert [t["status"] for t in tests] == ["succeeded"], tests  # the testing component's task, of v2
        # v3 passed the gate: live, production, and what the last task was served
        v3 = c.model_version(name, "production")
        assert v3["version"] == "3" and c.deployment(name)["versions"][0]["model_version_id"] == v3["id"]
        assert "(v3) served 20 predictions" in log
