"""Example training code for an image function of any size: logistic regression on the grayscale PNGs of
the task's train dataset, exported to ONNX with its preprocessing declared in the model's metadata.

Run by an MLife training task (command `python train.py`). Task params: `size` ([height, width], default
[32, 32]), `C` (default 1.0), `max_iter` (default 1000), `max_train` (train on at most this many items:
a deliberately weaker model), `model_name` (default "shapes"). Labels are kept as strings.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from PIL import Image

from mlife.tracking import dataset_items, log_metrics, log_params, params, save_onnx


def load(items: list[dict], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    x = np.stack([np.asarray(Image.open(it["local_path"]).convert("L").resize((w, h)), dtype=np.float32).reshape(-1)
                  / np.float32(255.0) for it in items])
    y = np.array([str(it["label"]) for it in items])
    return x, y


def main() -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    p = params()
    size = tuple(int(v) for v in p.get("size", [32, 32]))
    c, max_iter = float(p.get("C", 1.0)), int(p.get("max_iter", 1000))
    name = str(p.get("model_name", "shapes"))
    train = sorted(dataset_items("train") or dataset_items(), key=lambda it: it["md5"])
    if p.get("max_train"):
        train = train[: int(p["max_train"])]
    test = dataset_items("test")
    print(f"training on {len(train)} items, testing on {len(test)}", flush=True)
    log_params({"C": c, "max_iter": max_iter, "max_train": p.get("max_train"), "model": "LogisticRegression"})
    x, y = load(train, size)  # type: ignore[arg-type]
    clf = LogisticRegression(C=c, max_iter=max_iter)
    clf.fit(x, y)
    metrics = {"train_accuracy": float((clf.predict(x) == y).mean())}
    if test:
        xt, yt = load(test, size)  # type: ignore[arg-type]
        metrics["test_accuracy"] = float((clf.predict(xt) == yt).mean())
    log_metrics(metrics)
    print(json.dumps(metrics), flush=True)
    save_onnx(to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17), name=name, metrics=metrics,
              preprocess={"size": list(size), "mode": "L", "scale": 1.0 / 255.0, "offset": 0.0, "layout": "flat"})
    print("model saved", flush=True)


if __name__ == "__main__":
    sys.exit(main())
