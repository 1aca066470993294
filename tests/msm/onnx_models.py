"""Tiny ONNX models built with onnx.helper for the MSM tests and the bench."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def classifier(weights: np.ndarray, *, bias: np.ndarray | None = None, opset: int = 17) -> bytes:
    """`probs = softmax(x @ W + b)`: input `x` float32 [N, F], output `probs` float32 [N, C]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    features, classes = weights.shape
    b = bias if bias is not None else np.zeros(classes, dtype=np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    graph = helper.make_graph(
        nodes, "tiny_classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", classes])],
        initializer=[numpy_helper.from_array(weights.astype(np.float32), "W"),
                     numpy_helper.from_array(b.astype(np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="mlife-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def identity_classifier(features: int = 4, *, seed: int | None = None) -> bytes:
    """Predicts the argmax of the input's features (class i for a one-hot on feature i); `seed` adds noise."""
    w = np.eye(features, dtype=np.float32) * 10.0
    if seed is not None:
        w = w + np.random.default_rng(seed).normal(0, 0.01, w.shape).astype(np.float32)
    return classifier(w)


def large_classifier(features: int = 256, classes: int = 64, seed: int = 0) -> bytes:
    """A MatMul big enough for dynamic quantization to shrink it."""
    w = np.random.default_rng(seed).normal(0, 1, (features, classes)).astype(np.float32)
    return classifier(w)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
