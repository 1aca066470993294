"""Compression takes the models MSM serves whatever their opset imports: the digits example's export
(the default domain listed twice) compresses, and the compressed version predicts as the original."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from mlife_shared.objectstore.base import read_all
from msm.registry.compression import normalise_opsets
from tests.msm.onnx_models import digits_example_model, digits_features, large_classifier
from tests.support.msm import upload


async def model_bytes(msm: httpx.AsyncClient, version: dict[str, object]) -> bytes:
    return await read_all(await msm.app.state.raw_store.get(version["object_key"]))  # type: ignore[attr-defined]


def opsets(model: bytes) -> list[tuple[str, int]]:
    return sorted((o.domain, o.version) for o in onnx.load_from_string(model).opset_import)


def run(model: bytes, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": x})


async def test_the_digits_example_model_compresses_and_predicts_as_before(msm: httpx.AsyncClient) -> None:
    original = digits_example_model()
    assert opsets(original) == [("", 17), ("", 17), ("ai.onnx.ml", 1)]  # what skl2onnx writes
    source = (await upload(msm, "digits", original)).json()
    x, y = digits_features(300)
    got = await msm.post(f"/model-versions/{source['id']}/compress",
                         json={"sample": {"inputs": {"X": x[:60].tolist()}, "labels": y[:60].tolist()}})
    assert got.status_code == 201, got.text
    version, comp = got.json()["version"], got.json()["compression"]
    assert version["parent_version_id"] == source["id"] and "int8" in version["tags"]
    assert version["signature"]["inputs"] == source["signature"]["inputs"]
    # The sample's labels are compared with the classifier's label output (not an argmax over it).
    expected_accuracy = float((run(original, x[:60])[0] == y[:60]).mean())
    assert expected_accuracy > 0.9 and comp["sample_delta"]["accuracy_original"] == expected_accuracy

    compressed = await model_bytes(msm, version)
    assert opsets(compressed) == [("", 17), ("ai.onnx.ml", 1)]
    props = {p.key: p.value for p in onnx.load_from_string(compressed).metadata_props}
    assert "mlife.preprocess" in props  # the evaluator still finds the declared preprocessing
    labels, probabilities = run(compressed, x)
    want_labels, want_probabilities = run(original, x)
    assert np.array_equal(labels, want_labels)
    assert np.allclose(probabilities, want_probabilities, atol=1e-3)


async def test_a_quantizable_model_with_duplicate_opsets_still_shrinks(msm: httpx.AsyncClient) -> None:
    model = onnx.load_from_string(large_classifier())
    model.opset_import.extend([helper.make_opsetid("ai.onnx", 13), helper.make_opsetid("", 17)])
    data = model.SerializeToString()
    source = (await upload(msm, "big", data)).json()
    got = await msm.post(f"/model-versions/{source['id']}/compress", json={})
    assert got.status_code == 201, got.text
    comp = got.json()["compression"]
    assert comp["size_after"] < comp["size_before"] / 2
    compressed = await model_bytes(msm, got.json()["version"])
    assert any(n.op_type == "MatMulInteger" for n in onnx.load_from_string(compressed).graph.node)
    x = np.random.default_rng(1).normal(0, 1, (16, 256)).astype(np.float32)
    session = ort.InferenceSession(compressed, providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got_probs, want_probs = session.run(None, {"x": x})[0], reference.run(None, {"x": x})[0]
    assert (np.argmax(got_probs, axis=1) == np.argmax(want_probs, axis=1)).mean() >= 0.9


def test_opset_imports_are_merged_per_domain(tmp_path: Path) -> None:
    model = onnx.load_from_string(digits_example_model(60))
    del model.opset_import[:]
    model.opset_import.extend([helper.make_opsetid("ai.onnx.ml", 1), helper.make_opsetid("", 15),
                               helper.make_opsetid("ai.onnx", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    onnx.save(model, tmp_path / "in.onnx")
    assert normalise_opsets(tmp_path / "in.onnx", tmp_path / "out.onnx")
    assert opsets((tmp_path / "out.onnx").read_bytes()) == [("", 17), ("ai.onnx.ml", 3)]
    assert not normalise_opsets(tmp_path / "out.onnx", tmp_path / "again.onnx")
    assert not (tmp_path / "again.onnx").exists()

    ml_only = onnx.load_from_string(digits_example_model(60))
    del ml_only.opset_import[:]
    ml_only.opset_import.extend([helper.make_opsetid("ai.onnx.ml", 1)])
    onnx.save(ml_only, tmp_path / "ml.onnx")
    assert normalise_opsets(tmp_path / "ml.onnx", tmp_path / "ml-out.onnx")
    assert opsets((tmp_path / "ml-out.onnx").read_bytes()) == [("", 11), ("ai.onnx.ml", 1)]
