"""Example training code for MLife: scikit-learn logistic regression on the 8x8 digit PNGs of the
task's train dataset, exported to ONNX with skl2onnx, with its preprocessing declared in the model.

Run by an MLife training task (command `python train.py`, code location this folder). Parameters
(task params): C (default 1.0), max_iter (default 2000), model_name (default "digits").
"""

from __future__ import annotations

import json
import sys

import numpy as np
from PIL import Image

from mlife.tracking import dataset_items, log_metrics, log_params, params, save_onnx

# Declared, not guessed: the evaluator reads this from the model's metadata.
PREPROCESS = {"size": [8, 8], "mode": "L", "scale": 1.0 / 255.0, "offset": 0.0, "layout": "flat"}


def load(items: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    x = np.stack([np.asarray(Image.open(it["local_path"]).convert("L"), dtype=np.float32).reshape(-1)
                  * np.float32(PREPROCESS["scale"]) for it in items])
    y = np.array([str(it["label"]) for it in items])
    return x, y


def main() -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    p = params()
    c, max_iter = float(p.get("C", 1.0)), int(p.get("max_iter", 2000))
    name = str(p.get("model_name", "digits"))
    train = dataset_items("train") or dataset_items()
    test = dataset_items("test")
    print(f"training on {len(train)} items, testing on {len(test)}", flush=True)
    log_params({"C": c, "max_iter": max_iter, "model": "LogisticRegression"})
    x, y = load(train)
    y_int = y.astype(np.int64)
    clf = LogisticRegression(C=c, max_iter=max_iter)
    clf.fit(x, y_int)
    metrics = {"train_accuracy": float((clf.predict(x) == y_int).mean())}
    if test:
        xt, yt = load(test)
        metrics["test_accuracy"] = float((clf.predict(xt) == yt.astype(np.int64)).mean())
    log_metrics(metrics)
    print(json.dumps(metrics), flush=True)
    save_onnx(to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17), name=name, metrics=metrics,
              preprocess=PREPROCESS)
    print("model saved", flush=True)


if __name__ == "__main__":
    sys.exit(main())
