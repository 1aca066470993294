"""Object detection: an ONNX model whose outputs are boxes [n, 4] (x1, y1, x2, y2 in the declared input's
pixels), scores [n] and labels [n] for one image → mAP@IoU (0.5 by default, all-point interpolated AP per
class, mean over the classes that have ground truth), and per image its TP / FP / FN as the outcome line.

Ground truth per item (`annotation`, or the item): {"boxes": [[x1, y1, x2, y2], ...], "labels": [...]}, or a
list of {"bbox": [x, y, w, h], "label"|"category": ...} (COCO style)."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mtt.evaluator.evaluate import Evaluation, EvaluationCancelled, Samples
from mtt.evaluator.preprocess import InvalidPreprocess, Preprocess


class DetectionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    boxes_output: str = "boxes"
    scores_output: str = "scores"
    labels_output: str = "labels"
    score_threshold: float = Field(0.0, ge=0, le=1)
    iou_threshold: float = Field(0.5, gt=0, le=1)


def gt_boxes(item: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    ann = item.get("annotation", item)
    if isinstance(ann, dict) and "boxes" in ann:
        boxes = np.asarray(ann.get("boxes") or [], dtype=np.float64).reshape(-1, 4)
        return boxes, [str(x) for x in ann.get("labels") or []]
    if isinstance(ann, list):
        corners: list[list[float]] = []
        labels: list[str] = []
        for obj in ann:
            x, y, w, h = obj["bbox"]
            corners.append([x, y, x + w, y + h])
            labels.append(str(obj.get("label", obj.get("category"))))
        return np.asarray(corners, dtype=np.float64).reshape(-1, 4), labels
    raise InvalidPreprocess(f"item {item.get('md5')}: no box annotation (boxes + labels, or a COCO-style list)")


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of a [n, 4] with every box of b [m, 4] → [n, m]."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    ratio: np.ndarray = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)
    return ratio


def match_image(pred_boxes: np.ndarray, pred_scores: np.ndarray, pred_labels: list[str], gt: np.ndarray,
                gt_labels: list[str], thr: float) -> tuple[list[tuple[str, float, bool]], dict[str, int]]:
    """Greedy matching by score, same class, IoU >= thr. → per prediction (class, score, is TP); per-class FN."""
    order = np.argsort(-pred_scores, kind="stable")
    used = np.zeros(len(gt), dtype=bool)
    ious = iou(pred_boxes, gt)
    out = []
    for i in order:
        best, best_j = thr, -1
        for j in range(len(gt)):
            if not used[j] and gt_labels[j] == pred_labels[i] and ious[i, j] >= best:
                best, best_j = float(ious[i, j]), j
        if best_j >= 0:
            used[best_j] = True
        out.append((pred_labels[i], float(pred_scores[i]), best_j >= 0))
    fn: dict[str, int] = defaultdict(int)
    for missed in np.flatnonzero(~used):
        fn[gt_labels[missed]] += 1
    return out, fn


def average_precision(hits: list[tuple[float, bool]], n_gt: int) -> float:
    if n_gt == 0:
        return 0.0
    hits = sorted(hits, key=lambda h: -h[0])
    tp = np.cumsum([h[1] for h in hits]) if hits else np.zeros(0)
    fp = np.cumsum([not h[1] for h in hits]) if hits else np.zeros(0)
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, 1e-12)
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    for k in range(len(p) - 2, -1, -1):
        p[k] = max(p[k], p[k + 1])
    idx = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))


def _session(model_path: Path, prep: Preprocess, params: DetectionParams) -> tuple[Any, str]:
    """An ONNX session of a model that has the three outputs, and its input's name."""
    import onnxruntime as ort

    from mlife_shared.onnx_safety import inspect_onnx

    info = inspect_onnx(model_path)
    names = {o.name for o in info.outputs}
    for out in (params.boxes_output, params.scores_output, params.labels_output):
        if out not in names:
            raise InvalidPreprocess(f"the model has no output {out!r} (outputs: {sorted(names)}); "
                                    "set params.detection")
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session, prep.input_name or info.inputs[0].name


