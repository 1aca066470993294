"""The built-in evaluator's run: can the model take the items, then evaluate it and store the outcomes."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path
from typing import Any

from mlife_shared.objectstore import ScopedStore
from mlife_shared.objectstore.base import iterate
from mtt.evaluator.compat import incompatibility
from mtt.evaluator.evaluate import Evaluation, evaluate
from mtt.evaluator.preprocess import Preprocess, parse_preprocess
from mtt.runner.logs import LogSink
from mtt.runner.result import Incompatible, RunFailed, RunResult
from mtt.task.models import Task


def items_of(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [it for m in manifests for it in m["items"]]


async def check_compatible(task: Task, manifests: list[dict[str, Any]], model_path: Path, sink: LogSink) -> None:
    """Before the built-in evaluator runs: can the model take every item (modality, size, input shape)?"""
    items = items_of(manifests)
    reason = await asyncio.to_thread(incompatibility, items, model_path, dict(task.params))
    if reason is not None:
        raise Incompatible(reason)
    sink.line(f"the model can take the {len(items)} items")


async def _evaluation(task: Task, path: Path, items: list[dict[str, Any]], prep: Preprocess | None,
                      batch_size: int, cancel: threading.Event) -> Evaluation:
    if task.params.get("evaluator") != "detection":
        return await asyncio.to_thread(evaluate, path, items, prep, batch_size=batch_size, cancel=cancel,
                                       params=task.params)
    from mtt.evaluator.detection import DetectionParams, evaluate_detection

    if prep is None:
        raise RunFailed("object detection needs params.preprocess (declared, not guessed)")
    try:
        det = DetectionParams.model_validate(task.params.get("detection") or {})
    except ValueError as exc:
        raise RunFailed(f"params.detection is invalid: {exc}") from exc
    return await asyncio.to_thread(evaluate_detection, path, items, prep, det, cancel=cancel)


async def run_evaluator(store: ScopedStore, task: Task, manifests: list[dict[str, Any]], path: Path, sink: LogSink,
                        cancel: threading.Event, result: RunResult, *, batch_size: int) -> None:
    """Evaluate the task's model on its items; the outcomes (one line a sample) and the report are stored."""
    assert task.model
    items = items_of(manifests)
    prep = parse_preprocess(task.params["preprocess"], where="params.preprocess") \
        if "preprocess" in task.params else None
    sink.line(f"evaluating {task.model['name']}:{task.model['version']} on {len(items)} samples")
    ev = await _evaluation(task, path, items, prep, batch_size, cancel)
    sink.line("metrics " + json.dumps(ev.metrics))
    key = f"tasks/{task.id}/outcomes/{task.attempt}.jsonl"
    stored = await store.put(key, iterate(ev.outcomes_jsonl()), content_type="application/x-ndjson")
    await store.put(f"tasks/{task.id}/evaluation/{task.attempt}.json",
                    iterate(json.dumps(ev.report()).encode()), content_type="application/json")
    result.metrics.update(ev.metrics)
    result.evaluation = ev.report()
    result.outcomes_key = store.full_key(key)
    result.artifacts.append({"kind": "outcomes", "key": result.outcomes_key, "size": stored.size})
    result.dataset_id = uuid.UUID(manifests[0]["dataset_id"]) if manifests else None
