"""Object detection: an ONNX model whose outputs are boxes [n, 4] (x1, y1, x2, y2 in the declared input's
pixels), scores [n] and labels [n] for one image → mAP@IoU (0.5 by default, all-point interpolated AP per
class, mean over the classes that have ground truth), and per image its TP / FP / FN as the outcome line.

Ground truth per item (`annotation`, or the item): {"boxes": [[x1, y1, x2, y2], ...], "labels": [...]}, or a
list of {"bbox": [x, y, w, h], "label"|"category": ...} (COCO style)."""

from __future__ import annotations

import threading
from collections import defaultdict
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
        boxes, labels = [], []
        for obj in ann:
            x, y, w, h = obj["bbox"]
            boxes.append([x, y, x + w, y + h])
            labels.append(str(obj.get("label", obj.get("category"))))
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), labels
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
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


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
                best, best_j = ious[i, j], j
        if best_j >= 0:
            used[best_j] = True
        out.append((pred_labels[i], float(pred_scores[i]), best_j >= 0))
    fn: dict[str, int] = defaultdict(int)
    for j in np.flatnonzero(~used):
        fn[gt_labels[j]] += 1
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


def evaluate_detection(model_path: Path, items: list[dict[str, Any]], prep: Preprocess, params: DetectionParams, *,
                       cancel: threading.Event | None = None) -> Evaluation:
    import onnxruntime as ort
    from PIL import Image

    from mlife_shared.onnx_safety import inspect_onnx

    info = inspect_onnx(model_path)
    names = {o.name for o in info.outputs}
    for out in (params.boxes_output, params.scores_output, params.labels_output):
        if out not in names:
            raise InvalidPreprocess(f"the model has no output {out!r} (outputs: {sorted(names)}); "
                                    "set params.detection")
    input_name = prep.input_name or info.inputs[0].name
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    per_class_hits: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    n_gt: dict[str, int] = defaultdict(int)
    fn_total: dict[str, int] = defaultdict(int)
    ids, refs, truths, preds, correct, badcases = [], [], [], [], [], []
    tp_all = fp_all = fn_all = 0
    for i, it in enumerate(items):
        if cancel is not None and cancel.is_set():
            raise EvaluationCancelled()
        with Image.open(it["local_path"]) as img:
            x = prep.to_array(img)[None]
        boxes, scores, labels = session.run([params.boxes_output, params.scores_output, params.labels_output],
                                            {input_name: x})
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        labels_s = [str(v) for v in np.asarray(labels).reshape(-1).tolist()]
        keep = scores >= params.score_threshold
        boxes, scores = boxes[keep], scores[keep]
        labels_s = [lab for lab, k in zip(labels_s, keep.tolist(), strict=True) if k]
        gt, gt_labels = gt_boxes(it)
        for lab in gt_labels:
            n_gt[lab] += 1
        matched, fn = match_image(boxes, scores, labels_s, gt, gt_labels, params.iou_threshold)
        for lab, sc, hit in matched:
            per_class_hits[lab].append((sc, hit))
        tp = sum(1 for m in matched if m[2])
        fp = len(matched) - tp
        fn_n = sum(fn.values())
        for lab, n in fn.items():
            fn_total[lab] += n
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn_n
        extra = it.get("extra") if isinstance(it.get("extra"), dict) else {}
        ids.append(it.get("md5") or str(i))
        refs.append(it.get("md5") or it.get("key"))
        truths.append({"boxes": gt.tolist(), "labels": gt_labels})
        preds.append({"boxes": boxes.round(2).tolist(), "labels": labels_s, "scores": scores.round(4).tolist(),
                      "tp": tp, "fp": fp, "fn": fn_n})
        correct.append(fp == 0 and fn_n == 0)
        badcases.append(it.get("badcase_id") or extra.get("badcase_id") or None)
    classes = sorted(set(n_gt) | set(per_class_hits))
    per_class = {}
    for c in classes:
        hits = per_class_hits.get(c, [])
        tp_c = sum(1 for h in hits if h[1])
        per_class[c] = {"ap": average_precision(hits, n_gt.get(c, 0)), "tp": tp_c, "fp": len(hits) - tp_c,
                        "fn": fn_total.get(c, 0), "support": n_gt.get(c, 0)}
    with_gt = [per_class[c]["ap"] for c in classes if n_gt.get(c, 0) > 0]
    metrics = {"map50" if params.iou_threshold == 0.5 else f"map{int(params.iou_threshold * 100)}":
               float(np.mean(with_gt)) if with_gt else 0.0,
               "precision": tp_all / max(tp_all + fp_all, 1), "recall": tp_all / max(tp_all + fn_all, 1),
               "tp": float(tp_all), "fp": float(fp_all), "fn": float(fn_all), "samples": float(len(items)),
               "errors": float(sum(1 for c in correct if not c))}
    samples = _DetectionSamples(ids, refs, truths, np.arange(len(items)), [], np.asarray(correct), badcases)
    samples.predictions = preds
    return Evaluation(metrics, per_class, classes, [], samples, {})


class _DetectionSamples(Samples):
    predictions: list[dict[str, Any]]

    def jsonl(self) -> bytes:
        import json

        return "".join(json.dumps({"sample_id": s, "data_ref": r, "ground_truth": t, "prediction": p,
                                   "correct": bool(ok), "badcase_id": b}) + "\n"
                       for s, r, t, p, ok, b in zip(self.ids, self.refs, self.truth, self.predictions,
                                                    self.correct.tolist(), self.badcases, strict=True)).encode()
