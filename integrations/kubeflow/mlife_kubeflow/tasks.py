"""What each Kubeflow component does, as plain functions over `mlife.steps` (shared with the Airflow provider):
the components in `components.py` only import and call these, so their bodies stay one line and this code stays
typed and readable. Every function talks to MLife with `Client.from_env()` (MLIFE_URL, MLIFE_TOKEN: a Kubernetes
secret as environment variables on a cluster, the runner's own environment under kfp.local) and prints what it did
(the component's log)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import mlife
from mlife import steps
from mlife.client import Client

# examples/ beside the `mlife` package: the repository's, or an image's copy of it
EXAMPLES = Path(mlife.__file__).resolve().parents[1] / "examples"


def client() -> Client:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # kfp's executor logs at INFO: not every request
    return Client.from_env()


def example(name: str, folder: str = "") -> Path:
    """`folder` if given, else examples/<name> of the MLife checkout the SDK was installed from."""
    path = Path(folder) if folder else EXAMPLES / name
    if not path.is_dir():
        raise steps.StepFailed(f"no example code folder at {path}: pass the folder of your training code")
    return path


def make_digits(out: str, limit: int = 0, code_dir: str = "") -> int:
    """scikit-learn's digits as PNGs plus their manifest.jsonl in `out` (make_dataset.py of the digits example)."""
    script = example("digits", code_dir) / "make_dataset.py"
    argv = [sys.executable, str(script), out] + (["--limit", str(limit)] if limit else [])
    subprocess.run(argv, check=True)
    return len(steps.read_manifest(out))


def import_images(folder: str, name: str) -> str:
    with client() as c:
        doc = steps.import_images(c, folder, name=name, description="imported by the mlife Kubeflow pipeline")
    print(f"DAM: {doc['uploaded']} files uploaded, {doc['skipped']} already there; document {doc['document_id']} "
          f"({doc['items']} rows)")
    return str(doc["document_id"])


def group_items(function: str, document_id: str, name: str, test_fraction: float) -> tuple[str, str]:
    with client() as c:
        g = steps.group_items(c, function, [document_id], name=name, test_fraction=test_fraction)
    print("grouped for '" + function + "': " + ", ".join(f"{d['purpose']} {d['item_count']} items"
                                                          for d in g["datasets"]))
    return str(g["train_dataset_id"]), str(g["test_dataset_id"])


def _mtt_knows(c: Client, dataset_id: str) -> bool | None:
    """True once MTT saw the dataset's dataset.grouped: it then made a training task with it (a draft). Until then
    it refuses a task on that dataset."""
    for t in c.list_tasks(kind="train", limit=500):
        if any(str(d.get("dataset_id")) == dataset_id for d in t.get("datasets", [])):
            return True
    return None


def train(function: str, model: str, train_dataset_id: str, test_dataset_id: str, params: dict[str, Any],
          label: str, code_dir: str, timeout: float) -> str:
    """A training task with the code folder, run to its end; answers the task id."""
    if not (train_dataset_id and test_dataset_id):
        raise steps.StepFailed(f"{label}: no train or test dataset (did the grouping step run?)")
    with client() as c:
        steps.poll(f"MTT seeing dataset {train_dataset_id} (dataset.grouped)",
                   lambda: _mtt_knows(c, train_dataset_id), timeout=timeout)
        task = steps.start_training(c, function=function, model=model, train_dataset_id=train_dataset_id,
                                    test_dataset_id=test_dataset_id, code_dir=example("digits", code_dir),
                                    params=params, name=f"{model} {label}")
        print(f"{label}: training task {task['task_id']} queued with {json.dumps(params)}")
        done = steps.wait_task(c, task["task_id"], timeout=timeout)
    print(f"{label}: training task {done['task_id']} succeeded: {json.dumps(done['metrics'])}")
    return str(done["task_id"])


def test(function: str, model: str, dataset_id: str, timeout: float) -> tuple[str, float]:
    """A testing task of the model's latest version on a dataset (MTT's built-in evaluator), run to its end:
    (task id, accuracy)."""
    with client() as c:
        task = steps.start_testing(c, model=model, dataset_ids=[dataset_id], function=function,
                                   name=f"{model} testing (kfp)")
        print(f"testing task {task['task_id']} of {model} queued on dataset {dataset_id}")
        done = steps.wait_task(c, task["task_id"], timeout=timeout)
    print(f"testing task {done['task_id']} succeeded: {json.dumps(done['metrics'])}")
    return str(done["task_id"]), float(done["metrics"].get("accuracy", 0.0))


def registered_version(model: str, task_id: str, tested_on: list[str], timeout: float) -> tuple[str, str]:
    """The version the training task registered, once tested on every dataset of `tested_on`: (id, number)."""
    with client() as c:
        v = steps.wait_model_version(c, model, task_id, tested_on=[d for d in tested_on if d], timeout=timeout)
    print(f"MSM registered {model} v{v['version']} (id {v['id']}) for function '{v.get('function')}'")
    for t in v.get("testing", []):
        print(f"  tested on dataset {t.get('dataset_id')}: {t['passed']}/{t['samples']} correct "
              f"{json.dumps(t.get('metrics', {}))}")
    return str(v["id"]), str(v["version"])


