"""The evaluators seam: every built-in passes the conformance kit as installed; an outside package's evaluator,
found through its entry point, is listed and runs a real testing task exactly as a built-in does; a task naming an
evaluator that is not active is refused with the active ones."""

from __future__ import annotations

import hashlib
import json
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlife_shared.events.contracts import ModelRegistered
from mlife_shared.objectstore import make_store
from mlife_shared.objectstore.base import iterate, read_all
from mlife_shared.plugins import registry
from mlife_shared.plugins.seams.evaluators import EvaluationResult
from mlife_shared.plugins.testing import check_installed, check_plugin
from mtt.app import SPEC
from mtt.config import Settings
from mtt.evaluator.plugins import Classification
from mtt.task.consumers import on_model_registered
from tests.support.apps import asgi_client
from tests.support.mtt import deliver, task_in
from tests.support.outbox import outbox_events

BUILTINS = ["classification", "regression", "detection", "segmentation", "keypoints"]

# An outside package: a lookup-table "model" (JSON: text → label) scored against each item's label.
OUTSIDE = textwrap.dedent('''
    import json
    from mlife_shared.plugins.seams.evaluators import (EvaluationCancelled, EvaluationRefused, EvaluationRequest,
                                                       EvaluationResult, outcome)

    class Lookup:
        name = "lookup"
        api = ">=1,<2"
        description = "a JSON lookup table: item text → label"
        model_formats = ("json",)

        def files(self, item, params):
            return {}

        def incompatibility(self, request):
            missing = [i for i, it in enumerate(request.items) if "text" not in (it.get("extra") or {})]
            return f"items {missing} have no extra.text" if missing else None

        def evaluate(self, request):
            try:
                table = json.loads(request.model_path.read_text())
            except ValueError as exc:
                raise EvaluationRefused(f"the model is not a JSON table: {exc}") from exc
            lines = []
            for i, it in enumerate(request.items):
                if request.cancel.is_set():
                    raise EvaluationCancelled()
                said = table.get(it["extra"]["text"])
                lines.append(outcome(it, i, ground_truth=it["label"], prediction=said, correct=said == it["label"]))
            right = sum(x["correct"] for x in lines)
            return EvaluationResult(metrics={"accuracy": right / len(lines), "samples": float(len(lines)),
                                             "errors": float(len(lines) - right)}, outcomes=lines,
                                    report={"table_size": len(table)})

        def example(self, folder):
            (folder / "t.json").write_text('{"hi": "greeting"}')
            return EvaluationRequest(folder / "t.json", [{"extra": {"text": "hi"}, "label": "greeting"}], {})
''')


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_conforms_as_installed(name: str) -> None:
    assert check_installed("evaluators", name).name == name


def test_the_seams_documented_example_conforms() -> None:
    from mlife_shared.plugins.seams import evaluators

    code = textwrap.dedent(str(evaluators.__doc__).split("something to run)::", 1)[1])
    namespace: dict[str, Any] = {}
    exec(compile(code, "evaluators-docstring", "exec"), namespace)  # noqa: S102 - our own documentation
    check_plugin("evaluators", namespace["ExactMatch"]())


def test_the_kit_says_what_a_wrong_evaluator_does(tmp_path: Path) -> None:
    class OneShort(Classification):
        def evaluate(self, request):  # type: ignore[no-untyped-def]
            full = super().evaluate(request)
            return EvaluationResult(metrics=full.metrics, outcomes=[json.loads(x) for x in
                                                                    full.jsonl().decode().splitlines()[1:]])

    with pytest.raises(AssertionError, match=r"gave 2 outcomes for 3 items \(one per item, in order\)"):
        check_plugin("evaluators", OneShort())

    class NeverStops(Classification):
        def evaluate(self, request):  # type: ignore[no-untyped-def]
            request.cancel.clear()
            return super().evaluate(request)

    with pytest.raises(AssertionError, match="went on with request.cancel set"):
        check_plugin("evaluators", NeverStops())


@pytest.fixture
def outside_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`lookup-eval` installed as a distribution on sys.path (module + dist-info with its entry point), and this
    process's plugin registry loaded afresh."""
    site = tmp_path / "site"
    dist = site / "lookup_eval-0.3.dist-info"
    dist.mkdir(parents=True)
    (site / "lookup_eval.py").write_text(OUTSIDE)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lookup-eval\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[mlife.evaluators]\nlookup = lookup_eval:Lookup\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_cache", {})
    yield


@pytest.fixture
async def mtt_with_outside(settings: Settings, outside_package: None) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(SPEC, settings) as client:
        yield client


