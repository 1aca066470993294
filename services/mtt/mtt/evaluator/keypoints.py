"""Keypoints / landmarks: an ONNX model that gives K points [1, K, 2] (or [1, 2K]) as x, y for one image →
the mean normalised error (`nme`) and PCK at `pck_threshold` (`pck`) over the set, per keypoint the same, and per
image its NME: an image whose NME exceeds `params.keypoints.max_error` (default: the PCK threshold) is a misprediction.

Ground truth per item (`annotation`): `{"keypoints": [[x, y], …]}` or `[[x, y, v], …]` (v = 0: not labelled, not
scored) or COCO's flat `[x1, y1, v1, x2, …]`, in the original image's pixels. Predictions are in the model input's
pixels (`coordinates: "input"`, scaled back to the original image) or in [0, 1] of the image (`"normalized"`).
The error of a point is its distance divided by the sample's scale: the diagonal of the ground-truth points'
bounding box (`normalize: "bbox"`, the default), the image's diagonal (`"image"`), or the distance between two
reference keypoints (`[i, j]`, e.g. the outer eye corners: inter-ocular normalisation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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


class KeypointParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output: str | None = Field(None, description="the output with the points (default: the first)")
    names: list[str] | None = Field(None, description="keypoint index → name (default: the index)")
    coordinates: Literal["input", "normalized"] = "input"
    normalize: Literal["bbox", "image"] | tuple[int, int] = "bbox"
    pck_threshold: float = Field(0.1, gt=0, description="a point is correct when its normalised error is at most this")
    max_error: float | None = Field(None, gt=0, description="an image whose NME exceeds this is a misprediction "
                                                            "(default: pck_threshold)")


def truth_points(item: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(points [K, 2], labelled [K]) of the item's annotation, or None when it has none."""
    ann = item.get("annotation")
    raw = ann.get("keypoints") if isinstance(ann, dict) else None
    if not isinstance(raw, list) or not raw:
        return None
    try:
        if all(isinstance(p, list | tuple) for p in raw):
            a = np.asarray([list(p) + [2] * (3 - len(p)) for p in raw], dtype=np.float64)
        else:
            a = np.asarray(raw, dtype=np.float64).reshape(-1, 3)
    except (TypeError, ValueError):
        return None
    if a.ndim != 2 or a.shape[1] != 3 or not np.isfinite(a).all():
        return None
    return a[:, :2], a[:, 2] > 0


def missing_truth(item: dict[str, Any]) -> str | None:
    return None if truth_points(item) is not None else \
        'no keypoints annotation: set it to {"keypoints": [[x, y], …]} (or [[x, y, v], …], or COCO\'s flat list)'


def scale_of(params: KeypointParams, truth: np.ndarray, labelled: np.ndarray, size: tuple[int, int],
             where: str) -> float:
    if isinstance(params.normalize, tuple):
        i, j = params.normalize
        if max(i, j) >= len(truth) or not (labelled[i] and labelled[j]):
            raise EvaluationRefused(f"{where}: normalize names keypoints {i} and {j}; the sample does not label both")
        d = float(np.linalg.norm(truth[i] - truth[j]))
    elif params.normalize == "image":
        d = float(np.hypot(*size))
    else:
        pts = truth[labelled]
        d = float(np.linalg.norm(pts.max(axis=0) - pts.min(axis=0))) if len(pts) else 0.0
    if d <= 0:
        raise EvaluationRefused(f"{where}: the normalising distance is 0 ({params.normalize}); use another normalize")
    return d


@dataclass
class _Tally:
    params: KeypointParams
    errors: list[np.ndarray] = field(default_factory=list)  # per sample: normalised error per point, NaN unlabelled
    lines: list[dict[str, Any]] = field(default_factory=list)

    def add(self, i: int, item: dict[str, Any], pred: np.ndarray, size: tuple[int, int], where: str) -> None:
        found = truth_points(item)
        if found is None:
            raise EvaluationRefused(f"{where}: {missing_truth(item)}")
        truth, labelled = found
        if len(pred) != len(truth):
            raise EvaluationRefused(f"{where}: the model gives {len(pred)} keypoints, the annotation {len(truth)}")
        norm = np.linalg.norm(pred - truth, axis=1) / scale_of(self.params, truth, labelled, size, where)
        err = np.where(labelled, norm, np.nan)
        self.errors.append(err)
        nme = float(np.nanmean(err)) if labelled.any() else 0.0
        limit = self.params.max_error or self.params.pck_threshold
        self.lines.append(outcome(
            item, i, ground_truth={"keypoints": truth.round(2).tolist()},
            prediction={"keypoints": pred.round(1).tolist(), "nme": round(nme, 4),
                        "pck": round(float(np.mean(err[labelled] <= self.params.pck_threshold)), 4)
                        if labelled.any() else 1.0},
            correct=nme <= limit))

    def result(self) -> EvaluationResult:
        thr = self.params.pck_threshold
        k = max((len(e) for e in self.errors), default=0)
        grid = np.full((len(self.errors), k), np.nan)
        for n, e in enumerate(self.errors):
            grid[n, :len(e)] = e
        seen = ~np.isnan(grid)
        names = self.params.names or []
        per_point = {(names[j] if j < len(names) else str(j)): {
            "nme": float(np.nanmean(grid[:, j])), "pck": float(np.mean(grid[seen[:, j], j] <= thr)),
            "support": int(seen[:, j].sum())} for j in range(k) if seen[:, j].any()}
        nmes = [float(np.nanmean(e)) for e in self.errors if (~np.isnan(e)).any()]
        metrics = {"nme": float(np.mean(nmes)) if nmes else 0.0,
                   "pck": float(np.mean(grid[seen] <= thr)) if seen.any() else 0.0,
                   "samples": float(len(self.lines)),
                   "errors": float(sum(1 for line in self.lines if not line["correct"]))}
        return EvaluationResult(metrics=metrics, outcomes=self.lines,
                                report={"per_class": per_point, "classes": list(per_point), "confusion": [],
                                        "pck_threshold": thr, "normalize": self.params.normalize})


def points(out: np.ndarray, where: str) -> np.ndarray:
    a = np.asarray(out, dtype=np.float64)
    if a.ndim >= 2 and a.shape[0] == 1:
        a = a[0]
    if a.size % 2 or a.ndim > 2 or (a.ndim == 2 and a.shape[1] != 2):
        raise EvaluationRefused(f"{where}: the output has shape {list(np.shape(out))}; keypoints need [1, K, 2] "
                                "or [1, 2K] (x, y per point)")
    return a.reshape(-1, 2)


def keypoint_params(request: EvaluationRequest) -> KeypointParams:
    return own_settings(KeypointParams, request, "keypoints")


def evaluate_keypoints(request: EvaluationRequest) -> EvaluationResult:
    params = keypoint_params(request)
    model = ImageModel(request, "keypoints", [params.output] if params.output else None)
    h, w = model.prep.sample_size()
    tally = _Tally(params)
    for i, item in enumerate(request.items):
        if request.cancel.is_set():
            raise EvaluationCancelled()
        where = model.where(item, i)
        (out,) = model.run(item, i)
        size = model.image_size  # (width, height) of the original image
        unit = np.array(size, dtype=np.float64) / (1.0 if params.coordinates == "normalized" else (w, h))
        tally.add(i, item, points(out, where) * unit, size, where)
    return tally.result()
