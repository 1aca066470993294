"""The steps of MLife's loop as plain functions over `mlife.client.Client`, JSON-able in and out: what the
Airflow provider's operators (integrations/airflow) and the Kubeflow components call, so a pipeline tool adds
only its own wiring.

    from mlife.client import Client
    from mlife import steps
    c = Client.from_env()
    doc = steps.import_images(c, "digits/", name="digits-1")           # a folder of make_dataset.py's output
    ds = steps.group_items(c, "digits", [doc["document_id"]], name="digits-1")
    task = steps.start_training(c, function="digits", model="digits-1", code_dir="examples/digits",
                                train_dataset_id=ds["train_dataset_id"], test_dataset_id=ds["test_dataset_id"])
    steps.wait_task(c, task["task_id"])
    version = steps.wait_model_version(c, "digits-1", task["task_id"], tested_on=[ds["test_dataset_id"]])
    d = steps.request_deployment(c, "digits-1", [version["id"]])
    steps.wait_deployment(c, d["id"])                 # raises DeploymentBlocked naming the regressed badcases

Every wait comes in two forms: `check_*` looks once (None: not yet; raises `StepFailed` when it never will) for
a deferrable trigger, and `wait_*` polls it until done or a timeout."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx

from mlife.client import Client, MLifeAPIError

T = TypeVar("T")
TRANSIENT = (MLifeAPIError, httpx.HTTPError, OSError)  # a service restarting: keep polling
BADCASE_TEST_SET = "badcase test set"


def transient(exc: BaseException) -> bool:
    """An error worth polling through (a service restarting, a timeout), not a refused request."""
    if isinstance(exc, MLifeAPIError):
        return exc.status >= 500 or exc.status in (404, 409, 429)
    return isinstance(exc, TRANSIENT)


class StepFailed(RuntimeError):
    """A step failed or did not complete in time; the message says which and why."""


class DeploymentBlocked(StepFailed):
    """The deployment gate blocked a request; the message names its reasons and the regressed badcases."""

    def __init__(self, message: str, deployment: dict[str, Any]) -> None:
        super().__init__(message)
        self.deployment = deployment
        self.regressed_badcases: list[str] = list(deployment.get("gate", {}).get("regressed_badcases", []))


def poll(what: str, check: Callable[[], T | None], *, timeout: float = 600.0, interval: float = 1.0) -> T:
    """`check()` until it answers something; a `StepFailed` it raises ends the wait, transient errors do not;
    past `timeout` seconds a `StepFailed` names `what`."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = check()
            if value is not None:
                return value
        except StepFailed:
            raise
        except TRANSIENT as exc:
            if not transient(exc):
                raise  # a refused request (auth, validation) will not get better by waiting
            last = exc
        if time.monotonic() > deadline:
            raise StepFailed(f"{what} did not happen within {timeout:.0f}s" + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


# --- data in, group items ------------------------------------------------------------------------------------

def read_manifest(folder: str | Path) -> list[dict[str, Any]]:
    """The rows of `folder/manifest.jsonl` as examples/*/make_dataset.py writes it: md5, key (a file path
    relative to the folder), label."""
    path = Path(folder) / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def import_images(client: Client, folder: str | Path, *, name: str, description: str = "",
                  workers: int = 4) -> dict[str, Any]:
    """The files a folder's manifest lists uploaded to DAM (the MD5 precheck skips known ones) and one document
    of them with their labels; `workers` uploads at a time. Answers document_id, uploaded, skipped, items."""
    folder = Path(folder)
    rows = read_manifest(folder)
    known: set[str] = set()
    for i in range(0, len(rows), 1000):
        known |= set(client.check_files([str(r["md5"]) for r in rows[i:i + 1000]])["existing"])
    todo = list({str(r["md5"]): r for r in rows if r["md5"] not in known}.values())
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda r: client.upload_file(folder / str(r["key"]), name=str(r["key"]), md5=str(r["md5"])),
                      todo))
    uploaded = len(todo)
    with tempfile.TemporaryDirectory() as tmp:
        doc = Path(tmp) / f"{name}.jsonl"
        doc.write_text("".join(json.dumps({"md5": r["md5"], "annotation": str(r["label"])}) + "\n" for r in rows))
        d = client.import_document(doc, name=name, format="json", description=description)
    return {"document_id": str(d["id"]), "uploaded": uploaded, "skipped": len(rows) - uploaded, "items": len(rows)}


