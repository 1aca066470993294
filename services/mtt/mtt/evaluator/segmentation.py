"""Semantic segmentation: an ONNX model that gives per-pixel class scores [1, K, H, W] (the class is their argmax)
or per-pixel class indices [1, H, W] for one image, scored against a ground-truth mask (a PNG whose pixel values are
class indices) → mIoU, per-class IoU and pixel accuracy over the set, and per image its own mIoU: an image whose mIoU
is below `params.segmentation.miou_threshold` is a misprediction (a badcase in BAM).

The mask of an item is named by its annotation: `{"mask": "<md5 of a DAM file>"}` (or `mask_md5`, or `mask_key`: an
object key). A mask of another size than the model's output is resized to it (nearest neighbour). Pixels equal to
`ignore_index` (255 by default) are not scored."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mlife_shared.plugins.seams.evaluators import (
    EvaluationCancelled,
    EvaluationRefused,
    EvaluationRequest,
    EvaluationResult,
    outcome,
)
from mtt.evaluator.onnx_image import ImageModel, own_settings

_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


class SegmentationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output: str | None = Field(None, description="the output with class scores or indices (default: the first)")
    classes: list[str] | None = Field(None, description="index → class name (default: the index)")
    ignore_index: int | None = Field(255, description="mask value of pixels not scored (null: score every pixel)")
    miou_threshold: float = Field(0.5, ge=0, le=1, description="an image below this mIoU is a misprediction")


def mask_key(item: dict[str, Any]) -> str | None:
    """The object key of the item's ground-truth mask, or None when its annotation names none."""
    ann = item.get("annotation")
    if not isinstance(ann, dict):
        return None
    md5 = ann.get("mask") or ann.get("mask_md5")
    if isinstance(md5, str) and _MD5.match(md5):
        return f"dam/files/{md5.lower()}"
    key = ann.get("mask_key") or (md5 if isinstance(md5, str) and md5 else None)
    return str(key) if key else None


def read_mask(path: str, shape: tuple[int, int], where: str) -> np.ndarray:
    """The mask's class indices at `shape` (h, w)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "P", "I", "I;16"):
                raise EvaluationRefused(f"{where}: the mask is a {img.mode} image; a mask is one channel of class "
                                        "indices (mode L or P)")
            sized = img if img.size == (shape[1], shape[0]) else \
                img.resize((shape[1], shape[0]), Image.Resampling.NEAREST)
            mask: np.ndarray = np.asarray(sized, dtype=np.int64)
            return mask
    except (UnidentifiedImageError, OSError) as exc:
        raise EvaluationRefused(f"{where}: the mask is not a readable image: {exc}") from exc


def predicted_classes(out: np.ndarray, where: str) -> np.ndarray:
    """[1, K, H, W] scores → argmax; [1, H, W] or [H, W] indices as they are."""
    a = np.asarray(out)
    if a.ndim == 4 and a.shape[0] == 1:
        return np.asarray(a[0].argmax(axis=0), dtype=np.int64)
    if a.ndim == 3 and a.shape[0] == 1 and a.dtype.kind in "iu":
        return np.asarray(a[0], dtype=np.int64)
    if a.ndim == 2 and a.dtype.kind in "iu":
        return a.astype(np.int64)
    raise EvaluationRefused(f"{where}: the output has shape {list(a.shape)} ({a.dtype}); segmentation needs class "
                            "scores [1, K, H, W] or class indices [1, H, W]")


def ious(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class IoU of a confusion matrix (rows truth, columns prediction) and which classes occur at all."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    return tp / np.maximum(union, 1), union > 0


@dataclass
class _Tally:
    params: SegmentationParams
    k: int = 0
    cm: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    lines: list[dict[str, Any]] = field(default_factory=list)
    sample_miou: list[float] = field(default_factory=list)

    def name(self, c: int | np.integer[Any]) -> str:
        names = self.params.classes or []
        return names[int(c)] if c < len(names) else str(int(c))

    def add(self, i: int, item: dict[str, Any], truth: np.ndarray, pred: np.ndarray) -> None:
        keep = np.ones(truth.shape, dtype=bool) if self.params.ignore_index is None else \
            truth != self.params.ignore_index
        t, p = truth[keep], pred[keep]
        k = int(max(self.k, t.max(initial=-1) + 1, p.max(initial=-1) + 1))
        if k > self.cm.shape[0]:
            grown = np.zeros((k, k), dtype=np.int64)
            grown[:self.cm.shape[0], :self.cm.shape[1]] = self.cm
            self.cm, self.k = grown, k
        cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
        self.cm += cm
        iou, present = ious(cm)
        miou = float(iou[present].mean()) if present.any() else 1.0
        self.sample_miou.append(miou)
        acc = float(np.trace(cm) / max(int(cm.sum()), 1))
        truth_classes = [self.name(c) for c in np.flatnonzero(cm.sum(axis=1))]
        ann: dict[str, Any] = item["annotation"] if isinstance(item.get("annotation"), dict) else {}
        mask = next((str(ann[k_]) for k_ in ("mask", "mask_md5", "mask_key") if ann.get(k_)), None)
        self.lines.append(outcome(
            item, i, ground_truth={"mask": mask, "classes": truth_classes},
            prediction={"miou": round(miou, 3), "pixel_accuracy": round(acc, 3),
                        "iou": {self.name(c): round(float(iou[c]), 3) for c in np.flatnonzero(present)},
                        "classes": [self.name(c) for c in np.flatnonzero(cm.sum(axis=0))]},
            correct=miou >= self.params.miou_threshold))

    def result(self) -> EvaluationResult:
        iou, present = ious(self.cm)
        support = self.cm.sum(axis=1)
        per_class = {self.name(c): {"iou": float(iou[c]), "support": int(support[c]),
                                    "predicted": int(self.cm[:, c].sum())} for c in np.flatnonzero(present)}
        errors = sum(1 for line in self.lines if not line["correct"])
        metrics = {"miou": float(iou[present].mean()) if present.any() else 0.0,
                   "pixel_accuracy": float(np.trace(self.cm) / max(int(self.cm.sum()), 1)),
                   "mean_sample_miou": float(np.mean(self.sample_miou)) if self.sample_miou else 0.0,
                   "samples": float(len(self.lines)), "errors": float(errors)}
        return EvaluationResult(metrics=metrics, outcomes=self.lines,
                                report={"per_class": per_class, "classes": list(per_class), "confusion": [],
                                        "miou_threshold": self.params.miou_threshold})


def segmentation_params(request: EvaluationRequest) -> SegmentationParams:
    return own_settings(SegmentationParams, request, "segmentation")


def evaluate_segmentation(request: EvaluationRequest) -> EvaluationResult:
    params = segmentation_params(request)
    model = ImageModel(request, "segmentation", [params.output] if params.output else None)
    tally = _Tally(params, k=len(params.classes or []))
    for i, item in enumerate(request.items):
        if request.cancel.is_set():
            raise EvaluationCancelled()
        where = model.where(item, i)
        (out,) = model.run(item, i)
        pred = predicted_classes(out, where)
        path = (item.get("local_files") or {}).get("mask")
        if not path:
            raise EvaluationRefused(f"{where}: no ground-truth mask; set its annotation to {{\"mask\": \"<md5>\"}}")
        tally.add(i, item, read_mask(path, (pred.shape[0], pred.shape[1]), where), pred)
    return tally.result()
