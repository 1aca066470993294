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


def digits_features(limit: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as examples/digits reads them: the PNG pixels (0..255) scaled by 1/255,
    flat float32 rows, and the integer labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = np.clip(np.rint(d.images[:limit] * 255.0 / 16.0), 0, 255).astype(np.uint8)
    x = pixels.reshape(len(pixels), -1).astype(np.float32) * np.float32(1.0 / 255.0)
    return x, d.target[:limit].astype(np.int64)


def digits_example_model(limit: int = 300) -> bytes:
    """The model examples/digits/train.py registers, built the same way: LogisticRegression(C=1.0,
    max_iter=2000) exported by skl2onnx with `zipmap=False` at opset 17 (whose opset imports list the
    default domain twice) and the declared preprocessing in its metadata."""
    import json

    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = digits_features(limit)
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    meta = onx.metadata_props.add()
    meta.key, meta.value = "mlife.preprocess", json.dumps(
        {"size": [8, 8], "mode": "L", "scale": 1.0 / 255.0, "offset": 0.0, "layout": "flat"})
    return onx.SerializeToString()


def sklearn_classifier(x: np.ndarray, y: np.ndarray, *, zipmap: bool = False) -> bytes:
    """A scikit-learn LogisticRegression on (x, y) exported by skl2onnx: outputs the label (int64 or
    string tensor, as y) and the probabilities (a tensor, or with `zipmap` a sequence of label → score maps)."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000).fit(x, y)
    return to_onnx(clf, x[:1].astype(np.float32), options={id(clf): {"zipmap": zipmap}},
                   target_opset=17).SerializeToString()


def sklearn_regressor(x: np.ndarray, y: np.ndarray) -> bytes:
    """A scikit-learn LinearRegression exported by skl2onnx: `variable` float32 [N, 1]."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    reg = LinearRegression().fit(x, y)
    return to_onnx(reg, x[:1].astype(np.float32), target_opset=17).SerializeToString()


def two_input_model() -> bytes:
    """`out = concat(a, float(b))`: inputs `a` float32 [N, 3] and `b` int64 [N, 2], output float32 [N, 5]."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT),
             helper.make_node("Concat", ["a", "bf"], ["out"], axis=1)]
    graph = helper.make_graph(
        nodes, "two_inputs",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("b", TensorProto.INT64, ["N", 2])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mlife-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
