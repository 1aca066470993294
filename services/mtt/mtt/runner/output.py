"""What a command left in its output folder (the SDK's): metrics, models (inspected, stored → `model.uploaded`),
result files and per-sample outcomes (own testing code).

The folder was written by untrusted code and is read by the runner: only regular files whose real path stays
inside it are read (a symbolic link to the runner's identity key, a FIFO or a device is skipped), each bounded."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

from mlife_shared.errors import MLifeError
from mlife_shared.events.contracts import ModelUploaded, TestingOutcomeLine
from mlife_shared.objectstore import ScopedStore
from mlife_shared.onnx_safety import inspect_onnx
from mtt.config import Settings
from mtt.evaluator.evaluate import score
from mtt.files import file_chunks
from mtt.runner.logs import LogSink
from mtt.runner.result import RunFailed, RunResult
from mtt.task.models import Task


async def collect(store: ScopedStore, settings: Settings, task: Task, work: Path, sink: LogSink,
                  result: RunResult) -> None:
    """What the SDK left in the output folder: metrics, models, results, outcomes."""
    out = work / "out"
    for rec in metric_history(out):
        result.metrics[rec["key"]] = rec["value"]
    if is_inside(out, out / "models", folder=True):
        for meta_file in regular_files(out, "models/*/model.json"):
            await _upload_model(store, settings, task, out, meta_file, sink, result)
    if is_inside(out, out / "results", folder=True):
        for f in regular_files(out, "results/*"):
            key = f"tasks/{task.id}/results/{task.attempt}/{safe_name(f.name)}"
            stored = await store.put(key, file_chunks(f), max_size=settings.max_upload_bytes)
            result.artifacts.append({"kind": "result", "name": f.name, "key": store.full_key(key),
                                     "size": stored.size})
    outcomes = out / "outcomes.jsonl"
    if is_inside(out, outcomes) and result.outcomes_key is None:
        await _upload_outcomes(store, settings, task, out, outcomes, result)


async def _upload_model(store: ScopedStore, settings: Settings, task: Task, out: Path, meta_file: Path,
                        sink: LogSink, result: RunResult) -> None:
    """A model the SDK saved (`models/<name>/model.json` beside its file): checked, stored, to be announced."""
    try:
        meta = json.loads(read_text(out, meta_file, MAX_META_BYTES))
        assert isinstance(meta, dict)
    except (ValueError, AssertionError) as exc:
        raise RunFailed(f"{meta_file.relative_to(out)} is not a JSON object") from exc
    src = meta_file.parent / str(meta.get("file", ""))
    if src.parent != meta_file.parent or not is_inside(out, src):
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
    result.models.append(ModelUploaded(task_id=task.id, model_name=name, object_key=store.full_key(key), format=fmt,
                                       md5=stored.md5, size=stored.size, metrics=model_metrics))
    result.artifacts.append({"kind": "model", "name": name, "format": fmt, "key": store.full_key(key),
                             "size": stored.size, "md5": stored.md5})
    sink.line(f"model {name} ({fmt}, {stored.size} bytes) uploaded")


def _outcome_columns(text: str) -> tuple[list[str], list[str]]:
    """Ground truths and predictions of the outcome lines the task's own code wrote."""
    truth, pred = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            o = TestingOutcomeLine.model_validate_json(line)
        except ValueError as exc:
            raise RunFailed(f"outcomes.jsonl line {n} is not a TestingOutcomeLine: {exc}") from exc
        truth.append("" if o.ground_truth is None else str(o.ground_truth))
        pred.append("" if o.prediction is None else str(o.prediction))
    return truth, pred


async def _upload_outcomes(store: ScopedStore, settings: Settings, task: Task, out: Path, outcomes: Path,
                           result: RunResult) -> None:
    """The outcomes the task's own testing code saved: scored as the built-in evaluator would, and stored."""
    key = f"tasks/{task.id}/outcomes/{task.attempt}.jsonl"
    metrics, per_class, classes, cm = score(*_outcome_columns(read_text(out, outcomes, settings.max_upload_bytes)))
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



MAX_META_BYTES = 1024 * 1024
MAX_RECORDS_BYTES = 64 * 1024 * 1024


def is_inside(out: Path, path: Path, *, folder: bool = False) -> bool:
    """A regular file (or folder) whose real path is inside `out`: no link leads the runner out of it."""
    try:
        st = os.lstat(path)
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    if not (stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)):
        return False
    return real == out.resolve() or out.resolve() in real.parents


def regular_files(out: Path, pattern: str) -> list[Path]:
    if not out.is_dir():
        return []
    return sorted(p for p in out.glob(pattern) if is_inside(out, p))


def read_text(out: Path, path: Path, limit: int) -> str:
    if not is_inside(out, path):
        return ""
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise RunFailed(f"{path.relative_to(out)} is larger than {limit} bytes")
    return data.decode("utf-8", errors="replace")


def _records(out: Path, name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for line in read_text(out, out / name, MAX_RECORDS_BYTES).splitlines():
        with suppress(ValueError):
            rec = json.loads(line)
            if isinstance(rec, dict):
                rows.append(rec)
    return rows


def metric_history(out: Path) -> list[dict[str, Any]]:
    """Every metric the SDK logged (metrics.jsonl: key, value, step, timestamp), as MLflow's log-batch takes them."""
    history = []
    for rec in _records(out, "metrics.jsonl"):
        with suppress(ValueError, KeyError, TypeError):
            history.append({"key": str(rec["key"])[:250], "value": float(rec["value"]),
                            "step": int(rec.get("step") or 0),
                            "timestamp": int(rec.get("timestamp") or time.time() * 1000)})
    return history


def param_records(out: Path) -> list[dict[str, str]]:
    """The params the SDK logged (params.jsonl), the last value of each key."""
    params: dict[str, str] = {}
    for rec in _records(out, "params.jsonl"):
        if "key" in rec:
            params[str(rec["key"])[:250]] = str(rec.get("value"))[:6000]
    return [{"key": k, "value": v} for k, v in params.items()]
