"""The built-in evaluator: an ONNX model on a dataset manifest (image files, tensor files, table rows) →
classification (accuracy, per-class precision / recall / F1, the confusion matrix) or regression (MAE, RMSE,
R²) metrics and one outcome line per sample (TestingOutcomeLine)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mlife_shared.onnx_safety import OnnxInfo, inspect_onnx
from mlife_shared.plugins.seams.evaluators import EvaluationCancelled
from mtt.evaluator.inputs import Group, image_sample, load_inputs
from mtt.evaluator.preprocess import FLOATS, METADATA_KEY, InvalidPreprocess, Preprocess, main_input, parse_preprocess
from mtt.evaluator.tensor import item_ref

__all__ = ["Evaluation", "EvaluationCancelled", "OnnxClassifier", "evaluate", "score"]


def ground_truth(item: dict[str, Any]) -> Any:
    """The label of a manifest item: `label`, else `annotation` (a scalar, or its `label`/`class` field)."""
    if item.get("label") not in (None, ""):
        return item["label"]
    ann = item.get("annotation")
    if isinstance(ann, dict):
        for k in ("label", "class", "category"):
            if ann.get(k) not in (None, ""):
                return ann[k]
        return None
    return ann


def _sort_key(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


class Outcomes(Protocol):
    def jsonl(self) -> bytes: ...


@dataclass
class Evaluation:
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    classes: list[str]
    confusion: list[list[int]]
    samples: Outcomes | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "per_class": self.per_class, "classes": self.classes,
                "confusion": self.confusion, "seconds": self.seconds}

    @property
    def outcomes(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.outcomes_jsonl().decode().splitlines()]

    def outcomes_jsonl(self) -> bytes:
        return self.samples.jsonl() if self.samples is not None else b""


@dataclass
class Samples:
    """Per-sample outcomes as columns; serialised to JSON lines of TestingOutcomeLine on demand."""

    ids: list[str]
    refs: list[str | None]
    truth: list[Any]
    pred_idx: np.ndarray
    classes: list[str]
    correct: np.ndarray
    badcases: list[str | None]
    features: list[dict[str, Any] | None] | None = None

    def jsonl(self) -> bytes:
        js = _js
        cls = [js(c) for c in self.classes]
        parts = [f'{{"sample_id":{js(sid)},"data_ref":{js(ref)},"ground_truth":{js(t)},"prediction":{cls[p]},'
                 f'"correct":{"true" if ok else "false"},"badcase_id":{js(bc)}{_features(f)}}}\n'
                 for sid, ref, t, p, ok, bc, f in zip(self.ids, self.refs, self.truth, self.pred_idx.tolist(),
                                                      self.correct.tolist(), self.badcases,
                                                      self.features or _nones(len(self.ids)), strict=True)]
        return "".join(parts).encode()


def _nones(n: int) -> list[None]:
    return [None] * n


def _features(f: dict[str, Any] | None) -> str:
    return "" if f is None else ',"features":' + json.dumps(f, ensure_ascii=False, default=str)


def item_columns(items: list[dict[str, Any]]) -> tuple[list[str], list[str | None], list[str | None],
                                                       list[dict[str, Any] | None] | None]:
    """Sample ids, data refs, badcase ids and (when any item has them) feature rows of the outcome lines."""
    ids: list[str] = [it.get("md5") or it.get("id") or str(i) for i, it in enumerate(items)]
    refs: list[str | None] = [it.get("md5") or it.get("key") for it in items]
    badcases: list[str | None] = [it.get("badcase_id") or ((it.get("extra") or {}).get("badcase_id")
                                         if isinstance(it.get("extra"), dict) else None) or None for it in items]
    features: list[dict[str, Any] | None] = [it["features"] if isinstance(it.get("features"), dict) else None for it in items]
    return ids, refs, badcases, features if any(f is not None for f in features) else None


def _js(v: Any) -> str:
    if v is None:
        return "null"
    if type(v) is str:
        return encode_basestring(v)
    return json.dumps(v, ensure_ascii=False)


def _indices(truth: list[str], pred: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Class names (numeric order when they are numbers) and the index of each truth / prediction."""
    pred_vals, pred_inv = np.unique(pred, return_inverse=True)
    pred_names = [str(v) for v in pred_vals.tolist()]
    classes = sorted(set(truth) | set(pred_names), key=_sort_key)
    index = {c: i for i, c in enumerate(classes)}
    t = np.fromiter(map(index.__getitem__, truth), dtype=np.int64, count=len(truth))
    p = np.asarray([index[n] for n in pred_names], dtype=np.int64)[pred_inv.reshape(-1)] if len(pred) else \
        np.zeros(0, np.int64)
    return classes, t, p


