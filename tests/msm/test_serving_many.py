"""Serving answers one sample and a batch for every kind of model scikit-learn exports (integer labels,
string labels, ZipMap probabilities, regression); feedback keeps the served input as the typed array the
evaluator reads (`.npy`, `.npz` for several inputs, the image's MD5 when the client names one)."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from mlife_shared.events.contracts import DeploymentRequested
from mlife_shared.objectstore.base import read_all
from msm.deployment.consumers import on_deployment_requested
from tests.msm.onnx_models import (
    digits_features,
    identity_classifier,
    sklearn_classifier,
    sklearn_regressor,
    two_input_model,
)
from tests.support.auth import FreshRole, as_role
from tests.support.msm import deliver, outbox, upload

MAINTAINER = FreshRole("maintainer", "mia")
TESTER = FreshRole("tester", "tess")


async def serve(msm: httpx.AsyncClient, name: str, model: bytes, *, function: str | None = None) -> dict[str, Any]:
    """Register `model` as version 1 of `name`, give the model its function, deploy it live as `name`."""
    version = (await upload(msm, name, model)).json()
    assert "id" in version, version
    patched = await msm.patch(f"/models/{name}", json={"function": function or f"{name}-function"})
    assert patched.status_code == 200, patched.text
    got = await msm.post("/deployments", json={"name": name, "versions": [{"model_version_id": version["id"]}],
                                               "override_reason": "serving test"}, headers=MAINTAINER)
    assert got.status_code == 201, got.text
    for env in await outbox(msm, "deployment.requested"):
        if env["data"]["deployment_id"] == got.json()["id"]:
            await deliver(msm, on_deployment_requested, DeploymentRequested.model_validate(env["data"]))
    detail = (await msm.get(f"/deployments/{got.json()['id']}")).json()
    assert detail["status"] == "live", detail
    return {"deployment": detail, "version": version}


def run_locally(model: bytes, x: np.ndarray) -> list[Any]:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


async def stored(msm: httpx.AsyncClient, key: str) -> bytes:
    return await read_all(await msm.app.state.raw_store.get(key))  # type: ignore[attr-defined]


@pytest.mark.parametrize("labels, zipmap", [("int", False), ("string", False), ("string", True)])
async def test_a_classifier_answers_one_sample_and_a_batch(msm: httpx.AsyncClient, labels: str, zipmap: bool) -> None:
    x, y = digits_features(200)
    target = y if labels == "int" else np.array([f"digit-{v}" for v in y])
    model = sklearn_classifier(x, target, zipmap=zipmap)
    await serve(msm, "digits", model)
    expected_labels, expected_probs = run_locally(model, x[:3])

    single = await msm.post("/serve/digits/predict", json={"inputs": {"X": x[0].tolist()}})
    assert single.status_code == 200, single.text
    body = single.json()
    label_name, probs_name = list(body["outputs"])
    assert body["batch"] is False and body["outputs"][label_name] == expected_labels.tolist()[0]
    if zipmap:
        assert set(body["outputs"][probs_name]) == {str(k) for k in expected_probs[0]}
        assert body["outputs"][probs_name] == pytest.approx(expected_probs[0], abs=1e-5)
    else:
        assert body["outputs"][probs_name] == pytest.approx(expected_probs[0].tolist(), abs=1e-5)

    batch = await msm.post("/serve/digits/predict", json={"inputs": {"X": x[:3].tolist()}})
    assert batch.status_code == 200, batch.text
    outputs = batch.json()["outputs"]
    assert batch.json()["batch"] is True and outputs[label_name] == expected_labels.tolist()
    assert len(outputs[probs_name]) == 3
    one = await msm.post("/serve/digits/predict", json={"inputs": {"X": x[:1].tolist()}})
    assert one.status_code == 200 and one.json()["outputs"][label_name] == [expected_labels.tolist()[0]]
    # The sampled prediction log (JSON) holds the same answer.
    log = await stored(msm, f"msm/predictions/{body['deployment_id']}/{body['prediction_id']}.json")
    assert b'"outputs"' in log


async def test_a_regression_model_answers_floats(msm: httpx.AsyncClient) -> None:
    x, y = digits_features(200)
    model = sklearn_regressor(x, y.astype(np.float32))
    await serve(msm, "digit-value", model)
    (expected,) = run_locally(model, x[:2])

    single = await msm.post("/serve/digit-value/predict", json={"inputs": {"X": x[0].tolist()}})
    assert single.status_code == 200, single.text
    assert single.json()["outputs"]["variable"] == pytest.approx(expected[0].tolist(), abs=1e-4)
    batch = (await msm.post("/serve/digit-value/predict", json={"inputs": {"X": x[:2].tolist()}})).json()
    assert np.allclose(batch["outputs"]["variable"], expected, atol=1e-4)
    assert all(isinstance(row[0], float) for row in batch["outputs"]["variable"])


async def test_feedback_stores_the_sent_sample_as_a_typed_npy(msm: httpx.AsyncClient) -> None:
    served = await serve(msm, "emotion", identity_classifier(4), function="emotion-recognition")
    answer = (await msm.post("/serve/emotion/predict", json={"inputs": {"x": [0, 1, 0, 0]}})).json()
    # Integers sent for a float32 input: stored cast to the input's dtype, without a batch axis.
    got = await msm.post("/serve/emotion/feedback", json={
        "prediction_id": answer["prediction_id"], "inputs": {"x": [[0, 1, 0, 0]]}, "prediction": 1,
        "correct_label": 2}, headers=TESTER)
    assert got.status_code == 201, got.text
    input_ref = got.json()["input_ref"]
    assert input_ref.startswith("msm/feedback/") and input_ref.endswith("/input.npy")
    sample = np.load(io.BytesIO(await stored(msm, input_ref)), allow_pickle=False)
    assert sample.dtype == np.float32 and sample.shape == (4,)
    assert np.array_equal(sample, np.array([0, 1, 0, 0], dtype=np.float32))

    (event,) = [e["data"] for e in await outbox(msm, "serving.feedback")]
    assert event["input_ref"] == input_ref and event["model_version_id"] == served["version"]["id"]
    assert event["function"] == "emotion-recognition" and event["deployment_id"] == served["deployment"]["id"]

    batch = await msm.post("/serve/emotion/feedback", json={
        "inputs": {"x": [[0, 1, 0, 0], [1, 0, 0, 0]]}, "correct_label": 2}, headers=TESTER)
    assert batch.status_code == 422 and "one prediction" in batch.json()["detail"]
    wrong = await msm.post("/serve/emotion/feedback", json={"inputs": {"x": [0, 1]}, "correct_label": 2},
                           headers=TESTER)
    assert wrong.status_code == 422
    assert len(await outbox(msm, "serving.feedback")) == 1


async def test_bad_inputs_are_refused_before_anything_is_written(msm: httpx.AsyncClient) -> None:
    await serve(msm, "emotion", identity_classifier(4))
    deep = "[" * 100_000 + "]" * 100_000  # 200 kB, under the body limit; json.loads recurses on it
    bodies = {"nested too deeply": '{"correct_label": 2, "inputs": {"x": %s}}' % deep,
              "nested past numpy's 64 dimensions": '{"correct_label": 2, "inputs": {"x": %s}}' % (
                  "[" * 80 + "0" + "]" * 80),
              "text for float32": '{"correct_label": 2, "inputs": {"x": ["a", "b", "c", "d"]}}',
              "NaN": '{"correct_label": 2, "inputs": {"x": [NaN, 0, 0, 0]}}',
              "NaN in the label": '{"correct_label": NaN, "inputs": {"x": [0, 1, 0, 0]}}'}
    json_headers = {**TESTER, "content-type": "application/json"}
    for what, body in bodies.items():
        got = await msm.post("/serve/emotion/feedback", content=body, headers=json_headers)
        assert got.status_code == 422, (what, got.text)
    predict = await msm.post("/serve/emotion/predict", content=bodies["nested too deeply"], headers=json_headers)
    assert predict.status_code == 422, predict.text
    assert await outbox(msm, "serving.feedback") == []


async def test_feedback_on_a_logged_prediction_stores_its_input_as_npy(msm: httpx.AsyncClient) -> None:
    await serve(msm, "emotion", identity_classifier(4))
    answer = (await msm.post("/serve/emotion/predict", json={"inputs": {"x": [0.25, 1, 0, 0.5]}})).json()
    got = await msm.post("/serve/emotion/feedback", json={"prediction_id": answer["prediction_id"],
                                                          "correct_label": 3}, headers=TESTER)
    assert got.status_code == 201, got.text
    assert got.json()["input_ref"].endswith("/input.npy")
    sample = np.load(io.BytesIO(await stored(msm, got.json()["input_ref"])), allow_pickle=False)
    assert sample.dtype == np.float32 and sample.tolist() == [0.25, 1.0, 0.0, 0.5]

    batch = (await msm.post("/serve/emotion/predict", json={"inputs": {"x": [[0, 1, 0, 0], [1, 0, 0, 0]]}})).json()
    refused = await msm.post("/serve/emotion/feedback", json={"prediction_id": batch["prediction_id"],
                                                              "correct_label": 3}, headers=TESTER)
    assert refused.status_code == 422 and "one prediction" in refused.json()["detail"]
    unlogged = await msm.post("/serve/emotion/feedback", json={"prediction_id": str(uuid.uuid4()),
                                                               "correct_label": 3}, headers=TESTER)
    assert unlogged.status_code == 422 and "not logged" in unlogged.json()["detail"]


async def test_feedback_for_a_model_with_several_inputs_is_an_npz(msm: httpx.AsyncClient) -> None:
    await serve(msm, "pair", two_input_model())
    got = await msm.post("/serve/pair/feedback", json={"inputs": {"a": [1, 2, 3], "b": [4, 5]},
                                                       "correct_label": [0, 0, 0, 0, 0]}, headers=TESTER)
    assert got.status_code == 201, got.text
    assert got.json()["input_ref"].endswith("/input.npz")
    with np.load(io.BytesIO(await stored(msm, got.json()["input_ref"])), allow_pickle=False) as arrays:
        assert sorted(arrays.files) == ["a", "b"]
        assert arrays["a"].dtype == np.float32 and arrays["a"].tolist() == [1.0, 2.0, 3.0]
        assert arrays["b"].dtype == np.int64 and arrays["b"].tolist() == [4, 5]


async def test_feedback_keeps_the_image_a_client_names_by_md5(msm: httpx.AsyncClient) -> None:
    await serve(msm, "emotion", identity_classifier(4))
    md5 = "0123456789abcdef0123456789abcdef"
    got = await msm.post("/serve/emotion/feedback", json={"input_ref": md5, "correct_label": 1}, headers=TESTER)
    assert got.status_code == 201, got.text
    assert got.json()["input_ref"] == md5
    (event,) = [e["data"] for e in await outbox(msm, "serving.feedback")]
    assert event["input_ref"] == md5 and event["function"] == "emotion-function"
    assert (await msm.post("/serve/emotion/feedback", json={"input_ref": md5, "correct_label": 1},
                           headers=as_role("viewer"))).status_code == 403


async def test_predict_bodies_outside_the_usual_shape_get_the_model_errors(msm: httpx.AsyncClient) -> None:
    """The usual predict body is taken without building PredictRequest; every other shape still gets its 422s."""
    await serve(msm, "emotion", identity_classifier(4))
    sample = [0, 0, 1, 0]
    ok = await msm.post("/serve/emotion/predict", json={"inputs": {"x": sample}, "client_id": "c" * 200,
                                                        "device_id": None})
    assert ok.status_code == 200, ok.text
    bad = {"client_id too long": {"inputs": {"x": sample}, "client_id": "c" * 201},
           "client_id not text": {"inputs": {"x": sample}, "client_id": 7},
           "inputs not an object": {"inputs": [sample]},
           "no inputs": {"client_id": "c"},
           "not an object": [sample]}
    for what, body in bad.items():
        got = await msm.post("/serve/emotion/predict", json=body)
        assert got.status_code == 422, (what, got.text)
    for raw in (b'{"inputs": {"x": [NaN, 0, 0, 0]}}', b'{"inputs": {"x": [1e999, 0, 0, 0]}}',
                b'{"inputs": {"x": ' + b"[" * 2000 + b"]" * 2000 + b"}}"):
        got = await msm.post("/serve/emotion/predict", content=raw, headers={"content-type": "application/json"})
        assert got.status_code == 422, (raw[:40], got.text)
    assert (await msm.post("/serve/emotion/predict?q=%00", json={"inputs": {"x": sample}})).status_code == 422
