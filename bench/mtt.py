"""MTT benchmark: the built-in evaluator against a bare onnxruntime batch loop over the same arrays.

Data: 10 000 samples (`--samples`) made from scikit-learn's 8x8 digits (with light pixel noise so that
they differ), written as PNG files with a manifest the way a runner resolves a DAM
dataset. Models: the example's LogisticRegression and an MLP (256 hidden units), both converted by skl2onnx.

For each model, medians over `--runs` (the three array measurements interleaved in each run):
- bare onnxruntime: `session.run` over the decoded arrays in batches of `--batch` (the peer);
- evaluator, inference: the evaluator's batch loop over the same arrays (its `OnnxClassifier.predict`);
- evaluator, complete: inference + accuracy / per-class P/R/F1 / confusion matrix + the per-sample
  outcome lines serialised as JSON lines (what is stored for `testing.completed`);
- evaluator from files: the above plus reading and decoding the 10k PNGs with the declared preprocessing.
Ratios are throughput evaluator / bare (goal >= 0.8 for the evaluator on the same arrays).

Run: .venv/bin/python scripts/testenv.py -- .venv/bin/python -m bench.mtt [--samples 10000] [--runs 7] [--batch 1024]
(it needs no server; it never exits non-zero on a miss)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from PIL import Image  # noqa: E402

from mtt.evaluator.evaluate import OnnxClassifier, evaluate, evaluate_arrays, ground_truth, load_arrays  # noqa: E402
from mtt.evaluator.preprocess import Preprocess  # noqa: E402

GOAL = 0.8
PREP = Preprocess(size=(8, 8), mode="L", scale=1 / 255, layout="flat")


def make_samples(n: int, folder: Path) -> list[dict[str, Any]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        k = i % len(d.images)
        img = np.clip(d.images[k] * 255 / 16 + rng.normal(0, 8, (8, 8)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img, mode="L").save(buf, format="PNG")
        data = buf.getvalue()
        md5 = hashlib.md5(data).hexdigest()
        path = folder / f"{i:06d}-{md5}.png"
        path.write_bytes(data)
        items.append({"md5": md5, "key": f"dam/files/{md5}", "label": str(int(d.target[k])), "local_path": str(path)})
    return items


def train_models(folder: Path) -> dict[str, Path]:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    d = load_digits()
    x = (np.clip(np.rint(d.data * 255 / 16), 0, 255) / 255).astype(np.float32)
    out = {}
    for name, clf in (("logreg", LogisticRegression(max_iter=2000)),
                      ("mlp256", MLPClassifier(hidden_layer_sizes=(256,), max_iter=300, random_state=0))):
        clf.fit(x, d.target)
        onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
        path = folder / f"{name}.onnx"
        path.write_bytes(onx.SerializeToString())
        out[name] = path
    return out


def median_time(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_model(path: Path, items: list[dict[str, Any]], runs: int, batch: int) -> dict[str, Any]:
    clf = OnnxClassifier(path, PREP)
    x = load_arrays(items, PREP)
    truth = [ground_truth(it) for it in items]
    bare = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = bare.get_inputs()[0].name

    def bare_loop() -> None:
        for s in range(0, len(x), batch):
            bare.run(None, {name: x[s:s + batch]})

    def inference() -> None:
        for s in range(0, len(x), batch):
            clf.predict(x[s:s + batch])

    def complete() -> None:
        evaluate_arrays(clf, x, truth, items, batch_size=batch).outcomes_jsonl()

    def from_files() -> None:
        evaluate(path, items, PREP, batch_size=batch).outcomes_jsonl()

    # interleaved, so that load from elsewhere on the machine hits both sides alike
    fns = {"bare": bare_loop, "inference": inference, "complete": complete}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(runs):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    t_bare, t_inf, t_all = (statistics.median(times[k]) for k in ("bare", "inference", "complete"))
    t_files = median_time(from_files, max(1, runs // 3))
    acc = evaluate_arrays(clf, x, truth, items, batch_size=batch).metrics["accuracy"]
    n = len(items)
    return {"model": path.stem, "samples": n, "accuracy": acc,
            "bare_s": t_bare, "inference_s": t_inf, "complete_s": t_all, "files_s": t_files,
            "bare_per_s": n / t_bare, "inference_per_s": n / t_inf, "complete_per_s": n / t_all,
            "files_per_s": n / t_files, "ratio_inference": t_bare / t_inf, "ratio_complete": t_bare / t_all,
            "ratio_files": t_bare / t_files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-mtt-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        items = make_samples(args.samples, folder)
        models = train_models(folder)
        print(f"{len(items)} PNG samples and {len(models)} models ready in {time.perf_counter() - t:.1f} s "
              f"(batch {args.batch}, median of {args.runs} runs)", file=sys.stderr)
        results = [bench_model(p, items, args.runs, args.batch) for p in models.values()]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'model':<8}{'acc':>7}{'bare ORT/s':>13}{'eval inf/s':>13}{'ratio':>7}{'eval all/s':>13}{'ratio':>7}"
          f"{'from PNG/s':>13}{'ratio':>7}")
    for r in results:
        print(f"{r['model']:<8}{r['accuracy']:>7.3f}{r['bare_per_s']:>13,.0f}{r['inference_per_s']:>13,.0f}"
              f"{r['ratio_inference']:>7.2f}{r['complete_per_s']:>13,.0f}{r['ratio_complete']:>7.2f}"
              f"{r['files_per_s']:>13,.0f}{r['ratio_files']:>7.2f}")
    for r in results:
        print(f"{r['model']}: evaluator inference / bare = {r['ratio_inference']:.2f} (goal >= {GOAL}: "
              f"{'met' if r['ratio_inference'] >= GOAL else 'MISSED'}); with metrics + 10k outcome lines = "
              f"{r['ratio_complete']:.2f}; with PNG decoding = {r['ratio_files']:.2f}")


if __name__ == "__main__":
    main()