async def lookup_set(settings: Settings) -> dict[str, Any]:
    store = make_store(settings)
    lines = []
    for text, label in (("hello", "greeting"), ("bye", "farewell"), ("hm", "doubt")):
        md5 = hashlib.md5(text.encode()).hexdigest()
        await store.put(f"dam/files/{md5}", iterate(text.encode()))
        lines.append(json.dumps({"md5": md5, "key": f"dam/files/{md5}", "label": label, "extra": {"text": text}}))
    ds = str(uuid.uuid4())
    key = f"dam/datasets/{ds}/manifest.jsonl"
    await store.put(key, iterate(("\n".join(lines) + "\n").encode()))
    await store.put("models/lookup/table.json", iterate(b'{"hello": "greeting", "bye": "greeting"}'))
    return {"datasets": [{"dataset_id": ds, "manifest_key": key}],
            "model": {"name": "lookup", "version": "1", "object_key": "models/lookup/table.json", "format": "json"}}


async def test_an_outside_evaluator_runs_a_testing_task_like_a_builtin(
        mtt_with_outside: httpx.AsyncClient, settings: Settings, start_runner) -> None:  # type: ignore[no-untyped-def]
    mtt = mtt_with_outside
    listed = {p["name"]: p for p in (await mtt.get("/plugins")).json()["plugins"] if p["seam"] == "evaluators"}
    assert sorted(listed) == sorted([*BUILTINS, "lookup"])
    assert listed["lookup"]["state"] == "active" and not listed["lookup"]["builtin"]
    assert listed["lookup"]["distribution"] == "lookup-eval" and listed["lookup"]["version"] == "0.3"
    assert all(listed[b]["builtin"] and listed[b]["state"] == "active" for b in BUILTINS)
    check_installed("evaluators", "lookup")

    body = await lookup_set(settings)
    r = await mtt.post("/tasks", json={"kind": "test", "run": True, **body, "params": {"evaluator": "lookup"}})
    assert r.status_code == 201, r.text
    start_runner("runner-lookup")
    done = await task_in(mtt, r.json()["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    assert done["metrics"] == {"accuracy": pytest.approx(1 / 3), "samples": 3.0, "errors": 2.0}
    (event,) = [e for e in await outbox_events(settings, "testing.completed") if e["data"]["task_id"] == done["id"]]
    raw = await read_all(await make_store(settings).get(event["data"]["outcomes_key"]))
    assert [(x["prediction"], x["correct"]) for x in map(json.loads, raw.decode().splitlines())] == \
        [("greeting", True), ("greeting", False), (None, False)]
    logs = (await mtt.get(f"/tasks/{done['id']}/logs")).text
    assert "evaluator lookup (params.evaluator)" in logs


async def test_a_registered_version_is_tested_by_the_evaluator_its_training_task_named(
        mtt_with_outside: httpx.AsyncClient, settings: Settings, start_runner) -> None:  # type: ignore[no-untyped-def]
    """A JSON model (no ONNX) is tested when its training task named an evaluator that scores JSON models."""
    mtt, body = mtt_with_outside, await lookup_set(settings)
    ds = body["datasets"][0]
    train = (await mtt.post("/tasks", json={"kind": "train", "datasets": [{**ds, "purpose": "test"}],
                                            "params": {"evaluator": "lookup", "lookup": {"any": "setting"}}})).json()
    version = uuid.uuid4()
    await deliver(settings, on_model_registered, ModelRegistered(
        model_version_id=version, name="lookup", version="2", format="json", object_key=body["model"]["object_key"],
        task_id=uuid.UUID(train["id"]), test_dataset_ids=[uuid.UUID(ds["dataset_id"])]))
    (task,) = (await mtt.get("/tasks", params={"kind": "test", "model_version_id": str(version)})).json()
    assert task["params"] == {"evaluator": "lookup", "lookup": {"any": "setting"}}
    start_runner("runner-registered")
    done = await task_in(mtt, task["id"], "succeeded", "failed")
    assert done["status"] == "succeeded" and done["metrics"]["errors"] == 2.0, done["error"]


async def test_a_task_naming_an_evaluator_that_is_not_active_is_refused(mtt: httpx.AsyncClient,
                                                                       settings: Settings) -> None:
    body = await lookup_set(settings)
    r = await mtt.post("/tasks", json={"kind": "test", **body, "params": {"evaluator": "lookup"}})
    assert r.status_code == 422 and r.json()["error"] == "PluginUnavailable"
    assert r.json()["detail"] == "the evaluators plugin 'lookup' is not installed; active ones: classification, " \
                                 "detection, keypoints, regression, segmentation"
    body["model"]["format"] = "pt"
    r = await mtt.post("/tasks", json={"kind": "test", **body, "params": {"evaluator": "segmentation"}})
    assert r.status_code == 422 and "the segmentation evaluator scores ONNX models; this one is 'pt'" in r.text