def group_items(client: Client, function: str, document_ids: list[str], *, name: str, test_fraction: float = 0.2,
                seed: int = 0) -> dict[str, Any]:
    """Group documents into a train and a test dataset for `function` (→ dataset.grouped). Answers
    train_dataset_id, test_dataset_id and the datasets."""
    g = client.group_dataset(name, document_ids, split={"train": 1 - test_fraction, "test": test_fraction},
                             stratify=True, seed=seed, function=function)
    by = {d["purpose"]: d for d in g["datasets"]}
    return {"train_dataset_id": str(by["train"]["id"]), "test_dataset_id": str(by["test"]["id"]),
            "datasets": g["datasets"]}


# --- tasks --------------------------------------------------------------------------------------------------

def _task_summary(task: dict[str, Any]) -> dict[str, Any]:
    return {"task_id": str(task["id"]), "kind": task.get("kind"), "status": task.get("status"),
            "function": task.get("function"), "metrics": task.get("metrics") or {}, "error": task.get("error")}


def start_training(client: Client, *, function: str, model: str, train_dataset_id: str, test_dataset_id: str,
                   code_dir: str | Path, params: dict[str, Any] | None = None, command: str = "python train.py",
                   name: str = "") -> dict[str, Any]:
    """A training task with its code (a local folder, zipped), queued at once. The model it uploads is
    registered under `model` for `function` and tested on `test_dataset_id`."""
    task = client.create_task("train", [{"dataset_id": train_dataset_id, "purpose": "train"},
                                        {"dataset_id": test_dataset_id, "purpose": "test"}],
                              code_dir=code_dir, command=command, params={**(params or {}), "model_name": model},
                              function=function, name=name or f"{model} training", run=True)
    return _task_summary(task)


def start_testing(client: Client, *, model: str, dataset_ids: list[str], function: str | None = None,
                  name: str = "") -> dict[str, Any]:
    """A testing task of the latest registered version of `model` on datasets, with MTT's built-in evaluator."""
    task = client.create_task("test", list(dataset_ids), model_name=model, function=function,
                              name=name or f"{model} testing", run=True)
    return _task_summary(task)


def check_task(client: Client, task_id: str) -> dict[str, Any] | None:
    """The task once it succeeded; None while it runs; StepFailed (with its log's tail) if it failed."""
    task = client.task(task_id)
    if task["status"] in ("failed", "cancelled"):
        logs = str(client.task_logs(task_id).get("text", ""))[-1500:]
        raise StepFailed(f"task {task_id} {task['status']}: {task.get('error')}\n{logs}")
    return _task_summary(task) if task["status"] == "succeeded" else None


def wait_task(client: Client, task_id: str, *, timeout: float = 600.0, interval: float = 1.0) -> dict[str, Any]:
    return poll(f"task {task_id} finishing (is an MTT runner up?)", lambda: check_task(client, task_id),
                timeout=timeout, interval=interval)


# --- the registry --------------------------------------------------------------------------------------------

def version_of_task(client: Client, model: str, task_id: str) -> dict[str, Any] | None:
    """The version of `model` that training task `task_id` registered, or None (not yet)."""
    try:
        versions: list[dict[str, Any]] = client.model(model).get("versions", [])
    except MLifeAPIError as exc:
        if exc.status == 404:
            return None
        raise
    return next((v for v in versions if str(v.get("task_id")) == str(task_id)), None)


def check_model_version(client: Client, model: str, task_id: str,
                        tested_on: Iterable[str] = ()) -> dict[str, Any] | None:
    """The version detail (with its `testing` results) once `task_id`'s model is registered and tested on every
    dataset of `tested_on`; None until then."""
    version = version_of_task(client, model, task_id)
    if version is None:
        return None
    detail: dict[str, Any] = client.object("GET", f"/api/msm/model-versions/{version['id']}")
    done = {str(t.get("dataset_id")) for t in detail.get("testing", [])}
    return detail if set(tested_on) <= done else None


def wait_model_version(client: Client, model: str, task_id: str, *, tested_on: Iterable[str] = (),
                       timeout: float = 600.0, interval: float = 1.0) -> dict[str, Any]:
    wanted = list(tested_on)
    return poll(f"MSM registering the model of task {task_id}" + (f" and its tests on {wanted}" if wanted else ""),
                lambda: check_model_version(client, model, task_id, wanted), timeout=timeout, interval=interval)


