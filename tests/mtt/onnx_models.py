"""Small ONNX models built by hand for the tests."""

from __future__ import annotations

import pickle

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def linear_classifier(features: int = 64, classes: int = 10, seed: int = 0) -> bytes:
    """X[N, features] → label (int64 argmax of a random linear layer) and scores."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(size=(features, classes)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(classes, dtype=np.float32), "B")
    nodes = [helper.make_node("Gemm", ["X", "W", "B"], ["scores"]),
             helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0)]
    graph = helper.make_graph(nodes, "linear", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", features])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
                               helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def escaping_external_data() -> bytes:
    """A model whose weight lives in external data at '../../secret.bin' (outside the model's folder)."""
    model = onnx.load_from_string(linear_classifier())
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../../secret.bin"), ("offset", "0"), ("length", str(64 * 10 * 4))):
        e = w.external_data.add()
        e.key, e.value = k, v
    return model.SerializeToString()


class _Boom:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, ("touch /tmp/mtt-pickle-was-executed",))


def malicious_pickle() -> bytes:
    return pickle.dumps(_Boom(), protocol=4)


def two_input_classifier(seed: int = 1) -> bytes:
    """A[N, 3] and B[N, 2] → label: argmax of concat(A, B) @ W (W random [5, 3]), and the weights."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(size=(5, 3)).astype(np.float32), "W")
    nodes = [helper.make_node("Concat", ["A", "B"], ["AB"], axis=1),
             helper.make_node("MatMul", ["AB", "W"], ["scores"]),
             helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0)]
    graph = helper.make_graph(nodes, "two_inputs", [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["N", 3]),
                                                    helper.make_tensor_value_info("B", TensorProto.FLOAT, ["N", 2])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def with_metadata(model_bytes: bytes, props: dict[str, str]) -> bytes:
    """The model with metadata_props added (e.g. {"mlife.preprocess": "{...}"})."""
    model = onnx.load_from_string(model_bytes)
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    return model.SerializeToString()
