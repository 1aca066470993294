"""The SDK for training and testing code run by MLife (standard library only).

    from mlife.tracking import dataset_items, log_metric, log_params, save_model, save_result

    items = dataset_items()                 # the task's dataset, each item with its local file
    log_params({"C": 1.0})
    log_metric("train_accuracy", 0.98)
    save_model("model.onnx", name="digits")  # → model.uploaded once the run ends well
    save_result("confusion.png")

The MTT runner sets the environment this module reads:

- `MLIFE_TASK_ID`, `MLIFE_OUTPUT_DIR` (what the runner collects when the process exits with 0),
  `MLIFE_DATASET_MANIFEST` (the primary dataset, JSON lines, each item with `local_path`),
  `MLIFE_DATASET_MANIFESTS` (JSON: dataset id → {"purpose", "manifest"}), `MLIFE_TASK_PARAMS` (JSON);
Everything is written to the output folder: the code runs in a sandbox with no network and no credential,
and the runner, once the command ended, sends the metrics (every step) and params to the task's MLflow run and
makes them the task's metrics.

Outside a runner (no `MLIFE_OUTPUT_DIR`), files go to `./mlife-output`; if you set both `MLFLOW_TRACKING_URI`
and `MLFLOW_RUN_ID` yourself, metrics and params also go to that MLflow run at once (REST), so a script can be
tried by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "dataset_items",
    "datasets",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "output_dir",
    "params",
    "save_model",
    "save_outcomes",
    "save_result",
    "task_id",
]


def task_id() -> str | None:
    return os.environ.get("MLIFE_TASK_ID")


def params() -> dict[str, Any]:
    raw = os.environ.get("MLIFE_TASK_PARAMS")
    return json.loads(raw) if raw else {}


def model_path() -> Path | None:
    """The model file a testing task tests (`MLIFE_MODEL_PATH`), for your own testing code; None in training."""
    value = os.environ.get("MLIFE_MODEL_PATH")
    return Path(value) if value else None


def output_dir() -> Path:
    path = Path(os.environ.get("MLIFE_OUTPUT_DIR") or "mlife-output")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def datasets() -> dict[str, dict[str, Any]]:
    """Dataset id → {"purpose": "train"|"test", "manifest": local path} for every dataset of the task."""
    raw = os.environ.get("MLIFE_DATASET_MANIFESTS")
    return json.loads(raw) if raw else {}


def dataset_items(purpose: str | None = None, manifest: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Items of the task's dataset (the first of `purpose` if given), each with `local_path` to its file."""
    if manifest is None and purpose is not None:
        for ds in datasets().values():
            if ds.get("purpose") == purpose:
                manifest = ds["manifest"]
                break
        else:
            return []
    manifest = manifest or os.environ.get("MLIFE_DATASET_MANIFEST")
    if not manifest:
        raise RuntimeError("no dataset: MLIFE_DATASET_MANIFEST is not set (run this through an MLife task)")
    return _read_manifest(manifest)


def _mlflow(endpoint: str, body: dict[str, Any]) -> None:
    uri, run_id = os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_RUN_ID")
    if not uri or not run_id or not uri.startswith(("http://", "https://")):
        return
    data = json.dumps({"run_id": run_id, **body}).encode()
    req = urllib.request.Request(f"{uri.rstrip('/')}/api/2.0/mlflow/{endpoint}", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
    except (urllib.error.URLError, OSError) as exc:  # tracking must not kill training: the file copy remains
        print(f"mlife.tracking: MLflow {endpoint} failed: {exc}", flush=True)


def _append(name: str, record: dict[str, Any]) -> None:
    with open(output_dir() / name, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def log_metric(key: str, value: float, step: int | None = None) -> None:
    value = float(value)
    ts = int(time.time() * 1000)
    _append("metrics.jsonl", {"key": key, "value": value, "step": step or 0, "timestamp": ts})
    _mlflow("runs/log-metric", {"key": key, "value": value, "timestamp": ts, "step": step or 0})


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    ts = int(time.time() * 1000)
    records = [{"key": k, "value": float(v), "step": step or 0, "timestamp": ts} for k, v in metrics.items()]
    for r in records:
        _append("metrics.jsonl", r)
    _mlflow("runs/log-batch", {"metrics": records})


def log_param(key: str, value: Any) -> None:
    log_params({key: value})


def log_params(values: Mapping[str, Any]) -> None:
    for k, v in values.items():
        _append("params.jsonl", {"key": k, "value": str(v)})
    _mlflow("runs/log-batch", {"params": [{"key": k, "value": str(v)[:6000]} for k, v in values.items()]})


def save_model(path: str | os.PathLike[str], *, name: str | None = None, format: str | None = None,
               metrics: Mapping[str, float] | None = None) -> Path:
    """Hand a model file to MLife: it is uploaded when the run ends well (ONNX is checked and served;
    other formats are stored and tracked) and announced as `model.uploaded`."""
    src = Path(path)
    if not src.is_file():
        raise FileNotFoundError(src)
    fmt = (format or src.suffix.lstrip(".") or "bin").lower()
    dest_dir = output_dir() / "models" / (name or src.stem)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.name
    if src.resolve() != dest.resolve():
        shutil.copyfile(src, dest)
    meta = {"name": name or src.stem, "file": src.name, "format": fmt, "metrics": dict(metrics or {})}
    (dest_dir / "model.json").write_text(json.dumps(meta))
    return dest


def save_onnx(model: Any, *, name: str | None = None, metrics: Mapping[str, float] | None = None,
              preprocess: Mapping[str, Any] | None = None) -> Path:
    """`save_model` for an in-memory ONNX `ModelProto` (from skl2onnx, torch.onnx, tf2onnx…): the
    `preprocess` MLife's evaluator and serving apply to raw inputs is written into the model's metadata
    (`mlife.preprocess`), then the file is handed over as `model.onnx`."""
    if preprocess is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "mlife.preprocess", json.dumps(dict(preprocess))
    folder = output_dir() / "models" / (name or "model")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "model.onnx"  # where save_model keeps it: no second copy
    out.write_bytes(model.SerializeToString())
    return save_model(out, name=name, format="onnx", metrics=metrics)


def save_result(path: str | os.PathLike[str], name: str | None = None) -> Path:
    """Keep a result file (plot, table, report) with the task: stored and attached to its MLflow run."""
    src = Path(path)
    dest_dir = output_dir() / "results"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / (name or src.name)
    shutil.copyfile(src, dest)
    return dest


def save_outcomes(lines: Iterable[Mapping[str, Any]]) -> Path:
    """For testing code of your own: per-sample outcomes (sample_id, data_ref, ground_truth, prediction,
    correct, badcase_id) → MLife sends `testing.completed` with them."""
    dest = output_dir() / "outcomes.jsonl"
    with open(dest, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(dict(line)) + "\n")
    return dest
