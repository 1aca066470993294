"""The built-in evaluator: an ONNX classification model on a dataset manifest → accuracy, per-class
precision / recall / F1, the confusion matrix and one outcome line per sample (TestingOutcomeLine)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from json.encoder import encode_basestring

from mlife_shared.onnx_safety import OnnxInfo, inspect_onnx
from mtt.evaluator.preprocess import METADATA_KEY, InvalidPreprocess, Preprocess, check_input_shape, parse_preprocess


class EvaluationCancelled(Exception):
    pass


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


@dataclass
class Evaluation:
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    classes: list[str]
    confusion: list[list[int]]
    samples: "Samples | None" = None
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

    def jsonl(self) -> bytes:
        js = _js
        cls = [js(c) for c in self.classes]
        parts = [f'{{"sample_id":{js(sid)},"data_ref":{js(ref)},"ground_truth":{js(t)},"prediction":{cls[p]},'
                 f'"correct":{"true" if ok else "false"},"badcase_id":{js(bc)}}}\n'
                 for sid, ref, t, p, ok, bc in zip(self.ids, self.refs, self.truth, self.pred_idx.tolist(),
                                                   self.correct.tolist(), self.badcases)]
        return "".join(parts).encode()


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
    """An ONNX session with the declared preprocessing, checked against the model's input shape."""

    def __init__(self, model_path: Path, prep: Preprocess | None, *, info: OnnxInfo | None = None,
                 threads: int = 0) -> None:
        import onnxruntime as ort

        self.info = info or inspect_onnx(model_path)  # rejects pickles & escaping external data; runs nothing
        if prep is None:
            prep = declared_in_model(model_path)
        if prep is None:
            raise InvalidPreprocess("no preprocessing declared: set params.preprocess on the task (or the model's "
                                    f"{METADATA_KEY!r} metadata); see the MTT README")
        self.prep = prep
        inputs = {t.name: t for t in self.info.inputs}
        name = prep.input_name or (self.info.inputs[0].name if len(self.info.inputs) == 1 else None)
        if name is None or name not in inputs:
            raise InvalidPreprocess(f"set preprocess.input_name to one of {sorted(inputs)}")
        self.input_name = name
        check_input_shape(prep, inputs[name].shape, name)
        if inputs[name].dtype not in ("float32", "float64"):
            raise InvalidPreprocess(f"input {name!r} is {inputs[name].dtype}; the evaluator feeds float images")
        self.input_dtype = np.dtype(inputs[name].dtype)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        outs = self.info.outputs
        label_out = prep.label_output
        if label_out is None:
            for o in outs:
                if o.dtype.startswith("int") or o.dtype in ("object", "onnx:8", "<U0"):
                    label_out = o.name
                    break
        if label_out is None and prep.classes is None:
            raise InvalidPreprocess("the model has no integer/string label output: set preprocess.classes "
                                    "(index → class) or preprocess.label_output")
        self.label_output = label_out
        self.score_output = None if label_out else outs[0].name

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Labels of a batch (as the model gives them, or class names for a scores-only model)."""
        x = x.astype(self.input_dtype, copy=False)
        if self.label_output:
            (labels,) = self.session.run([self.label_output], {self.input_name: x})
            return np.asarray(labels).reshape(len(x), -1)[:, 0]
        (scores,) = self.session.run([self.score_output], {self.input_name: x})
        idx = np.asarray(scores).reshape(len(x), -1).argmax(axis=1)
        classes = np.asarray((self.prep.classes or []) + [str(i) for i in range(len(self.prep.classes or []),
                                                                                  int(idx.max(initial=0)) + 1)])
        return classes[idx]


def declared_in_model(model_path: Path) -> Preprocess | None:
    import onnx

    model = onnx.load_model(str(model_path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return parse_preprocess(prop.value, where=f"model metadata {METADATA_KEY}")
    return None


def load_arrays(items: list[dict[str, Any]], prep: Preprocess) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(items), *prep.sample_shape()), dtype=prep.dtype)
    for i, it in enumerate(items):
        path = it.get("local_path")
        if not path:
            raise InvalidPreprocess(f"item {i} ({it.get('md5')}) has no data file")
        try:
            with Image.open(path) as img:
                out[i] = prep.to_array(img)
        except (UnidentifiedImageError, OSError) as exc:
            raise InvalidPreprocess(f"item {i} ({it.get('md5')}) is not a readable image: {exc}") from exc
    return out


def evaluate_arrays(clf: OnnxClassifier, x: np.ndarray, truth: list[Any], items: list[dict[str, Any]], *,
                    batch_size: int = 1024, cancel: threading.Event | None = None) -> Evaluation:
    t0 = time.perf_counter()
    parts: list[np.ndarray] = []
    for start in range(0, len(x), batch_size):
        if cancel is not None and cancel.is_set():
            raise EvaluationCancelled()
        parts.append(clf.predict(x[start:start + batch_size]))
    t1 = time.perf_counter()
    pred = np.concatenate(parts) if parts else np.zeros(0, dtype=str)
    truth_s = ["" if v is None else v if type(v) is str else str(v) for v in truth]
    metrics, per_class, classes, cm, pred_idx, correct = _score(truth_s, pred)
    ids = [it.get("md5") or it.get("id") or str(i) for i, it in enumerate(items)]
    refs = [it.get("md5") or it.get("key") for it in items]
    badcases = [it.get("badcase_id") or ((it.get("extra") or {}).get("badcase_id")
                                         if isinstance(it.get("extra"), dict) else None) or None for it in items]
    samples = Samples(ids, refs, list(truth), pred_idx, classes, correct, badcases)
    t2 = time.perf_counter()
    return Evaluation(metrics, per_class, classes, cm, samples, {"inference": t1 - t0, "scoring": t2 - t1})


def evaluate(model_path: Path, items: list[dict[str, Any]], prep: Preprocess | None, *, batch_size: int = 1024,
             cancel: threading.Event | None = None) -> Evaluation:
    clf = OnnxClassifier(model_path, prep)
    t0 = time.perf_counter()
    x = load_arrays(items, clf.prep)
    ev = evaluate_arrays(clf, x, [ground_truth(it) for it in items], items, batch_size=batch_size, cancel=cancel)
    ev.seconds["loading"] = time.perf_counter() - t0 - ev.seconds["inference"] - ev.seconds["scoring"]
    return ev
