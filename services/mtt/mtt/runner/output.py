"""What a command left in its output folder (the SDK's): metrics, models (inspected, stored → `model.uploaded`),
result files and per-sample outcomes (own testing code)."""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import suppress
from pathlib import Path

from mlife_shared.errors import MLifeError
from mlife_shared.events.contracts import ModelUploaded, TestingOutcomeLine
from mlife_shared.objectstore import ScopedStore
from mlife_shared.onnx_safety import inspect_onnx
from mtt.config import Settings
from mtt.evaluator.evaluate import score
from mtt.runner.logs import LogSink
from mtt.runner.result import RunFailed, RunResult
from mtt.task.models import Task
from mtt.task.service import file_chunks


async def collect(store: ScopedStore, settings: Settings, task: Task, work: Path, sink: LogSink,
                  result: RunResult) -> None:
    """What the SDK left in the output folder: metrics, models, results, outcomes."""
    out = work / "out"
    metrics_file = out / "metrics.jsonl"
    if metrics_file.exists():
        for line in metrics_file.read_text().splitlines():
            with suppress(ValueError, KeyError, TypeError):
                rec = json.loads(line)
                result.metrics[str(rec["key"])] = float(rec["value"])
    models = out / "models"
    if models.is_dir():
        for meta_file in sorted(models.glob("*/model.json")):
            meta = json.loads(meta_file.read_text())
            src = meta_file.parent / str(meta.get("file", ""))
            if not src.is_file() or src.parent != meta_file.parent:
                raise RunFailed(f"model {meta.get('name')!r}: its file is missing")
            fmt = str(meta.get("format") or "bin").lower()
            if fmt == "onnx":
                try:
                    await asyncio.to_thread(inspect_onnx, src, max_bytes=settings.max_model_bytes)
                except MLifeError as exc:
                    raise RunFailed(f"model {meta.get('name')!r} rejected: {exc.message}") from exc
            name = str(meta.get("name") or src.stem)[:200]
            key = f"tasks/{task.id}/models/{task.attempt}/{safe_name(name)}/{safe_name(src.name)}"
            stored = await store.put(key, file_chunks(src), content_type="application/octet-stream",
                                          max_size=settings.max_model_bytes)
            model_metrics = {k: float(v) for k, v in (meta.get("metrics") or {}).items()} or dict(result.metrics)
            result.models.append(ModelUploaded(task_id=task.id, model_name=name,
                                               object_key=store.full_key(key), format=fmt,
                                               md5=stored.md5, size=stored.size, metrics=model_metrics))
            result.artifacts.append({"kind": "model", "name": name, "format": fmt,
                                     "key": store.full_key(key), "size": stored.size, "md5": stored.md5})
            sink.line(f"model {name} ({fmt}, {stored.size} bytes) uploaded")
    results = out / "results"
    if results.is_dir():
        for f in sorted(p for p in results.iterdir() if p.is_file()):
            key = f"tasks/{task.id}/results/{task.attempt}/{safe_name(f.name)}"
            stored = await store.put(key, file_chunks(f), max_size=settings.max_upload_bytes)
            result.artifacts.append({"kind": "result", "name": f.name, "key": store.full_key(key),
                                     "size": stored.size})
    outcomes = out / "outcomes.jsonl"
    if outcomes.is_file() and result.outcomes_key is None:
        key = f"tasks/{task.id}/outcomes/{task.attempt}.jsonl"
        truth, pred = [], []
        for n, line in enumerate(outcomes.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                o = TestingOutcomeLine.model_validate_json(line)
            except ValueError as exc:
                raise RunFailed(f"outcomes.jsonl line {n} is not a TestingOutcomeLine: {exc}") from exc
            truth.append("" if o.ground_truth is None else str(o.ground_truth))
            pred.append("" if o.prediction is None else str(o.prediction))
        metrics, per_class, classes, cm = score(truth, pred)
        result.evaluation = {"metrics": metrics, "per_class": per_class, "classes": classes, "confusion": cm,
                             "seconds": {}}
        for k, v in metrics.items():
            result.metrics.setdefault(k, v)
        stored = await store.put(key, file_chunks(outcomes), content_type="application/x-ndjson")
        result.outcomes_key = store.full_key(key)
        result.artifacts.append({"kind": "outcomes", "key": result.outcomes_key, "size": stored.size})
        result.dataset_id = uuid.UUID(task.datasets[0]["dataset_id"]) if task.datasets else None


def safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "file"
    return cleaned[:120]