def deploy(deployment: str, model: str, version_id: str, promote: bool, timeout: float) -> str:
    """Request a deployment of one version and wait for the gate and for it to go live; `promote` then makes the
    version `production`. A request the gate blocks raises DeploymentBlocked: its message names the reasons and the
    regressed badcases, and the component fails with it."""
    with client() as c:
        requested = steps.request_deployment(c, deployment, [version_id])
        print(f"deployment {requested['id']} of {model} version {version_id} requested: {requested['status']}")
        d = steps.wait_deployment(c, str(requested["id"]), until="live", timeout=timeout)  # DeploymentBlocked
        version = next(str(v.get("version")) for v in c.model(model).get("versions", []) if str(v["id"]) == version_id)
        print(f"deployment {d['id']} is live: '{deployment}' serves {model} v{version}")
        if promote:
            steps.promote(c, model, version, reason=f"mlife Kubeflow pipeline: v{version} is live")
            print(f"{model} v{version} is now `production`")
    return str(d["id"])


def _serving(c: Client, deployment: str, folder: str, input_name: str, version: str, timeout: float) -> None:
    """Until `deployment` answers with `version`: MSM's API processes re-read their deployments in the background,
    so a just-live deployment may first answer 404 or with the version it replaced."""
    row = steps.read_manifest(folder)[0]
    x = {input_name: steps.image_input(Path(folder) / str(row["key"]))}

    def answers() -> bool | None:
        return True if str(c.predict(deployment, x, client_id="mlife-kfp").get("model_version")) == version else None

    steps.poll(f"'{deployment}' answering with v{version}", answers, timeout=timeout, interval=0.5)


def _traffic(c: Client, folder: str, dataset_id: str, out: Path) -> str:
    """A manifest in `out` of the folder's images that are in the dataset (keys made absolute): traffic from the
    train split, as the demo sends it, never an image of the test split, whose mispredictions are badcases
    already (a report of one would be merged into it, not filed)."""
    r = c.http.get(f"/api/dam/datasets/{dataset_id}/manifest")  # JSON lines
    if r.status_code >= 400:
        c._answer(r)  # raises the API's error
    wanted = {json.loads(line).get("md5") for line in r.text.splitlines() if line.strip()}
    rows = [{**row, "key": str(Path(folder).resolve() / str(row["key"]))}
            for row in steps.read_manifest(folder) if row["md5"] in wanted]
    (out / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(out)


def serve_and_feedback(function: str, deployment: str, version_id: str, folder: str, dataset_id: str, traffic: int,
                       max_feedback: int, timeout: float) -> tuple[int, int, str]:
    """Predictions on `traffic` images of the dataset through the deployment, the wrong ones (up to `max_feedback`)
    reported as feedback and waited for as serving badcases of the function; (predictions, wrong, served version)."""
    with client() as c, tempfile.TemporaryDirectory() as tmp:
        v = c.object("GET", f"/api/msm/model-versions/{version_id}")
        version, name = str(v["version"]), steps.input_name(v)
        _serving(c, deployment, folder, name, version, timeout)
        before = len(steps.badcase_ids(c, function, source="serving"))
        s = steps.serve_and_feedback(c, deployment, _traffic(c, folder, dataset_id, Path(tmp)), input_name=name,
                                     traffic=traffic, max_feedback=max_feedback, client_id="mlife-kfp")
        print(f"'{deployment}' (v{s['model_version']}) served {s['predictions']} predictions: {s['wrong']} wrong, "
              f"{s['reported']} reported as feedback")
        if s["reported"]:
            found = steps.wait_badcases(c, function, before + int(s["reported"]), source="serving", timeout=timeout)
            print(f"BAM filed them: {len(found)} serving badcases of '{function}'")
    return int(s["predictions"]), int(s["wrong"]), str(s["model_version"])


def add_to_test_data(function: str, version_id: str, test_dataset_id: str, timeout: float) -> str:
    """The function's badcases — the mispredictions of `version_id` on its test split (waited for: BAM files them
    from testing.completed) and every serving one — added to its badcase test set; answers that set's id once DAM
    froze it."""
    with client() as c:
        v = c.object("GET", f"/api/msm/model-versions/{version_id}")
        testing = steps.wait_badcases(c, function, steps.testing_failures(v, test_dataset_id), source="testing",
                                      model_version=str(v["version"]), timeout=timeout)
        ids = sorted(set(testing) | set(steps.badcase_ids(c, function, source="serving")))
        # the SDK call itself: steps.add_to_test_data reads BAM's `added` (a count) as a list
        added = c.add_to_test_data(ids)
        print(f"{added['added']} of {len(ids)} badcases of '{function}' added to test data"
              + (f" ({len(added['skipped'])} skipped)" if added["skipped"] else ""))
        ds = steps.wait_badcase_test_set(c, function, len(ids), timeout=timeout)
    print(f"DAM froze '{steps.BADCASE_TEST_SET}: {function}' v{ds['version']} with {ds['item_count']} items")
    return str(ds["dataset_id"])


def fixed_by_production(function: str, version_id: str, timeout: float) -> int:
    """Waits for BAM to mark `fixed` the badcases the production version passes (model.promoted); answers how many."""
    with client() as c:
        outcomes = c.object("GET", f"/api/msm/model-versions/{version_id}").get("badcase_outcomes", {})
        fixed = steps.wait_badcases(c, function, int(outcomes.get("passed", 0)), status="fixed", timeout=timeout)
    print(f"production fixed {len(fixed)} badcases of '{function}'")
    return len(fixed)