def score(truth: list[str] | np.ndarray, pred: list[str] | np.ndarray) -> tuple[
        dict[str, float], dict[str, dict[str, float]], list[str], list[list[int]]]:
    metrics, per_class, classes, cm, _, _ = _score([str(t) for t in truth], np.asarray(pred, dtype=str))
    return metrics, per_class, classes, cm


def _score(truth: list[str], pred: np.ndarray) -> tuple[dict[str, float], dict[str, dict[str, float]], list[str],
                                                         list[list[int]], np.ndarray, np.ndarray]:
    classes, t, p = _indices(truth, pred) if len(truth) else ([], np.zeros(0, np.int64), np.zeros(0, np.int64))
    n = len(classes)
    cm = np.bincount(t * n + p, minlength=n * n).reshape(n, n) if n else np.zeros((0, 0), dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    per_class = {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                     "support": int(support[i])} for i, c in enumerate(classes)}
    present = support > 0
    total = len(truth)
    metrics = {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "samples": float(total),
        "errors": float(total - tp.sum()),
    }
    return metrics, per_class, classes, cm.tolist(), p, t == p


class OnnxClassifier:
    """An ONNX session with the declared preprocessing, checked against the model's input shape. Without a
    declaration (task params or model metadata) it takes tensor files only. `target` overrides the
    declared one: classification (labels, or class names for a scores-only model) or regression (values)."""

    def __init__(self, model_path: Path, prep: Preprocess | None, *, info: OnnxInfo | None = None,
                 threads: int = 0, target: str | None = None) -> None:
        import onnxruntime as ort

        self.info = info or inspect_onnx(model_path)  # rejects pickles & escaping external data; runs nothing
        if prep is None:
            prep = declared_in_model(model_path)
        self.prep = prep
        self.target = target or (prep.target if prep is not None else "classification")
        inputs = {t.name: t for t in self.info.inputs}
        if prep is not None and prep.input_name is not None and prep.input_name not in inputs:
            raise InvalidPreprocess(f"set preprocess.input_name to one of {sorted(inputs)}")
        name = (prep.input_name if prep is not None else None) or \
            (self.info.inputs[0].name if len(self.info.inputs) == 1 else None)
        self.input_name = name
        self.input_dtype = np.dtype(inputs[name].dtype) if name and inputs[name].dtype in FLOATS else None
        if prep is not None and prep.kind != "tensor":
            main_input(prep, self.info.inputs)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        self._outputs(prep)

    def _outputs(self, prep: Preprocess | None) -> None:
        outs = self.info.outputs
        label_out = prep.label_output if prep is not None else None
        if self.target == "regression":
            label_out = label_out or next((o.name for o in outs if o.dtype in FLOATS), None)
            if label_out is None:
                raise InvalidPreprocess("regression needs a float output with the predicted value; the model has "
                                        f"{[(o.name, o.dtype) for o in outs]} (set preprocess.label_output)")
        if label_out is None:
            for o in outs:
                if o.dtype.startswith(("int", "uint")) or o.dtype in ("object", "onnx:8", "<U0"):
                    label_out = o.name
                    break
        if label_out is None and (prep is None or prep.classes is None):
            raise InvalidPreprocess("the model has no integer/string label output: set preprocess.classes "
                                    "(index → class) or preprocess.label_output")
        self.label_output = label_out
        self.score_output = None if label_out else outs[0].name

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Labels (or regression values) of a batch of samples for the main input."""
        if self.input_name is None:
            raise InvalidPreprocess("the model has several inputs: set preprocess.input_name")
        return self.run({self.input_name: x.astype(self.input_dtype, copy=False) if self.input_dtype else x})

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(feed.values())))
        if self.label_output:
            (out,) = self.session.run([self.label_output], feed)
            values = np.asarray(out).reshape(n, -1)
            if self.target == "regression":
                if values.shape[1] != 1:
                    raise InvalidPreprocess(f"regression needs one value per sample; output {self.label_output!r} "
                                            f"gives {values.shape[1]}")
                return values[:, 0].astype(np.float64)
            return values[:, 0]
        (scores,) = self.session.run([self.score_output], feed)
        idx = np.asarray(scores).reshape(n, -1).argmax(axis=1)
        known = self.prep.classes if self.prep is not None and self.prep.classes else []
        classes = np.asarray(known + [str(i) for i in range(len(known), int(idx.max(initial=0)) + 1)])
        predicted: np.ndarray = classes[idx]
        return predicted

    def run_groups(self, groups: list[Group], n: int, *, batch_size: int = 1024,
                   cancel: threading.Event | None = None) -> np.ndarray:
        """Predictions for every item, in item order."""
        parts: list[np.ndarray] = []
        order: list[np.ndarray] = []
        for g in groups:
            for start in range(0, len(g.index), batch_size):
                if cancel is not None and cancel.is_set():
                    raise EvaluationCancelled()
                feed = {k: v[start:start + batch_size] for k, v in g.feed.items()}
                if self.input_name in feed and self.input_dtype is not None:
                    feed[self.input_name] = feed[self.input_name].astype(self.input_dtype, copy=False)
                parts.append(self.run(feed))
                order.append(g.index[start:start + batch_size])
        if not parts:
            return np.zeros(0, dtype=np.float64 if self.target == "regression" else str)
        flat = np.concatenate(parts)
        idx = np.concatenate(order)
        if len(groups) == 1 and np.array_equal(idx, np.arange(n)):
            return flat
        out = np.empty_like(flat)
        out[idx] = flat
        return out


def declared_in_model(model_path: Path) -> Preprocess | None:
    import onnx

    model = onnx.load_model(str(model_path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return parse_preprocess(prop.value, where=f"model metadata {METADATA_KEY}")
    return None


def load_arrays(items: list[dict[str, Any]], prep: Preprocess) -> np.ndarray:
    """Image items → one array (the bench's path; `evaluate` reads every kind of item)."""
    out = np.empty((len(items), *prep.sample_shape()), dtype=prep.dtype)
    for i, it in enumerate(items):
        path = it.get("local_path")
        if not path:
            raise InvalidPreprocess(f"{item_ref(it, i)} has no data file")
        image_sample(prep, path, item_ref(it, i), out[i])
    return out


def evaluate_arrays(clf: OnnxClassifier, x: np.ndarray, truth: list[Any], items: list[dict[str, Any]], *,
                    batch_size: int = 1024, cancel: threading.Event | None = None) -> Evaluation:
    assert clf.input_name is not None
    groups = [Group(np.arange(len(x)), {clf.input_name: x})]
    return evaluate_groups(clf, groups, truth, items, batch_size=batch_size, cancel=cancel)


def evaluate_groups(clf: OnnxClassifier, groups: list[Group], truth: list[Any], items: list[dict[str, Any]], *,
                    batch_size: int = 1024, cancel: threading.Event | None = None,
                    tolerance: float = 0.0) -> Evaluation:
    t0 = time.perf_counter()
    pred = clf.run_groups(groups, len(items), batch_size=batch_size, cancel=cancel)
    t1 = time.perf_counter()
    ids, refs, badcases, features = item_columns(items)
    if clf.target == "regression":
        from mtt.evaluator.regression import score_regression

        ev = score_regression(pred, truth, items, tolerance, ids, refs, badcases, features)
    else:
        truth_s = ["" if v is None else v if type(v) is str else str(v) for v in truth]
        metrics, per_class, classes, cm, pred_idx, correct = _score(truth_s, pred)
        samples = Samples(ids, refs, list(truth), pred_idx, classes, correct, badcases, features)
        ev = Evaluation(metrics, per_class, classes, cm, samples)
    ev.seconds.update({"inference": t1 - t0, "scoring": time.perf_counter() - t1})
    return ev


def scoring(prep: Preprocess | None, params: dict[str, Any] | None) -> tuple[str | None, float]:
    """Target and tolerance: task params override the declared preprocessing."""
    params = params or {}
    target = params.get("target")
    if target not in (None, "classification", "regression"):
        raise InvalidPreprocess(f"params.target is {target!r}: use classification or regression")
    tolerance = params.get("tolerance", prep.tolerance if prep is not None else 0.0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise InvalidPreprocess(f"params.tolerance is {tolerance!r}: use a number >= 0")
    return target, float(tolerance)


def evaluate(model_path: Path, items: list[dict[str, Any]], prep: Preprocess | None, *, batch_size: int = 1024,
             cancel: threading.Event | None = None, params: dict[str, Any] | None = None) -> Evaluation:
    """`params`: the task's params, for `target` and `tolerance` (they override the declared ones)."""
    target, _ = scoring(None, params)
    clf = OnnxClassifier(model_path, prep, target=target)
    _, tolerance = scoring(clf.prep, params)
    t0 = time.perf_counter()
    groups = load_inputs(items, clf.prep, clf.info.inputs, clf.input_name)
    loading = time.perf_counter() - t0
    ev = evaluate_groups(clf, groups, [ground_truth(it) for it in items], items, batch_size=batch_size,
                         cancel=cancel, tolerance=tolerance)
    ev.seconds["loading"] = loading
    return ev
