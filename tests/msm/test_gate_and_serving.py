"""Deployments after the gate (test_gate.py): the deployer brings them up; predictions (single, batch, A/B,
shadow) are validated and micro-batched; feedback reaches BAM's contract; rollback restores the previous
deployment."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from typing import Any

import httpx
import numpy as np

from tests.msm.onnx_models import classifier, identity_classifier
from tests.support.auth import FreshRole, as_role
from tests.support.msm import bring_up, count, outbox, upload

MAINTAINER = FreshRole("maintainer", "mia")


async def deploy(msm: httpx.AsyncClient, **body: Any) -> httpx.Response:
    body.setdefault("name", "emotion")
    return await msm.post("/deployments", json=body, headers=body.pop("headers", None))


async def registered(msm: httpx.AsyncClient, data: bytes) -> dict[str, Any]:
    got = await upload(msm, "emotion", data)
    assert got.status_code == 201, got.text
    if (await msm.get("/models/emotion")).json()["function"] is None:
        assert (await msm.patch("/models/emotion", json={"function": "emotion"})).status_code == 200
    return got.json()


async def test_bad_deployment_requests(msm: httpx.AsyncClient) -> None:
    v1 = await registered(msm, identity_classifier(4))
    cases = [
        {"versions": [{"model_version_id": str(uuid.uuid4())}]},
        {"versions": [{"model_version_id": v1["id"]}], "routing": "ab"},
        {"versions": [{"model_version_id": v1["id"]}, {"model_version_id": v1["id"]}]},
        {"versions": [{"model_version_id": v1["id"]}], "name": "Bad Name!"},
        {"versions": [{"model_version_id": v1["id"]}], "thresholds": {"accuracy": {}}},
        {"versions": [], "name": "x"},
        {"versions": [{"model_version_id": v1["id"]}], "target": "mars"},
    ]
    for body in cases:
        got = await deploy(msm, **body)
        assert got.status_code == 422, (body, got.text)
    assert await count(msm, "deployment") == 0


async def live(msm: httpx.AsyncClient, versions: list[dict[str, Any]], routing: str = "single",
               name: str = "emotion") -> dict[str, Any]:
    got = await deploy(msm, name=name, versions=versions, routing=routing, override_reason="test deployment",
                       headers=MAINTAINER, metrics_schema={"client_id": "string", "pending_ms": "number"})
    assert got.status_code == 201, got.text
    await bring_up(msm)
    detail = (await msm.get(f"/deployments/{got.json()['id']}")).json()
    assert detail["status"] == "live", detail
    return detail


async def test_predict_single_batch_and_validation(msm: httpx.AsyncClient) -> None:
    v1 = await registered(msm, identity_classifier(4))
    dep = await live(msm, [{"model_version_id": v1["id"]}])
    assert [e["data"]["deployment_id"] for e in await outbox(msm, "deployment.succeeded")] == [dep["id"]]

    single = await msm.post("/serve/emotion/predict", json={"inputs": {"x": [0, 0, 1, 0]}})
    assert single.status_code == 200, single.text
    body = single.json()
    assert body["batch"] is False and np.argmax(body["outputs"]["probs"]) == 2
    assert body["model_version"] == "1" and body["deployment_id"] == dep["id"] and body["logged"] is True
    batch = await msm.post(f"/serve/{dep['id']}/predict", json={"inputs": {"x": [[1, 0, 0, 0], [0, 0, 0, 1]]}})
    assert batch.json()["batch"] is True
    assert np.argmax(batch.json()["outputs"]["probs"], axis=1).tolist() == [0, 3]

    bad = {
        "wrong width": {"inputs": {"x": [1, 2, 3]}},
        "wrong rank": {"inputs": {"x": [[[1, 2, 3, 4]]]}},
        "wrong dtype": {"inputs": {"x": ["a", "b", "c", "d"]}},
        "ragged": {"inputs": {"x": [[1, 2, 3, 4], [1, 2]]}},
        "unknown input": {"inputs": {"y": [1, 2, 3, 4]}},
        "nan": {"inputs": {"x": [1, 2, 3, float("inf")]}},
        "extra field": {"inputs": {"x": [1, 2, 3, 4]}, "bogus": 1},
        "empty batch": {"inputs": {"x": []}},
    }
    for case, payload in bad.items():
        got = await msm.post("/serve/emotion/predict", content=json.dumps(payload).replace("Infinity", "1e999"),
                             headers={"content-type": "application/json"})
        assert got.status_code == 422, (case, got.text)
    assert (await msm.post("/serve/emotion/predict", content=b"{not json")).status_code == 422
    msm.app.state.settings.max_input_elements = 8  # type: ignore[attr-defined]
    huge = await msm.post("/serve/emotion/predict", json={"inputs": {"x": [[0, 0, 0, 1]] * 3}})
    assert huge.status_code == 413
    msm.app.state.settings.max_request_bytes = 1000  # type: ignore[attr-defined]
    big_body = await msm.post("/serve/emotion/predict", json={"inputs": {"x": [[0.5] * 4] * 100}})
    assert big_body.status_code == 413
    assert (await msm.post("/serve/nope/predict", json={"inputs": {"x": [1, 0, 0, 0]}})).status_code == 404

    # Concurrent requests share session runs (micro-batching); every answer is still its own.
    msm.app.state.settings.max_input_elements = 10_000  # type: ignore[attr-defined]
    msm.app.state.settings.max_request_bytes = 1 << 20  # type: ignore[attr-defined]
    hot = [int(i % 4) for i in range(64)]
    answers = await asyncio.gather(*(msm.post("/serve/emotion/predict", json={"inputs": {"x": np.eye(4)[h].tolist()}})
                                     for h in hot))
    assert [int(np.argmax(a.json()["outputs"]["probs"])) for a in answers] == hot
    stats = (await msm.get("/serve/emotion/stats")).json()
    assert stats["latency"]["emotion:1"]["count"] >= 66
    assert stats["batching"][v1["id"]]["rows"] >= 66
    metrics = (await msm.get("/metrics")).text
    assert 'mlife_msm_predict_seconds_count{deployment="emotion",version="1"}' in metrics

    # The sampled log holds the input and the output.
    log = await msm.app.state.store.stat(f"predictions/{dep['id']}/{body['prediction_id']}.json")  # type: ignore[attr-defined]
    assert log is not None


async def test_ab_and_shadow_deployments(msm: httpx.AsyncClient) -> None:
    v1 = await registered(msm, identity_classifier(4))
    # v2 answers the reverse class: which version served is visible in the output.
    v2 = await registered(msm, classifier(np.fliplr(np.eye(4, dtype=np.float32)) * 10))
    await live(msm, [{"model_version_id": v1["id"], "weight": 1}, {"model_version_id": v2["id"], "weight": 3}],
               routing="ab")
    served = {"1": 0, "2": 0}
    for _ in range(80):
        got = (await msm.post("/serve/emotion/predict", json={"inputs": {"x": [1, 0, 0, 0]}})).json()
        served[got["model_version"]] += 1
        assert int(np.argmax(got["outputs"]["probs"])) == (0 if got["model_version"] == "1" else 3)
    assert served["1"] > 0 and served["2"] > 0

    shadow = await live(msm, [{"model_version_id": v1["id"]}, {"model_version_id": v2["id"], "role": "shadow"}],
                        routing="shadow", name="emotion-shadow")
    got = (await msm.post("/serve/emotion-shadow/predict", json={"inputs": {"x": [1, 0, 0, 0]}})).json()
    assert got["model_version"] == "1"
    registry = msm.app.state.serving  # type: ignore[attr-defined]
    await asyncio.gather(*registry.background)
    store = msm.app.state.store  # type: ignore[attr-defined]
    record = json.loads(b"".join([c async for c in await store.get(f"predictions/{shadow['id']}/"
                                                                    f"{got['prediction_id']}.shadow.json")]))
    assert int(np.argmax(record["shadow_outputs"][v2["id"]]["probs"])) == 3


async def test_feedback_becomes_serving_feedback_with_what_bam_needs(msm: httpx.AsyncClient) -> None:
    v1 = await registered(msm, identity_classifier(4))
    await msm.patch("/models/emotion", json={"function": "emotion-recognition"})
    dep = await live(msm, [{"model_version_id": v1["id"]}])
    answer = (await msm.post("/serve/emotion/predict", json={"inputs": {"x": [0, 1, 0, 0]}})).json()
    got = await msm.post("/serve/emotion/feedback", json={
        "prediction_id": answer["prediction_id"], "inputs": {"x": [0, 1, 0, 0]}, "prediction": 1,
        "correct_label": 2, "client_id": "app-7", "device_id": "pixel-9"}, headers=as_role("tester"))
    assert got.status_code == 201, got.text
    event = (await outbox(msm, "serving.feedback"))[0]["data"]
    assert event == {"deployment_id": dep["id"], "model_name": "emotion", "model_version": "1",
                     "function": "emotion-recognition", "model_version_id": v1["id"],
                     "prediction_id": answer["prediction_id"],
                     "input_ref": got.json()["input_ref"], "prediction": 1, "correct_label": 2,
                     "client_id": "app-7", "device_id": "pixel-9"}
    assert event["input_ref"].startswith("msm/feedback/")
    stored = b"".join([c async for c in await msm.app.state.raw_store.get(event["input_ref"])])  # type: ignore[attr-defined]
    # The served sample as a typed array file the evaluator reads (test_serving_many.py has the details).
    assert event["input_ref"].endswith("/input.npy")
    assert np.load(io.BytesIO(stored), allow_pickle=False).tolist() == [0, 1, 0, 0]

    # Without the input, the logged prediction is the reference.
    by_log = await msm.post("/serve/emotion/feedback", json={"prediction_id": answer["prediction_id"],
                                                             "correct_label": 2}, headers=as_role("tester"))
    assert by_log.status_code == 201 and by_log.json()["input_ref"].endswith("/input.npy")
    for bad in ({"correct_label": 2}, {"correct_label": 2, "inputs": {"x": [1, 2]}},
                {"correct_label": 2, "input_ref": "https://evil/x"},
                {"correct_label": 2, "input_ref": "msm/x", "model_version_id": str(uuid.uuid4())}):
        assert (await msm.post("/serve/emotion/feedback", json=bad,
                               headers=as_role("tester"))).status_code == 422, bad
    assert (await msm.post("/serve/emotion/feedback", json={"correct_label": 1, "input_ref": "a" * 32},
                           headers=as_role("viewer"))).status_code == 403
    nan = await msm.post("/serve/emotion/feedback", content=b'{"correct_label": NaN, "input_ref": "msm/x"}',
                         headers={**as_role("tester"), "content-type": "application/json"})
    assert nan.status_code == 422
    nul = await msm.post("/serve/emotion/feedback", json={"correct_label": 1, "client_id": "a\x00b",
                                                          "input_ref": "msm/x"}, headers=as_role("tester"))
    assert nul.status_code == 422
    assert (await msm.post("/serve/emo%00tion/predict", json={"inputs": {"x": [1, 0, 0, 0]}})).status_code == 422
    assert (await msm.post("/serve/emotion/predict", json={"inputs": {"x": [1, 0, 0, 0]}},
                           headers={"X-MLife-Identity": "garbage"})).status_code == 401
    assert len(await outbox(msm, "serving.feedback")) == 2


async def test_rollback_restores_the_previous_deployment(msm: httpx.AsyncClient) -> None:
    v1 = await registered(msm, identity_classifier(4))
    v2 = await registered(msm, classifier(np.fliplr(np.eye(4, dtype=np.float32)) * 10))
    first = await live(msm, [{"model_version_id": v1["id"]}])
    cannot = await msm.post(f"/deployments/{first['id']}/rollback", json={}, headers=MAINTAINER)
    assert cannot.status_code == 409
    second = await live(msm, [{"model_version_id": v2["id"]}])
    assert second["previous_deployment_id"] == first["id"]
    assert (await msm.get(f"/deployments/{first['id']}")).json()["status"] == "superseded"
    assert (await msm.post("/serve/emotion/predict", json={"inputs": {"x": [1, 0, 0, 0]}})).json()["model_version"] == "2"

    assert (await msm.post(f"/deployments/{second['id']}/rollback", json={})).status_code == 403
    back = await msm.post(f"/deployments/{second['id']}/rollback", json={"reason": "v2 is wrong"}, headers=MAINTAINER)
    assert back.status_code == 200, back.text
    assert back.json()["id"] == first["id"] and back.json()["status"] == "live"
    assert (await msm.get(f"/deployments/{second['id']}")).json()["status"] == "rolled_back"
    event = (await outbox(msm, "deployment.rolled_back"))[0]["data"]
    assert event == {"deployment_id": second["id"], "function": "emotion", "restored_deployment_id": first["id"]}
    registry = msm.app.state.serving  # type: ignore[attr-defined]
    registry.views.clear()  # as after serving_refresh_seconds
    assert (await msm.post("/serve/emotion/predict", json={"inputs": {"x": [1, 0, 0, 0]}})).json()["model_version"] == "1"
    # v2 is no longer used by a live deployment: unloaded once idle (0 s here), v1 stays.
    assert uuid.UUID(v2["id"]) in registry.models
    msm.app.state.settings.serving_unload_idle_seconds = 0  # type: ignore[attr-defined]
    assert registry.prune() == [uuid.UUID(v2["id"])]
    assert set(registry.models) == {uuid.UUID(v1["id"])}
    assert (await msm.post(f"/serve/{second['id']}/predict", json={"inputs": {"x": [1, 0, 0, 0]}})).status_code == 404


async def test_user_metrics_and_attached_badcases(msm: httpx.AsyncClient) -> None:
    v1 = await registered(msm, identity_classifier(4))
    dep = await live(msm, [{"model_version_id": v1["id"]}])
    ok = await msm.post(f"/deployments/{dep['id']}/metrics", json={"values": {"client_id": "c1", "pending_ms": 12.5}})
    assert ok.status_code == 201, ok.text
    for bad in ({"values": {"unknown": 1}}, {"values": {"pending_ms": "slow"}}, {"values": {"client_id": 3}}):
        assert (await msm.post(f"/deployments/{dep['id']}/metrics", json=bad)).status_code == 422
    listed = (await msm.get(f"/deployments/{dep['id']}/metrics")).json()
    assert [m["values"] for m in listed] == [{"client_id": "c1", "pending_ms": 12.5}]
    bc = str(uuid.uuid4())
    attached = await msm.post(f"/deployments/{dep['id']}/badcases", json={"badcase_ids": [bc, bc], "note": "seen"})
    assert [(b["badcase_id"], b["source"]) for b in attached.json()["badcases"]] == [(bc, "manual")]


async def test_deployment_of_a_broken_model_fails(msm: httpx.AsyncClient) -> None:
    v1 = await registered(msm, identity_classifier(4))
    await msm.app.state.raw_store.delete(v1["object_key"])  # type: ignore[attr-defined]
    got = await deploy(msm, versions=[{"model_version_id": v1["id"]}], override_reason="test", headers=MAINTAINER)
    await bring_up(msm)
    detail = (await msm.get(f"/deployments/{got.json()['id']}")).json()
    assert detail["status"] == "failed" and detail["failure_reason"]
    assert [e["data"]["deployment_id"] for e in await outbox(msm, "deployment.failed")] == [detail["id"]]


async def test_docker_and_edge_targets_store_their_artifacts(msm: httpx.AsyncClient) -> None:
    import io
    import tarfile

    v1 = await registered(msm, identity_classifier(4))
    for target, name in (("docker", "docker-context.tar"), ("edge", "edge-package.tar.gz")):
        got = await deploy(msm, name=f"emotion-{target}", target=target, override_reason="artifact test",
                           versions=[{"model_version_id": v1["id"]}], headers=MAINTAINER)
        assert got.status_code == 201, got.text
        await bring_up(msm)
        detail = (await msm.get(f"/deployments/{got.json()['id']}")).json()
        assert detail["status"] == "live" and detail["artifact_key"].endswith(name)
        data = b"".join([c async for c in await msm.app.state.raw_store.get(detail["artifact_key"])])  # type: ignore[attr-defined]
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = tar.getnames()
        assert ("Dockerfile" in names) if target == "docker" else (f"models/{v1['id']}.onnx" in names)
        served = await msm.post(f"/serve/emotion-{target}/predict", json={"inputs": {"x": [1, 0, 0, 0]}})
        assert served.status_code == 409
