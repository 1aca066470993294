"""Example training code for a tabular function: a scikit-learn classifier on the feature columns of the
task's train dataset (a plain table: each item has `features` and `label`), exported to ONNX with its
columns declared in the model's metadata (`mlife.preprocess` = {"kind": "table", "columns": [...]}), so the
built-in evaluator and serving clients know the input order.

Task params: `model` ("scaled": StandardScaler + LogisticRegression, the good one; "raw": LogisticRegression
on unscaled features, weak; "stump": a depth-1 decision tree, worse), `C` (default 1.0), `model_name`
(default "wine"). Labels are strings (class_0, class_1, class_2).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from mlife.tracking import dataset_items, log_metrics, log_params, params, save_onnx


def load(items: list[dict], columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[float(it["features"][c]) for c in columns] for it in items], dtype=np.float32)
    y = np.array([str(it["label"]) for it in items])
    return x, y


def build(kind: str, c: float):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    if kind == "scaled":
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    if kind == "raw":
        return LogisticRegression(C=c, max_iter=50)
    if kind == "stump":
        return DecisionTreeClassifier(max_depth=1, random_state=0)
    raise SystemExit(f"unknown model {kind!r}: use scaled, raw or stump")


def main() -> None:
    from skl2onnx import to_onnx

    p = params()
    kind, c = str(p.get("model", "scaled")), float(p.get("C", 1.0))
    name = str(p.get("model_name", "wine"))
    train = dataset_items("train") or dataset_items()
    test = dataset_items("test")
    columns = sorted(train[0]["features"])
    print(f"training {kind} on {len(train)} rows x {len(columns)} columns, testing on {len(test)}", flush=True)
    log_params({"model": kind, "C": c, "columns": len(columns)})
    x, y = load(train, columns)
    clf = build(kind, c)
    clf.fit(x, y)
    metrics = {"train_accuracy": float((clf.predict(x) == y).mean())}
    if test:
        xt, yt = load(test, columns)
        metrics["test_accuracy"] = float((clf.predict(xt) == yt).mean())
    log_metrics(metrics)
    print(json.dumps(metrics), flush=True)
    save_onnx(to_onnx(clf, x[:1], options={"zipmap": False}, target_opset=17), name=name, metrics=metrics,
              preprocess={"kind": "table", "columns": columns})
    print("model saved", flush=True)


if __name__ == "__main__":
    sys.exit(main())
