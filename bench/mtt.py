"""MTT benchmark: the built-in evaluator against a bare onnxruntime batch loop over the same arrays.

Data: 10 000 samples (`--samples`) made from scikit-learn's 8x8 digits (with light pixel noise so that
they differ), written as PNG files with a manifest the way a runner resolves a DAM
dataset. Models: the example's LogisticRegression and an MLP (256 hidden units), both converted by skl2onnx.

For each model, medians over `--runs` (the three array measurements interleaved in each run):
- bare onnxruntime: `session.run` over the decoded arrays in batches of `--batch` (the peer);
- evaluator, inference: the evaluator's batch loop over the same arrays (its `OnnxClassifier.predict`);
- evaluator, complete: inference + accuracy / per-class P/R/F1 / confusion matrix + the per-sample
  outcome lines serialised as JSON lines (what is stored for `testing.completed`);
- evaluator from files (in >= 9 rounds of their own, with its peer): the above plus reading and decoding the
  10k PNGs with the declared preprocessing
  (`evaluate`, what a testing task runs), against
- bare from files (its peer): the same steps written bare, the way a user would: Pillow opens and converts each
  PNG, numpy scales it, onnxruntime runs the batches, numpy computes accuracy / per-class P/R/F1 / the confusion
  matrix, and orjson writes one outcome line (the same fields) per sample.
Ratios are throughput evaluator / bare (goal >= 0.8 for inference and for the end-to-end path from files); the
end-to-end ratio is the median of the rounds' ratios, each round's evaluator and bare runs being adjacent.

Run: .venv/bin/python scripts/testenv.py -- .venv/bin/python -m bench.mtt [--samples 10000] [--runs 7] [--batch 1024]
     [--quick] [--out FILE] [--json]
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
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import orjson  # noqa: E402
from PIL import Image  # noqa: E402

from bench._support import add_report_args, figure, write_figures  # noqa: E402
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


def bare_from_files(session: ort.InferenceSession, items: list[dict[str, Any]], batch: int) -> bytes:
    """The evaluator's whole path written bare: decode, infer, score, one orjson outcome line per sample."""
    x = np.empty((len(items), 64), dtype=np.float32)
    for i, it in enumerate(items):
        with Image.open(it["local_path"]) as img:
            x[i] = np.asarray(img.convert("L"), dtype=np.float32).reshape(-1) / 255
    name = session.get_inputs()[0].name
    label = session.get_outputs()[0].name
    pred = np.concatenate([session.run([label], {name: x[s:s + batch]})[0] for s in range(0, len(x), batch)])
    truth = np.array([it["label"] for it in items])
    pred_s = pred.astype(str)
    classes = sorted(set(truth.tolist()) | set(pred_s.tolist()), key=int)
    index = {c: j for j, c in enumerate(classes)}
    t = np.array([index[v] for v in truth.tolist()])
    p = np.array([index[v] for v in pred_s.tolist()])
    k = len(classes)
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    tp = np.diag(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(tp / cm.sum(axis=0))
        recall = np.nan_to_num(tp / cm.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    _report = {"accuracy": float(tp.sum() / len(items)), "macro_f1": float(f1.mean()), "confusion": cm.tolist(),
               "per_class": {c: {"precision": float(precision[j]), "recall": float(recall[j]), "f1": float(f1[j])}
                             for j, c in enumerate(classes)}}
    return b"".join(orjson.dumps({"sample_id": it["md5"], "data_ref": it["md5"], "ground_truth": it["label"],
                                  "prediction": pv, "correct": it["label"] == pv, "badcase_id": None}) + b"\n"
                    for it, pv in zip(items, pred_s.tolist(), strict=True))


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

    def bare_files() -> None:
        bare_from_files(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), items, batch)

    ours = evaluate(path, items, PREP, batch_size=batch).outcomes_jsonl()
    theirs = bare_from_files(bare, items, batch)
    if [orjson.loads(b) for b in ours.splitlines()] != [orjson.loads(b) for b in theirs.splitlines()]:
        raise SystemExit(f"{path.stem}: the bare peer's outcome lines differ from the evaluator's")
    # interleaved, so that load from elsewhere on the machine hits both sides alike; the end-to-end pair in
    # rounds of its own (at least 9: single rounds swing widely when the 2 cores are shared)
    times: dict[str, list[float]] = {}
    for fns, rounds in (({"bare": bare_loop, "inference": inference, "complete": complete}, runs),
                        ({"bare_files": bare_files, "files": from_files}, max(runs, 9))):
        for k, fn in fns.items():
            fn()  # warm-up
            times[k] = []
        for r in range(rounds):
            order = list(fns.items())
            for k, fn in order if r % 2 == 0 else reversed(order):
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    # end to end: the median of the rounds' ratios (each round's two runs are adjacent in time)
    pairs = [b / f for b, f in zip(times["bare_files"], times["files"], strict=True)]
    acc = evaluate_arrays(clf, x, truth, items, batch_size=batch).metrics["accuracy"]
    n = len(items)
    return {"model": path.stem, "samples": n, "accuracy": acc,
            "bare_s": med["bare"], "inference_s": med["inference"], "complete_s": med["complete"],
            "bare_files_s": med["bare_files"], "files_s": med["files"],
            "bare_per_s": n / med["bare"], "inference_per_s": n / med["inference"],
            "complete_per_s": n / med["complete"], "bare_files_per_s": n / med["bare_files"],
            "files_per_s": n / med["files"], "ratio_inference": med["bare"] / med["inference"],
            "ratio_complete": med["bare"] / med["complete"], "ratio_files": statistics.median(pairs),
            "ratio_files_rounds": pairs,
            "ratio_files_best": min(times["bare_files"]) / min(times["files"])}


def profile(which: str, path: Path, items: list[dict[str, Any]], batch: int) -> None:
    import cProfile
    import pstats

    def run() -> None:
        if which == "evaluator":
            evaluate(path, items, PREP, batch_size=batch).outcomes_jsonl()
        else:
            bare_from_files(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), items, batch)

    run()  # warm-up
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(3):
        run()
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", choices=["evaluator", "bare"], default=None,
                        help="instead of the bench: cProfile 3 end-to-end runs from the PNG files (first model), "
                             "top 25 functions by self time")
    add_report_args(parser)
    args = parser.parse_args()
    if args.quick:
        args.samples, args.runs = min(args.samples, 1000), min(args.runs, 3)
    with tempfile.TemporaryDirectory(prefix="bench-mtt-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        items = make_samples(args.samples, folder)
        models = train_models(folder)
        print(f"{len(items)} PNG samples and {len(models)} models ready in {time.perf_counter() - t:.1f} s "
              f"(batch {args.batch}, median of {args.runs} runs)", file=sys.stderr)
        if args.profile:
            profile(args.profile, next(iter(models.values())), items, args.batch)
            return
        results = [bench_model(p, items, args.runs, args.batch) for p in models.values()]
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 shared cores: ratios, not absolutes)",
          file=sys.stderr)
    figures = []
    for r in results:
        figures.append(figure(f"{r['model']}: inference evaluator/bare onnxruntime", r["ratio_inference"], "x",
                              f">= {GOAL}x", r["ratio_inference"] >= GOAL, peer=r["bare_per_s"],
                              peer_name="bare onnxruntime samples/s", detail=f"{r['inference_per_s']:,.0f} samples/s"))
        figures.append(figure(f"{r['model']}: end to end from PNG files evaluator/bare", r["ratio_files"], "x",
                              f">= {GOAL}x", r["ratio_files"] >= GOAL, peer=r["bare_files_per_s"],
                              peer_name="bare Pillow+onnxruntime+numpy+orjson samples/s",
                              detail=f"{r['files_per_s']:,.0f} samples/s, {r['samples']} samples, median ratio of "
                                     f"{len(r['ratio_files_rounds'])} alternating rounds (best round each side: "
                                     f"{r['ratio_files_best']:.2f}x)"))
    write_figures(args.out, "mtt", figures, {"results": results, "batch": args.batch}, quick=args.quick)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'model':<8}{'acc':>7}{'bare ORT/s':>13}{'eval inf/s':>13}{'ratio':>7}{'eval all/s':>13}{'ratio':>7}"
          f"{'bare PNG/s':>13}{'eval PNG/s':>13}{'ratio':>7}")
    for r in results:
        print(f"{r['model']:<8}{r['accuracy']:>7.3f}{r['bare_per_s']:>13,.0f}{r['inference_per_s']:>13,.0f}"
              f"{r['ratio_inference']:>7.2f}{r['complete_per_s']:>13,.0f}{r['ratio_complete']:>7.2f}"
              f"{r['bare_files_per_s']:>13,.0f}{r['files_per_s']:>13,.0f}{r['ratio_files']:>7.2f}")
    for r in results:
        print(f"{r['model']}: evaluator inference / bare = {r['ratio_inference']:.2f} (goal >= {GOAL}: "
              f"{'met' if r['ratio_inference'] >= GOAL else 'MISSED'}); end to end from PNG files / bare = "
              f"{r['ratio_files']:.2f} (goal >= {GOAL}: {'met' if r['ratio_files'] >= GOAL else 'MISSED'}; rounds "
              f"{', '.join(f'{v:.2f}' for v in r['ratio_files_rounds'])})")


if __name__ == "__main__":
    main()
