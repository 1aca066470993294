"""Tiny ONNX models and sets the built-in evaluators score as their `example` (the conformance kit runs them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlife_shared.plugins.seams.evaluators import EvaluationRequest

IMAGE = {"size": [4, 4], "layout": "nchw"}


def onnx_model(nodes: list[Any], inputs: list[Any], outputs: list[Any], initializers: list[Any] | None = None) -> bytes:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "example", inputs, outputs, initializers or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def constant_outputs(consts: dict[str, np.ndarray], input_shape: list[int | str]) -> bytes:
    """A model of one float input X that ignores it and gives these constant outputs."""
    from onnx import helper, numpy_helper
    from onnx.helper import np_dtype_to_tensor_dtype

    nodes = [helper.make_node("Constant", [], [k], value=numpy_helper.from_array(v, f"{k}_value"))
             for k, v in consts.items()]
    outputs = [helper.make_tensor_value_info(k, np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
               for k, v in consts.items()]
    return onnx_model(nodes, [helper.make_tensor_value_info("X", 1, input_shape)], outputs)


def linear(columns: int, out: int, *, argmax: bool) -> bytes:
    """X[N, columns] @ W (the identity) → `value` [N, out], and with `argmax` the `label` [N] of the largest."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.eye(columns, out, dtype=np.float32), "W")
    nodes = [helper.make_node("MatMul", ["X", "W"], ["value"])]
    outputs = [helper.make_tensor_value_info("value", TensorProto.FLOAT, ["N", out])]
    if argmax:
        nodes.append(helper.make_node("ArgMax", ["value"], ["label"], axis=1, keepdims=0))
        outputs.insert(0, helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]))
    return onnx_model(nodes, [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", columns])], outputs, [w])


def threshold_segmenter() -> bytes:
    """X[1, 1, H, W] (pixels scaled to [0, 1]) → scores [1, 2, H, W] = (1 - x, x): class 1 where a pixel is bright."""
    from onnx import TensorProto, helper, numpy_helper

    one = numpy_helper.from_array(np.ones((1, 1, 1, 1), dtype=np.float32), "one")
    nodes = [helper.make_node("Sub", ["one", "X"], ["dark"]),
             helper.make_node("Concat", ["dark", "X"], ["scores"], axis=1)]
    return onnx_model(nodes, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, "H", "W"])],
                      [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, "H", "W"])], [one])


def png(folder: Path, name: str, pixels: np.ndarray) -> str:
    from PIL import Image

    path = folder / name
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(path, format="PNG")
    return str(path)


def table_request(folder: Path, model: bytes, rows: list[tuple[list[float], Any]], target: str) -> EvaluationRequest:
    (folder / "model.onnx").write_bytes(model)
    columns = [f"x{j}" for j in range(len(rows[0][0]))]
    items = [{"id": f"row{i}", "features": dict(zip(columns, x, strict=True)), "label": y}
             for i, (x, y) in enumerate(rows)]
    return EvaluationRequest(folder / "model.onnx", items,
                             {"preprocess": {"kind": "table", "columns": columns, "target": target}})


def image_request(folder: Path, model: bytes, images: list[np.ndarray], annotations: list[Any],
                  params: dict[str, Any], local_files: list[dict[str, str]] | None = None) -> EvaluationRequest:
    (folder / "model.onnx").write_bytes(model)
    items = []
    for i, (pixels, ann) in enumerate(zip(images, annotations, strict=True)):
        item: dict[str, Any] = {"md5": f"{i:032x}", "local_path": png(folder, f"{i}.png", pixels), "annotation": ann}
        if local_files:
            item["local_files"] = local_files[i]
        items.append(item)
    return EvaluationRequest(folder / "model.onnx", items, {"preprocess": IMAGE, **params})