def input_name(version: dict[str, Any]) -> str:
    """The name of a registered version's (first) input, from its signature."""
    inputs = (version.get("signature") or {}).get("inputs") or []
    return str(inputs[0]["name"]) if inputs else "X"


def testing_failures(version: dict[str, Any], dataset_id: str) -> int:
    """How many samples of a dataset a tested version got wrong (BAM files each as a badcase)."""
    result = next(t for t in version.get("testing", []) if str(t.get("dataset_id")) == str(dataset_id))
    return int(result["samples"]) - int(result["passed"])


def promote(client: Client, model: str, version: str, *, alias: str = "production", reason: str = "") -> Any:
    """Move an alias (`production`: BAM then marks what it passes fixed) to a version number."""
    return client.set_alias(model, alias, str(version), reason=reason or f"{alias}: {model} v{version}")


# --- deployments and the gate ---------------------------------------------------------------------------------

def request_deployment(client: Client, name: str, version_ids: list[str],
                       thresholds: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """POST a deployment; one the gate blocked at once (409) is answered as its record, not raised:
    `check_deployment` / `wait_deployment` say what became of it."""
    try:
        return client.deploy(name, [str(v) for v in version_ids], thresholds=thresholds)
    except MLifeAPIError as exc:
        if exc.status != 409 or exc.error != "GateBlocked" or not isinstance(exc.detail, dict):
            raise
        return client.object("GET", f"/api/msm/deployments/{exc.detail['deployment_id']}")


def blocked_message(client: Client, d: dict[str, Any]) -> str:
    """What a blocked deployment says: the gate's reasons, then each regressed badcase by id with what
    regressed (production passes it, the candidate fails it) and its expected label."""
    gate = d.get("gate") or {}
    lines = [f"the deployment gate BLOCKED deployment {d['id']} ('{d.get('name')}'): "
             + ("; ".join(gate.get("reasons", [])) or "no reason given")]
    regressed = list(gate.get("regressed_badcases", []))
    production = {str(v.get("production_version")) for v in gate.get("versions", []) if v.get("production_version")}
    where = f"production v{', v'.join(sorted(production))}" if production else "production"
    if regressed:
        lines.append(f"{len(regressed)} regressed badcase(s) ({where} passes them, the candidate fails them):")
    for badcase_id in regressed[:20]:
        try:
            b = client.badcase(badcase_id)
            about = f"expected {b.get('ground_truth')!r}, first reported as {b.get('prediction')!r} ({b.get('source')})"
        except TRANSIENT:
            about = "details unavailable"
        lines.append(f"  - badcase {badcase_id}: {about}")
    if len(regressed) > 20:
        lines.append(f"  … and {len(regressed) - 20} more")
    return "\n".join(lines)


def check_deployment(client: Client, deployment_id: str, *, until: str = "live") -> dict[str, Any] | None:
    """The deployment once it is `live` (until="live") or the gate has decided (until="decided"); None before.
    Raises DeploymentBlocked when the gate blocked it, StepFailed when it failed or was replaced."""
    d = client.object("GET", f"/api/msm/deployments/{deployment_id}")
    status = d["status"]
    if status == "blocked":
        raise DeploymentBlocked(blocked_message(client, d), d)
    if status in ("failed", "rolled_back", "superseded", "cancelled"):
        raise StepFailed(f"deployment {deployment_id} {status}: {(d.get('history') or [])[-1:]}")
    if status == "awaiting_tests":
        return None
    return d if until == "decided" or status == "live" else None


def wait_deployment(client: Client, deployment_id: str, *, until: str = "live", timeout: float = 600.0,
                    interval: float = 1.0) -> dict[str, Any]:
    return poll(f"deployment {deployment_id} becoming {until} (the gate may wait for its tests)",
                lambda: check_deployment(client, deployment_id, until=until), timeout=timeout, interval=interval)


# --- serving, feedback, badcases --------------------------------------------------------------------------------

def image_input(path: str | Path, scale: float = 1.0 / 255.0) -> list[float]:
    """A grayscale image as the flat vector of pixels the example models take (needs Pillow)."""
    from PIL import Image

    with Image.open(path) as im:
        return [p * scale for p in im.convert("L").tobytes()]


def predicted_label(outputs: dict[str, Any]) -> str:
    """The label a served prediction answered (its `label` output, else its first), as a string."""
    value: Any = outputs.get("label", next(iter(outputs.values())))
    while isinstance(value, list):
        value = value[0]
    return str(value)


def dataset_md5s(client: Client, dataset_id: str) -> set[str]:
    """The MD5s of a DAM dataset's items (its manifest, JSON lines)."""
    r = client.http.get(f"/api/dam/datasets/{dataset_id}/manifest")
    if r.status_code >= 400:
        client._answer(r)  # raises the API's error
    return {str(json.loads(line).get("md5")) for line in r.text.splitlines() if line.strip()}


def serve_and_feedback(client: Client, deployment: str, folder: str | Path, *, input_name: str = "X",
                       traffic: int = 100, max_feedback: int = 6, from_dataset: str | None = None,
                       client_id: str = "mlife-pipeline") -> dict[str, Any]:
    """Predict on `traffic` images of a folder's manifest (spread over it; only those of the dataset
    `from_dataset` if given: the train split, as `mlife demo` does, so no served image is a test split's badcase
    already) through the deployment `deployment` and report the wrong answers (up to `max_feedback`) as feedback
    by the image's DAM MD5 (serving.feedback → BAM files badcases). Answers predictions, wrong, reported,
    model_version."""
    folder = Path(folder)
    rows = read_manifest(folder)
    if from_dataset:
        members = dataset_md5s(client, from_dataset)
        rows = [r for r in rows if str(r["md5"]) in members]
    sample = rows[::max(1, len(rows) // max(traffic, 1))][:traffic]
    wrong: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
    served = ""
    for row in sample:
        answer = client.predict(deployment, {input_name: image_input(folder / str(row["key"]))}, client_id=client_id)
        served = str(answer.get("model_version", served))
        label = predicted_label(answer["outputs"])
        if label != str(row["label"]):
            wrong.append((row, label, answer))
    for row, label, answer in wrong[:max_feedback]:
        client.feedback(deployment, str(row["label"]), input_ref=str(row["md5"]), prediction=label,
                        prediction_id=answer.get("prediction_id"), model_version_id=answer.get("model_version_id"),
                        client_id=client_id)
    return {"predictions": len(sample), "wrong": len(wrong), "reported": min(len(wrong), max_feedback),
            "model_version": served}


def badcase_ids(client: Client, function: str, **filters: Any) -> list[str]:
    return [str(b["id"]) for b in client.iter_badcases(function=function, **filters)]


def check_badcases(client: Client, function: str, at_least: int, **filters: Any) -> list[str] | None:
    """The ids of `function`'s badcases the filters select once there are `at_least` of them."""
    found = badcase_ids(client, function, **filters)
    return found if len(found) >= at_least else None


def wait_badcases(client: Client, function: str, at_least: int, *, timeout: float = 600.0, interval: float = 1.0,
                  **filters: Any) -> list[str]:
    return poll(f"BAM filing {at_least} badcases of '{function}' ({filters})",
                lambda: check_badcases(client, function, at_least, **filters), timeout=timeout, interval=interval)


def add_to_test_data(client: Client, badcases: list[str]) -> dict[str, Any]:
    """Badcases appended to their function's badcase test set in DAM (badcase.test_data_requested)."""
    ids = sorted(set(badcases))
    added = 0
    skipped: list[Any] = []  # {id, reason}
    for i in range(0, len(ids), 1000):
        answer = client.add_to_test_data(ids[i:i + 1000])
        added += int(answer.get("added", 0))
        skipped += answer.get("skipped", [])
    return {"requested": len(ids), "added": added, "skipped": skipped}


def check_badcase_test_set(client: Client, function: str, at_least: int) -> dict[str, Any] | None:
    """The function's badcase test set once DAM froze a version holding `at_least` items."""
    name = f"{BADCASE_TEST_SET}: {function}"
    for ds in client.objects("GET", "/api/dam/datasets", params={"name": name}):
        if ds.get("is_badcase_test_set") and int(ds.get("item_count", 0)) >= at_least:
            return {"dataset_id": str(ds["id"]), "version": ds.get("version"), "item_count": ds["item_count"]}
    return None


def wait_badcase_test_set(client: Client, function: str, at_least: int, *, timeout: float = 600.0,
                          interval: float = 1.0) -> dict[str, Any]:
    return poll(f"DAM freezing the badcase test set of '{function}' with {at_least} items",
                lambda: check_badcase_test_set(client, function, at_least), timeout=timeout, interval=interval)
