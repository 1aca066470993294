"""A testing task's evaluator run: the evaluator plugin the task names (or the one inferred), can the model take the
items, the extra files it needs per sample, then the evaluation and its stored outcomes."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path
from typing import Any

from mlife_shared.errors import MLifeError
from mlife_shared.objectstore import ObjectStore, ScopedStore
from mlife_shared.objectstore.base import ObjectNotFound, iterate
from mlife_shared.plugins import seams_of
from mlife_shared.plugins.registry import plugins
from mlife_shared.plugins.seams.evaluators import EvaluationRequest, EvaluationResult, Evaluator
from mtt.evaluator.plugins import chosen
from mtt.files import download
from mtt.runner.logs import LogSink
from mtt.runner.result import Incompatible, RunFailed, RunResult
from mtt.task.models import Task


def items_of(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [it for m in manifests for it in m["items"]]


def evaluator_of(task: Task, model_path: Path) -> tuple[str, str, Evaluator]:
    """(name, how it was chosen, the active plugin); a 422 naming the active ones when it is not active."""
    name, how = chosen(dict(task.params), model_path)
    plugin: Evaluator = plugins(*seams_of("mtt")).get("evaluators", name)
    return name, how, plugin


async def check_compatible(task: Task, manifests: list[dict[str, Any]], model_path: Path, sink: LogSink) -> None:
    """Before the evaluator runs: can the model take every item (modality, size, input shape, ground truth)?"""
    items = items_of(manifests)
    name, how, evaluator = await asyncio.to_thread(evaluator_of, task, model_path)
    sink.line(f"evaluator {name} ({how})")
    request = EvaluationRequest(model_path, items, dict(task.params))
    reason = await asyncio.to_thread(evaluator.incompatibility, request)
    if reason is not None:
        raise Incompatible(reason)
    sink.line(f"the model can take the {len(items)} items")


async def fetch_files(store: ObjectStore, evaluator: Evaluator, items: list[dict[str, Any]], params: dict[str, Any],
                      folder: Path) -> int:
    """The extra files the evaluator asks for per item (a mask…) into `folder`; each item's `local_files`."""
    wanted = [(i, role, key) for i, it in enumerate(items) for role, key in evaluator.files(it, params).items()]
    folder.mkdir(parents=True, exist_ok=True)
    sem = asyncio.Semaphore(8)  # below the S3 client pool (10)

    async def one(i: int, role: str, key: str) -> None:
        dest = folder / f"{i:07d}-{role}{Path(key).suffix[:10]}"
        async with sem:
            try:
                await download(store, key, dest)
            except (ObjectNotFound, MLifeError) as exc:
                raise RunFailed(f"item {i}: its {role} file {key!r} is missing from the store") from exc
        items[i].setdefault("local_files", {})[role] = str(dest)

    await asyncio.gather(*(one(i, role, key) for i, role, key in wanted))
    return len(wanted)


async def run_evaluator(store: ScopedStore, task: Task, manifests: list[dict[str, Any]], path: Path, sink: LogSink,
                        cancel: threading.Event, result: RunResult, *, batch_size: int) -> None:
    """Evaluate the task's model on its items; the outcomes (one line a sample) and the report are stored."""
    assert task.model
    items = items_of(manifests)
    name, _, evaluator = evaluator_of(task, path)
    params = dict(task.params)
    if fetched := await fetch_files(store.store, evaluator, items, params, path.parent.parent / "evaluator-files"):
        sink.line(f"fetched {fetched} files the {name} evaluator needs")
    sink.line(f"evaluating {task.model['name']}:{task.model['version']} on {len(items)} samples ({name})")
    request = EvaluationRequest(path, items, params, cancel=cancel, batch_size=batch_size)
    ev: EvaluationResult = await asyncio.to_thread(evaluator.evaluate, request)
    metrics = {k: float(v) for k, v in ev.metrics.items()}
    report = {**ev.report, "evaluator": name}
    sink.line("metrics " + json.dumps(metrics))
    key = f"tasks/{task.id}/outcomes/{task.attempt}.jsonl"
    stored = await store.put(key, iterate(ev.jsonl()), content_type="application/x-ndjson")
    await store.put(f"tasks/{task.id}/evaluation/{task.attempt}.json",
                    iterate(json.dumps(report).encode()), content_type="application/json")
    result.metrics.update(metrics)
    result.evaluation = report
    result.outcomes_key = store.full_key(key)
    result.artifacts.append({"kind": "outcomes", "key": result.outcomes_key, "size": stored.size})
    result.dataset_id = uuid.UUID(manifests[0]["dataset_id"]) if manifests else None
