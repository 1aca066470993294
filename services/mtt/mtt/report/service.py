"""Per-task report: metrics, confusion matrix, most-confused pairs, weakest classes, and a class-by-class
comparison with another task (e.g. the production model's testing task on the same dataset)."""

from __future__ import annotations

import uuid
from typing import Any

from mtt.report.schemas import Report
from mtt.task.exceptions import TaskStateConflict
from mtt.task.models import Task
from mtt.task.service import TaskUseCase

METRICS = ("precision", "recall", "f1", "ap", "iou", "nme", "pck")


def build(task: Task) -> dict[str, Any]:
    ev = task.evaluation or {}
    classes: list[str] = ev.get("classes", [])
    cm: list[list[int]] = ev.get("confusion", [])
    per_class: dict[str, dict[str, float]] = ev.get("per_class", {})
    square = len(cm) == len(classes) and all(len(row) == len(classes) for row in cm)  # none for detection
    pairs: list[dict[str, Any]] = [{"true": classes[i], "predicted": classes[j], "count": cm[i][j],
              "share_of_true": cm[i][j] / max(1, sum(cm[i]))}
             for i in range(len(classes)) for j in range(len(classes)) if square and i != j and cm[i][j] > 0]
    pairs.sort(key=lambda p: (-p["count"], p["true"], p["predicted"]))
    weakest = sorted(({"class": c, **v} for c, v in per_class.items() if v.get("support", 0) > 0),
                     key=lambda r: (_strength(r), r["class"]))
    return {"classes": classes, "confusion": cm, "per_class": per_class, "most_confused": pairs[:10],
            "weakest_classes": weakest[:5]}


def _strength(row: dict[str, Any]) -> float:
    """How well a class (or keypoint) does, higher is better: F1, AP, IoU, or minus its normalised error."""
    if "nme" in row:
        return -float(row["nme"])
    return float(row.get("f1", row.get("ap", row.get("iou", 0.0))))


def _class_row(name: str, a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    row: dict[str, Any] = {"class": name}
    for m in METRICS:
        if m not in a and m not in b:
            continue
        va, vb = a.get(m), b.get(m)
        row[m] = va
        row[f"other_{m}"] = vb
        row[f"delta_{m}"] = None if va is None or vb is None else va - vb
    return row


def compare(a: Task, b: Task) -> dict[str, Any]:
    pa, pb = (a.evaluation or {}).get("per_class", {}), (b.evaluation or {}).get("per_class", {})
    rows = [_class_row(c, pa.get(c, {}), pb.get(c, {})) for c in sorted(set(pa) | set(pb), key=lambda x: (len(x), x))]
    metrics = {k: {"this": v, "other": b.metrics.get(k), "delta": (v - b.metrics[k]) if k in b.metrics else None}
               for k, v in a.metrics.items()}
    return {"other_task_id": str(b.id), "other_model": b.model, "metrics": metrics, "per_class": rows,
            "worse_classes": [r["class"] for r in rows if (r.get("delta_f1", r.get("delta_ap")) or 0) < 0],
            "better_classes": [r["class"] for r in rows if (r.get("delta_f1", r.get("delta_ap")) or 0) > 0]}


class ReportService(TaskUseCase):
    async def report(self, task_id: uuid.UUID, compare_with: uuid.UUID | None) -> Report:
        task = await self.tasks.get(task_id)
        out = Report(task_id=task.id, kind=task.kind, status=task.status, model=task.model, function=task.function,
                     set_kind=task.set_kind, model_version_id=task.model_version_id, error=task.error,
                     metrics=task.metrics, mlflow_url=self.tasks.read(task).mlflow_url, **build(task))
        if compare_with is not None:
            other = await self.tasks.get(compare_with)
            if not other.evaluation or not task.evaluation:
                raise TaskStateConflict("both tasks need a finished evaluation to be compared")
            if task.function and other.function and task.function != other.function:
                raise TaskStateConflict(f"task {other.id} is of function {other.function!r}, this one of "
                                        f"{task.function!r}: compare tasks of one function")
            out.comparison = compare(task, other)
        return out
