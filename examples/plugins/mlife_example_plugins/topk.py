"""Top-k accuracy of an ONNX image classifier: a sample counts as right when its label is among the model's k best
classes (a shortlist shown to a person, a re-ranking stage after the model). The task names it and sets it up::

    {"evaluator": "top-k", "top-k": {"k": 3, "classes": ["cat", "dog", "bird", "fish"]}}

`classes` are the names of the model's outputs in order (default: the set's labels, sorted). Images are read in
grey or RGB as the model's input asks ([N, C, H, W]; or [N, F] with F = side², a flat grey square), scaled to 0..1.
Each sample's outcome names its k best classes; the ones whose label is not among them are badcases."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mlife_shared.plugins.seams.evaluators import (
    EvaluationCancelled,
    EvaluationRefused,
    EvaluationRequest,
    EvaluationResult,
    outcome,
)


def _label(item: dict[str, Any]) -> str | None:
    label = item.get("label")
    if label is None and isinstance(item.get("annotation"), str | int):
        label = item["annotation"]
    return None if label is None else str(label)


def _layout(shape: list[Any]) -> tuple[str, int, int]:
    """(Pillow mode, width, height) the model's input asks for; EvaluationRefused when it is no image input."""
    if len(shape) == 2 and isinstance(shape[1], int) and math.isqrt(shape[1]) ** 2 == shape[1]:
        side = math.isqrt(shape[1])
        return "L", side, side
    if len(shape) == 4 and shape[1] in (1, 3) and isinstance(shape[2], int) and isinstance(shape[3], int):
        return ("L" if shape[1] == 1 else "RGB"), shape[3], shape[2]
    raise EvaluationRefused(f"the model's input has the shape {shape}: top-k reads images as [N, C, H, W] "
                            "(C 1 or 3) or a flat grey square [N, side²]")


class TopK:
    name = "top-k"
    api = ">=1,<2"
    description = "top-k accuracy of an ONNX image classifier (params: top-k.k, default 2; top-k.classes)"
    model_formats = ("onnx",)

    def files(self, item: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
        return {}

    def _setup(self, request: EvaluationRequest) -> tuple[Any, int, list[str]]:
        import onnxruntime as ort

        own = request.own_params(self.name)
        k = own.get("k", 2)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise EvaluationRefused(f"params.{self.name}.k must be a whole number of at least 1, not {k!r}")
        labels = [_label(i) for i in request.items]
        if None in labels:
            raise EvaluationRefused(f"item {labels.index(None)} has no label to compare with")
        classes = [str(c) for c in own.get("classes") or sorted(set(labels))]
        try:
            session = ort.InferenceSession(str(request.model_path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - any reason the runtime refuses the file is the answer
            raise EvaluationRefused(f"onnxruntime cannot load the model: {exc}") from exc
        return session, k, classes

    def incompatibility(self, request: EvaluationRequest) -> str | None:
        try:
            session, _, classes = self._setup(request)
            _layout(list(session.get_inputs()[0].shape))
        except EvaluationRefused as exc:
            return exc.message
        outputs = session.get_outputs()[0].shape
        if isinstance(outputs[-1], int) and outputs[-1] != len(classes):
            return f"the model scores {outputs[-1]} classes but {len(classes)} are named: {', '.join(classes)}"
        missing = [n for n, i in enumerate(request.items) if not i.get("local_path")]
        return f"items {missing[:5]} have no image file" if missing else None

    def evaluate(self, request: EvaluationRequest) -> EvaluationResult:
        import numpy as np
        from PIL import Image

        session, k, classes = self._setup(request)
        model_input = session.get_inputs()[0]
        mode, width, height = _layout(list(model_input.shape))
        lines, top1 = [], 0
        for start in range(0, len(request.items), max(request.batch_size, 1)):
            if request.cancel.is_set():
                raise EvaluationCancelled()
            batch = request.items[start:start + max(request.batch_size, 1)]
            pixels = []
            for item in batch:
                with Image.open(item["local_path"]) as image:
                    array = np.asarray(image.convert(mode).resize((width, height)), dtype=np.float32) / 255.0
                pixels.append(array.reshape(-1) if len(model_input.shape) == 2 else
                              (array[None] if mode == "L" else array.transpose(2, 0, 1)))
            scores = session.run(None, {model_input.name: np.stack(pixels)})[0]
            for n, (item, row) in enumerate(zip(batch, scores, strict=True)):
                best = [classes[int(i)] for i in np.argsort(-row, kind="stable")[:k]]
                label = _label(item)
                top1 += best[0] == label
                lines.append(outcome(item, start + n, ground_truth=label, prediction=best, correct=label in best))
        right = sum(line["correct"] for line in lines)
        total = max(len(lines), 1)
        return EvaluationResult(
            metrics={f"top_{k}_accuracy": right / total, "top_1_accuracy": top1 / total,
                     "samples": float(len(lines)), "errors": float(len(lines) - right)},
            outcomes=lines, report={"k": k, "classes": classes})

    def example(self, folder: Path) -> EvaluationRequest:
        """A 2x2 grey image per class lighting one pixel, and a model that picks the brightest pixel; the fifth
        image's label is its second-brightest pixel (right in the top 2, wrong in the top 1)."""
        from PIL import Image

        model = folder / "brightest.onnx"
        model.write_bytes(brightest_pixel_model(4))
        items = []
        for n, (lit, label) in enumerate([((0,), "0"), ((1,), "1"), ((2,), "2"), ((3,), "3"), ((0, 1), "1")]):
            image = Image.new("L", (2, 2), 0)
            for rank, pixel in enumerate(lit):
                image.putpixel((pixel % 2, pixel // 2), 255 - 60 * rank)
            image.save(folder / f"{n}.png")
            items.append({"md5": f"{n:032x}", "local_path": str(folder / f"{n}.png"), "label": label})
        return EvaluationRequest(model, items, {"evaluator": self.name, self.name: {"k": 2}})


def brightest_pixel_model(pixels: int) -> bytes:
    """softmax(10 · x): input x float32 [N, pixels], output float32 [N, pixels] (class i: pixel i is brightest)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["logits"]), helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)],
        "brightest_pixel", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", pixels])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", pixels])],
        initializer=[numpy_helper.from_array(np.eye(pixels, dtype=np.float32) * 10.0, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mlife-example-plugins")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
