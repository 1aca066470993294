"""Regression targets: MAE, RMSE and R² over the set, and per sample the absolute error; a sample whose error
exceeds the tolerance is a misprediction (`correct: false`, so BAM can file it as a badcase)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtt.evaluator.evaluate import Evaluation
from mtt.evaluator.preprocess import InvalidPreprocess
from mtt.evaluator.tensor import item_ref


def truth_values(truth: list[Any], items: list[dict[str, Any]]) -> np.ndarray:
    """The ground truths as numbers; any that is not a finite number is refused, naming its item."""
    out = np.empty(len(truth), dtype=np.float64)
    for i, v in enumerate(truth):
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            out[i] = np.nan
        if not np.isfinite(out[i]):
            raise InvalidPreprocess(f"the target is regression; {item_ref(items[i], i)} has the ground truth {v!r}, "
                                    "not a number")
    return out


def regression_metrics(truth: np.ndarray, pred: np.ndarray, tolerance: float) -> dict[str, float]:
    n = len(truth)
    if n == 0:
        return {"mae": 0.0, "rmse": 0.0, "r2": 0.0, "samples": 0.0, "errors": 0.0}
    err = pred - truth
    ss_res = float(np.sum(err ** 2))
    ss_tot = float(np.sum((truth - truth.mean()) ** 2))
    # a constant truth has no variance to explain: R² is 1 for a perfect fit, else 0 (as scikit-learn)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(ss_res / n)), "r2": r2,
            "samples": float(n), "errors": float(np.count_nonzero(~(np.abs(err) <= tolerance)))}


@dataclass
class RegressionSamples:
    ids: list[str]
    refs: list[str | None]
    truth: np.ndarray
    pred: np.ndarray
    tolerance: float
    badcases: list[str | None]
    features: list[dict[str, Any] | None] | None = None

    def jsonl(self) -> bytes:
        errors = np.abs(self.pred - self.truth)
        features = self.features or [None] * len(self.ids)
        lines = []
        for sid, ref, t, p, e, bc, f in zip(self.ids, self.refs, self.truth.tolist(), self.pred.tolist(),
                                            errors.tolist(), self.badcases, features, strict=True):
            line = {"sample_id": sid, "data_ref": ref, "ground_truth": t, "prediction": _finite(p),
                    "error": _finite(e), "correct": bool(e <= self.tolerance), "badcase_id": bc}
            if f is not None:
                line["features"] = f
            lines.append(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        return "".join(lines).encode()


def _finite(v: float) -> float | None:
    return v if np.isfinite(v) else None


def score_regression(pred: np.ndarray, truth: list[Any], items: list[dict[str, Any]], tolerance: float,
                     ids: list[str], refs: list[str | None], badcases: list[str | None],
                     features: list[dict[str, Any] | None] | None) -> Evaluation:
    t = truth_values(truth, items)
    p = np.asarray(pred, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(p))
    if len(bad):  # no metric can be stored or compared with it: say which sample, rather than NaN metrics
        i = int(bad[0])
        raise InvalidPreprocess(f"the model predicted {p[i]} for {item_ref(items[i], i)} ({len(bad)} of {len(p)} "
                                "samples): an empty or NaN feature needs the model's own imputer")
    samples = RegressionSamples(ids, refs, t, p, tolerance, badcases, features)
    return Evaluation(regression_metrics(t, p, tolerance), {}, [], [], samples)
