"""The gate per function (docs/functions.md): evidence is the candidate's results on its function's current
badcase test set and on its test splits; missing evidence is asked of MTT and the request waits; then
thresholds on the named set, regressed and untested badcases of the function, and failed tests decide."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from mlife_shared.events import contracts
from mlife_shared.events.contracts import ModelUploaded
from mlife_shared.objectstore.base import iterate
from msm.registry.consumers import on_model_uploaded
from msm.testing.consumers import on_testing_failed
from tests.msm.onnx_models import identity_classifier
from tests.support.msm import (
    MAINTAINER,
    badcase_test_set,
    deliver,
    deploy,
    deployment,
    outbox,
    production,
    result_on,
    version,
)

A, B, C = (str(uuid.uuid4()) for _ in range(3))


def states(detail: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(e["model_version_id"], e["dataset_id"]): e["state"] for e in detail["gate"]["evidence"]}


async def test_gate_blocks_a_regression_passes_a_better_version_and_records_overrides(msm: httpx.AsyncClient) -> None:
    split, bset = uuid.uuid4(), await badcase_test_set(msm, "emotion")
    v1, v2, v3 = [await version(msm, splits=[split], seed=i) for i in range(3)]
    for v, outcomes, accuracy in ((v1, {A: True, B: False, C: True}, 0.90), (v2, {A: False, B: True, C: True}, 0.93),
                                  (v3, {A: True, B: True, C: True}, 0.95)):
        await result_on(msm, v, bset, "badcase_test_set", 1.0, outcomes)
        await result_on(msm, v, split, "test_split", accuracy)
    await production(msm, v1)

    preview = (await msm.get(f"/model-versions/{v2['id']}/gate", params={"metric": "accuracy", "min": 0.85})).json()
    assert preview["passed"] is False and preview["regressed_badcases"] == [A], preview
    assert preview["function"] == "emotion" and preview["production_version_id"] == v1["id"]
    assert (await msm.get(f"/model-versions/{v3['id']}/gate")).json()["passed"] is True
    assert (await msm.get(f"/model-versions/{v3['id']}/gate", params={"metric": "accuracy"})).status_code == 422
    blocked = await deploy(msm, v2, thresholds={"accuracy": {"min": 0.85}})
    assert blocked.status_code == 409, blocked.text
    detail = blocked.json()["detail"]
    assert blocked.json()["error"] == "GateBlocked"
    assert detail["regressed_badcases"] == [A] and detail["untested_badcases"] == []
    assert any("production emotion v1 passes" in r for r in detail["reasons"])
    assert await outbox(msm, "deployment.requested") == []
    record = await deployment(msm, detail["deployment_id"])
    assert record["status"] == "blocked" and record["function"] == "emotion"
    assert {b["badcase_id"]: b["note"] for b in record["badcases"]}[A] == "regressed"

    too_low = await deploy(msm, v3, thresholds={"accuracy": {"min": 0.99}})
    assert too_low.status_code == 409 and "below the minimum" in too_low.json()["detail"]["reasons"][0]

    passed = await deploy(msm, v3, thresholds={"accuracy": {"min": 0.9}})
    assert passed.status_code == 201, passed.text
    assert passed.json()["status"] == "requested" and passed.json()["gate"]["passed"] is True
    assert passed.json()["gate"]["versions"][0]["fixed_badcases"] == [B]
    requested = await outbox(msm, "deployment.requested")
    assert [e["data"]["deployment_id"] for e in requested] == [passed.json()["id"]]
    assert requested[0]["data"]["overridden"] is False
    assert await outbox(msm, "testing.requested") == []  # every piece of evidence was there

    # Override: engineers cannot, maintainers can with a reason (recorded); only then deployment.requested.
    assert (await msm.post(f"/deployments/{detail['deployment_id']}/override",
                           json={"reason": "hotfix"})).status_code == 403
    assert (await msm.post(f"/deployments/{detail['deployment_id']}/override", json={},
                           headers=MAINTAINER)).status_code == 422
    over = await msm.post(f"/deployments/{detail['deployment_id']}/override",
                          json={"reason": "A is a labelling error"}, headers=MAINTAINER)
    assert over.status_code == 200, over.text
    assert (over.json()["overridden"], over.json()["override_by"], over.json()["status"]) == (True, "mia",
                                                                                             "requested")
    assert [h["status"] for h in over.json()["history"]] == ["blocked", "requested"]
    events = await outbox(msm, "deployment.requested")
    assert events[-1]["data"]["overridden"] is True
    assert events[-1]["data"]["override_reason"] == "A is a labelling error"
    again = await msm.post(f"/deployments/{detail['deployment_id']}/override", json={"reason": "again"},
                           headers=MAINTAINER)
    assert again.status_code == 409


async def test_missing_evidence_waits_asks_mtt_and_is_decided_when_the_results_arrive(msm: httpx.AsyncClient) -> None:
    split, bset = uuid.uuid4(), await badcase_test_set(msm, "emotion")
    v1 = await version(msm, splits=[split])
    await result_on(msm, v1, bset, "badcase_test_set", 1.0, {A: True, B: True})
    await production(msm, v1)
    v2 = await version(msm, splits=[split], seed=1)

    got = await deploy(msm, v2)
    assert got.status_code == 202, got.text
    body = got.json()
    assert body["status"] == "awaiting_tests" and body["gate"]["awaiting"] is True
    assert states(body) == {(v2["id"], str(bset)): "pending", (v2["id"], str(split)): "pending",
                            (v1["id"], str(bset)): "done"}  # production's result on the set, to compare with
    asked = [e["data"] for e in await outbox(msm, "testing.requested")]
    assert sorted((a["model_version_id"], a["dataset_id"], a["set_kind"]) for a in asked) == sorted(
        [(v2["id"], str(bset), "badcase_test_set"), (v2["id"], str(split), "test_split")])
    assert {(a["format"], a["object_key"], a["function"], a["model_name"], a["model_version"]) for a in asked} == {
        ("onnx", v2["object_key"], "emotion", "emotion", "2")}
    # The preview reports the same wait and sends nothing.
    preview = (await msm.get(f"/model-versions/{v2['id']}/gate")).json()
    assert preview["awaiting"] is True and preview["passed"] is False
    assert len(await outbox(msm, "testing.requested")) == 2

    await result_on(msm, v2, split, "test_split", 0.97)
    waiting = await deployment(msm, body["id"])
    assert waiting["status"] == "awaiting_tests"
    assert states(waiting) == {(v2["id"], str(bset)): "pending", (v2["id"], str(split)): "done",
                               (v1["id"], str(bset)): "done"}
    await result_on(msm, v2, bset, "badcase_test_set", 0.5, {A: False, B: True})
    blocked = await deployment(msm, body["id"])
    assert blocked["status"] == "blocked", blocked["gate"]
    assert blocked["gate"]["regressed_badcases"] == [A]
    assert [h["status"] for h in blocked["history"]] == ["awaiting_tests", "blocked"]
    assert await outbox(msm, "deployment.requested") == []

    # A new badcase test set while a request waits: production and the candidate are asked for results on it.
    v3 = await version(msm, splits=[split], seed=2)
    third = (await deploy(msm, v3)).json()
    assert third["status"] == "awaiting_tests"
    bset2 = await badcase_test_set(msm, "emotion", version=2)
    asked = [(e["data"]["model_version_id"], e["data"]["dataset_id"]) for e in await outbox(msm, "testing.requested")]
    assert (v1["id"], str(bset2)) in asked and (v3["id"], str(bset2)) in asked
    now = await deployment(msm, third["id"])
    assert now["gate"]["badcase_test_set_id"] == str(bset2)
    assert states(now)[(v1["id"], str(bset2))] == "pending"
    await result_on(msm, v3, split, "test_split", 0.98)
    await result_on(msm, v3, bset2, "badcase_test_set", 1.0, {A: True, B: True, C: True})
    assert (await deployment(msm, third["id"]))["status"] == "awaiting_tests"  # production's result is missing
    await result_on(msm, v1, bset2, "badcase_test_set", 0.66, {A: True, B: True, C: False})
    passed = await deployment(msm, third["id"])
    assert passed["status"] == "requested", passed["gate"]
    assert passed["gate"]["versions"][0]["fixed_badcases"] == [C]
    requested = await outbox(msm, "deployment.requested")
    assert [e["data"]["deployment_id"] for e in requested] == [third["id"]]
    assert requested[0]["causation_id"] is not None  # caused by the testing.completed that completed the evidence


async def test_untested_badcases_block(msm: httpx.AsyncClient) -> None:
    split, bset = uuid.uuid4(), await badcase_test_set(msm, "emotion")
    v1, v2 = await version(msm, splits=[split]), await version(msm, splits=[split], seed=1)
    await result_on(msm, v1, bset, "badcase_test_set", 1.0, {A: True, B: True})
    await production(msm, v1)
    await result_on(msm, v2, split, "test_split", 0.99)
    await result_on(msm, v2, bset, "badcase_test_set", 1.0, {A: True})  # B never reached the candidate
    got = await deploy(msm, v2)
    assert got.status_code == 409, got.text
    detail = got.json()["detail"]
    assert detail["untested_badcases"] == [B] and detail["regressed_badcases"] == []
    assert any("never tested on 1 badcase(s)" in r for r in detail["reasons"])
    preview = (await msm.get(f"/model-versions/{v2['id']}/gate")).json()
    assert preview["passed"] is False and preview["untested_badcases"] == [B]


async def test_thresholds_apply_to_the_set_they_name_with_defaults_per_function(msm: httpx.AsyncClient) -> None:
    split, bset = uuid.uuid4(), await badcase_test_set(msm, "emotion")
    v1 = await version(msm, splits=[split])
    await result_on(msm, v1, split, "test_split", 0.943)
    await result_on(msm, v1, bset, "badcase_test_set", 1.0, {A: True})  # 12 samples, all right: the last result

    bare = (await msm.get(f"/model-versions/{v1['id']}/gate", params={"metric": "accuracy", "min": 0.95})).json()
    assert bare["passed"] is False
    assert any("accuracy = 0.943" in r and "test split" in r for r in bare["reasons"]), bare["reasons"]
    named = await deploy(msm, v1, thresholds={"test_split.accuracy": {"min": 0.95}})
    assert named.status_code == 409 and "0.943" in named.json()["detail"]["reasons"][0]
    on_badcases = await deploy(msm, v1, thresholds={"badcase_test_set.accuracy": {"min": 0.95},
                                                    "test_split.accuracy": {"min": 0.9}})
    assert on_badcases.status_code == 201, on_badcases.text

    # Defaults per function: a maintainer sets them; a request without thresholds gets them.
    assert (await msm.get("/functions/emotion/thresholds")).json()["thresholds"] == {}
    body = {"test_split.accuracy": {"min": 0.95}}
    assert (await msm.put("/functions/emotion/thresholds", json={"thresholds": body})).status_code == 403
    assert (await msm.put("/functions/emotion/thresholds", json={"thresholds": {"accuracy": {}}},
                          headers=MAINTAINER)).status_code == 422
    put = await msm.put("/functions/emotion/thresholds", json={"thresholds": body}, headers=MAINTAINER)
    assert put.status_code == 200, put.text
    assert put.json()["thresholds"] == body and put.json()["updated_by"] == "mia"
    assert (await msm.get("/functions/emotion/thresholds")).json()["thresholds"] == body
    assert (await msm.get("/functions/shapes/thresholds")).json()["thresholds"] == {}
    defaulted = await deploy(msm, v1)
    assert defaulted.status_code == 409 and "0.943" in defaulted.json()["detail"]["reasons"][0]
    assert (await msm.get(f"/model-versions/{v1['id']}/gate")).json()["thresholds"] == body
    given = await deploy(msm, v1, thresholds={"test_split.accuracy": {"min": 0.9}})
    assert given.status_code == 201, given.text


async def test_a_failed_test_blocks_with_its_reason_and_a_wait_can_be_overridden(msm: httpx.AsyncClient) -> None:
    split, bset = uuid.uuid4(), await badcase_test_set(msm, "emotion")
    v1 = await version(msm, splits=[split])
    got = (await deploy(msm, v1)).json()
    assert got["status"] == "awaiting_tests"
    reason = "an image is 8x8; the declared size is 32x32"
    await deliver(msm, on_testing_failed, contracts.TestingFailed(
        task_id=uuid.uuid4(), model_name="emotion", model_version="1", model_version_id=uuid.UUID(v1["id"]),
        dataset_id=bset, function="emotion", set_kind="badcase_test_set", incompatible=True, reason=reason))
    waiting = await deployment(msm, got["id"])
    assert waiting["status"] == "awaiting_tests"
    failed = [e for e in waiting["gate"]["evidence"] if e["state"] == "failed"]
    assert [(e["dataset_id"], e["reason"]) for e in failed] == [(str(bset), f"incompatible: {reason}")]
    await result_on(msm, v1, split, "test_split", 0.99)
    blocked = await deployment(msm, got["id"])
    assert blocked["status"] == "blocked"
    assert any(reason in r for r in blocked["gate"]["reasons"]), blocked["gate"]["reasons"]

    # A maintainer may deploy one that is still waiting, with a reason (recorded).
    v2 = await version(msm, splits=[split], seed=1)
    second = (await deploy(msm, v2)).json()
    assert second["status"] == "awaiting_tests"
    over = await msm.post(f"/deployments/{second['id']}/override", json={"reason": "urgent fix, tests later"},
                          headers=MAINTAINER)
    assert over.status_code == 200, over.text
    assert over.json()["status"] == "requested" and over.json()["override_reason"] == "urgent fix, tests later"
    assert [h["status"] for h in over.json()["history"]] == ["awaiting_tests", "requested"]
    # Its results arriving later change nothing.
    await result_on(msm, v2, split, "test_split", 0.1)
    assert (await deployment(msm, second["id"]))["status"] == "requested"


async def test_a_model_without_a_function_cannot_be_deployed(msm: httpx.AsyncClient) -> None:
    v1 = await version(msm, function=None, splits=[uuid.uuid4()])
    for got in (await deploy(msm, v1), await msm.get(f"/model-versions/{v1['id']}/gate"),
                await deploy(msm, v1, override_reason="no function needed?", headers=MAINTAINER)):
        assert got.status_code == 422, got.text
        assert "set the function of model 'emotion' first" in got.json()["detail"]
        assert "PATCH /api/msm/models/emotion" in got.json()["detail"]
    assert (await msm.patch("/models/emotion", json={"function": ""})).status_code == 422
    assert (await msm.patch("/models/emotion", json={"function": "emotion"})).status_code == 200
    assert (await deploy(msm, v1, function="other")).status_code == 422
    assert (await deploy(msm, v1)).status_code == 202
    assert (await msm.patch("/models/emotion", json={"function": None})).status_code == 422


async def test_the_function_and_test_splits_come_from_model_uploaded(msm: httpx.AsyncClient) -> None:
    store = msm.app.state.raw_store  # type: ignore[attr-defined]
    await store.put("mtt/models/t1/model.onnx", iterate(identity_classifier(4)))
    split = uuid.uuid4()
    await deliver(msm, on_model_uploaded, ModelUploaded(
        task_id=uuid.uuid4(), model_name="digits", object_key="mtt/models/t1/model.onnx", format="onnx",
        md5="0" * 32, size=10, function="digits", test_dataset_ids=[split]))
    model = (await msm.get("/models/digits")).json()
    assert model["function"] == "digits"
    assert model["versions"][0]["test_dataset_ids"] == [str(split)]
    event = (await outbox(msm, "model.registered"))[0]["data"]
    assert (event["function"], event["test_dataset_ids"]) == ("digits", [str(split)])
    # A later upload with another function does not change the declared one (PATCH does).
    await deliver(msm, on_model_uploaded, ModelUploaded(
        task_id=uuid.uuid4(), model_name="digits", object_key="mtt/models/t1/model.onnx", format="onnx",
        md5="0" * 32, size=10, function="other"))
    assert (await msm.get("/models/digits")).json()["function"] == "digits"
    assert [e["data"]["function"] for e in await outbox(msm, "model.registered")] == ["digits", "digits"]


async def test_two_functions_do_not_see_each_others_badcase_test_sets(msm: httpx.AsyncClient) -> None:
    digits_split, shapes_split = uuid.uuid4(), uuid.uuid4()
    d1 = await version(msm, "digits", "digits", [digits_split])
    s1 = await version(msm, "shapes", "shapes", [shapes_split])
    digits_set = await badcase_test_set(msm, "digits")
    await result_on(msm, d1, digits_set, "badcase_test_set", 1.0, {A: True, B: True})
    await production(msm, d1)
    await production(msm, s1)
    # A shapes badcase test set: shapes' production is asked for a result on it, digits' is not.
    shapes_set = await badcase_test_set(msm, "shapes")
    asked = [(e["data"]["model_version_id"], e["data"]["dataset_id"]) for e in await outbox(msm, "testing.requested")]
    assert asked == [(s1["id"], str(shapes_set))]
    await result_on(msm, s1, shapes_set, "badcase_test_set", 1.0, {C: True})

    d2 = await version(msm, "digits", "digits", [digits_split], seed=1)
    s2 = await version(msm, "shapes", "shapes", [shapes_split], seed=1)
    digits_gate = (await msm.get(f"/model-versions/{d2['id']}/gate")).json()
    shapes_gate = (await msm.get(f"/model-versions/{s2['id']}/gate")).json()
    assert {e["dataset_id"] for e in digits_gate["evidence"]} == {str(digits_set), str(digits_split)}
    assert {e["dataset_id"] for e in shapes_gate["evidence"]} == {str(shapes_set), str(shapes_split)}
    assert (digits_gate["production_version_id"], shapes_gate["production_version_id"]) == (d1["id"], s1["id"])
    await result_on(msm, s2, shapes_split, "test_split", 0.99)
    await result_on(msm, s2, shapes_set, "badcase_test_set", 1.0, {C: True})
    shapes = (await msm.get(f"/model-versions/{s2['id']}/gate")).json()
    assert shapes["passed"] is True and shapes["untested_badcases"] == []  # digits' A and B are not its business
    await result_on(msm, d2, digits_split, "test_split", 0.99)
    await result_on(msm, d2, digits_set, "badcase_test_set", 0.5, {A: True, B: False})
    digits = (await msm.get(f"/model-versions/{d2['id']}/gate")).json()
    assert digits["regressed_badcases"] == [B] and digits["untested_badcases"] == []  # shapes' C is not either
    assert (await deploy(msm, s2, name="shapes")).status_code == 201
    assert (await deploy(msm, d2, name="digits")).status_code == 409


async def test_moving_production_sends_model_promoted(msm: httpx.AsyncClient) -> None:
    split, bset = uuid.uuid4(), await badcase_test_set(msm, "emotion")
    v1, v2 = await version(msm, splits=[split]), await version(msm, splits=[split], seed=1)
    await result_on(msm, v1, bset, "badcase_test_set", 1.0, {A: True})
    await production(msm, v1)
    await production(msm, v2)
    staging = await msm.post("/models/emotion/aliases", json={"alias": "staging", "version": "1"})
    assert staging.status_code == 200
    reverted = await msm.post("/models/emotion/aliases/production/revert", json={"reason": "v2 misbehaves"},
                              headers=MAINTAINER)
    assert reverted.status_code == 200, reverted.text
    promoted = [e["data"] for e in await outbox(msm, "model.promoted")]
    assert [(p["model_version_id"], p["model_version"], p["previous_version"]) for p in promoted] == [
        (v1["id"], "1", None), (v2["id"], "2", "1"), (v1["id"], "1", "2")]
    assert {(p["function"], p["model_name"]) for p in promoted} == {("emotion", "emotion")}
    # v2 had no result on the function's badcase test set: it is asked for one, so statuses follow it.
    asked = [(e["data"]["model_version_id"], e["data"]["dataset_id"]) for e in await outbox(msm, "testing.requested")]
    assert asked == [(v2["id"], str(bset))]