def _predict(session: Any, input_name: str, prep: Preprocess, params: DetectionParams,
             item: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The item's boxes, scores and labels above the score threshold."""
    from PIL import Image

    with Image.open(item["local_path"]) as img:
        x = prep.to_array(img)[None]
    boxes, scores, labels = session.run([params.boxes_output, params.scores_output, params.labels_output],
                                        {input_name: x})
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels_s = [str(v) for v in np.asarray(labels).reshape(-1).tolist()]
    keep = scores >= params.score_threshold
    return boxes[keep], scores[keep], [lab for lab, k in zip(labels_s, keep.tolist(), strict=True) if k]


@dataclass
class _Tally:
    """Matches and misses over the items, per class and per sample."""

    per_class_hits: dict[str, list[tuple[float, bool]]] = field(default_factory=lambda: defaultdict(list))
    n_gt: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    fn_total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ids: list[str] = field(default_factory=list)
    refs: list[str | None] = field(default_factory=list)
    truths: list[dict[str, Any]] = field(default_factory=list)
    preds: list[dict[str, Any]] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    badcases: list[str | None] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, i: int, it: dict[str, Any], boxes: np.ndarray, scores: np.ndarray, labels: list[str],
            iou_threshold: float) -> None:
        gt, gt_labels = gt_boxes(it)
        for lab in gt_labels:
            self.n_gt[lab] += 1
        matched, fn = match_image(boxes, scores, labels, gt, gt_labels, iou_threshold)
        for lab, sc, hit in matched:
            self.per_class_hits[lab].append((sc, hit))
        tp = sum(1 for m in matched if m[2])
        fp = len(matched) - tp
        fn_n = sum(fn.values())
        for lab, n in fn.items():
            self.fn_total[lab] += n
        self.tp, self.fp, self.fn = self.tp + tp, self.fp + fp, self.fn + fn_n
        extra = it["extra"] if isinstance(it.get("extra"), dict) else {}
        self.ids.append(it.get("md5") or str(i))
        self.refs.append(it.get("md5") or it.get("key"))
        self.truths.append({"boxes": gt.tolist(), "labels": gt_labels})
        self.preds.append({"boxes": boxes.round(2).tolist(), "labels": labels, "scores": scores.round(4).tolist(),
                           "tp": tp, "fp": fp, "fn": fn_n})
        self.correct.append(fp == 0 and fn_n == 0)
        self.badcases.append(it.get("badcase_id") or extra.get("badcase_id") or None)

    def evaluation(self, iou_threshold: float) -> Evaluation:
        classes = sorted(set(self.n_gt) | set(self.per_class_hits))
        per_class = {}
        for c in classes:
            hits = self.per_class_hits.get(c, [])
            tp_c = sum(1 for h in hits if h[1])
            per_class[c] = {"ap": average_precision(hits, self.n_gt.get(c, 0)), "tp": tp_c, "fp": len(hits) - tp_c,
                            "fn": self.fn_total.get(c, 0), "support": self.n_gt.get(c, 0)}
        with_gt = [per_class[c]["ap"] for c in classes if self.n_gt.get(c, 0) > 0]
        n = len(self.ids)
        metrics = {"map50" if iou_threshold == 0.5 else f"map{int(iou_threshold * 100)}":
                   float(np.mean(with_gt)) if with_gt else 0.0,
                   "precision": self.tp / max(self.tp + self.fp, 1), "recall": self.tp / max(self.tp + self.fn, 1),
                   "tp": float(self.tp), "fp": float(self.fp), "fn": float(self.fn), "samples": float(n),
                   "errors": float(sum(1 for c in self.correct if not c))}
        samples = _DetectionSamples(self.ids, self.refs, self.truths, np.arange(n), [], np.asarray(self.correct),
                                    self.badcases)
        samples.predictions = self.preds
        return Evaluation(metrics, per_class, classes, [], samples, {})


def evaluate_detection(model_path: Path, items: list[dict[str, Any]], prep: Preprocess, params: DetectionParams, *,
                       cancel: threading.Event | None = None) -> Evaluation:
    session, input_name = _session(model_path, prep, params)
    tally = _Tally()
    for i, it in enumerate(items):
        if cancel is not None and cancel.is_set():
            raise EvaluationCancelled()
        boxes, scores, labels = _predict(session, input_name, prep, params, it)
        tally.add(i, it, boxes, scores, labels, params.iou_threshold)
    return tally.evaluation(params.iou_threshold)


class _DetectionSamples(Samples):
    predictions: list[dict[str, Any]]

    def jsonl(self) -> bytes:
        import json

        return "".join(json.dumps({"sample_id": s, "data_ref": r, "ground_truth": t, "prediction": p,
                                   "correct": bool(ok), "badcase_id": b}) + "\n"
                       for s, r, t, p, ok, b in zip(self.ids, self.refs, self.truth, self.predictions,
                                                    self.correct.tolist(), self.badcases, strict=True)).encode()
