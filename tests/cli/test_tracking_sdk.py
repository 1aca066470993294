"""The task SDK's `save_onnx`: an in-memory ONNX model is handed over with its preprocessing in its metadata,
exactly where the runner collects models, once."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from mlife.tracking import save_onnx


def _identity_model() -> onnx.ModelProto:
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_save_onnx_writes_the_model_its_preprocess_and_its_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLIFE_OUTPUT_DIR", str(tmp_path / "out"))
    path = save_onnx(_identity_model(), name="wine-lr", metrics={"test_accuracy": 0.9},
                     preprocess={"kind": "table", "columns": ["a", "b", "c", "d"]})
    assert path == tmp_path / "out" / "models" / "wine-lr" / "model.onnx"
    saved = onnx.load(str(path))
    assert {p.key: json.loads(p.value) for p in saved.metadata_props} == {
        "mlife.preprocess": {"kind": "table", "columns": ["a", "b", "c", "d"]}}
    card = json.loads((path.parent / "model.json").read_text())
    assert card == {"name": "wine-lr", "file": "model.onnx", "format": "onnx", "metrics": {"test_accuracy": 0.9}}
    files = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert files == ["models/wine-lr/model.json", "models/wine-lr/model.onnx"]  # no stray copy to upload twice


def test_save_onnx_without_preprocess_keeps_the_metadata_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLIFE_OUTPUT_DIR", str(tmp_path))
    path = save_onnx(_identity_model())
    assert path == tmp_path / "models" / "model" / "model.onnx"
    assert list(onnx.load(str(path)).metadata_props) == []
