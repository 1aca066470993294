"""The gate with two of everything: two models sharing one function (whose production is the function's?), two
transactions deciding the same waiting deployment at once, two first PUTs of a function's thresholds; and the
bounds a threshold cannot take."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from msm.deployment.service import DeploymentService
from tests.support.msm import MAINTAINER, badcase_test_set, deploy, deployment, outbox, production, result_on, version

A = str(uuid.uuid4())  # a badcase id


async def redecide(msm: httpx.AsyncClient, function: str) -> None:
    """Another worker deciding again the function's waiting deployments, in its own transaction."""
    async with msm.app.state.db.transaction() as session:  # type: ignore[attr-defined]
        await DeploymentService(session).reevaluate(function=function)


async def test_two_models_of_one_function_share_its_production(msm: httpx.AsyncClient) -> None:
    split, bset = uuid.uuid4(), await badcase_test_set(msm, "digits")
    a1 = await version(msm, "digits-a", "digits", [split])
    await result_on(msm, a1, bset, "badcase_test_set", 1.0, {A: True})
    await production(msm, a1)
    b1 = await version(msm, "digits-b", "digits", [split])
    await production(msm, b1)  # moved last: the function's production now, though b1 has no result yet
    a2 = await version(msm, "digits-a", "digits", [split], seed=1)
    await result_on(msm, a2, split, "test_split", 0.99)
    await result_on(msm, a2, bset, "badcase_test_set", 1.0, {A: True})
    waiting = (await deploy(msm, a2, name="digits")).json()
    assert waiting["status"] == "awaiting_tests" and waiting["gate"]["production_version_id"] == b1["id"]

    # b's production alias is taken back (the revert of its first move removes it): a1 is the function's
    # production again; BAM is told, and the request that waited for b1's result is decided against a1.
    reverted = await msm.post("/models/digits-b/aliases/production/revert", json={"reason": "wrong model"},
                              headers=MAINTAINER)
    assert reverted.status_code == 200, reverted.text
    promoted = [(e["data"]["model_name"], e["data"]["model_version_id"]) for e in await outbox(msm, "model.promoted")]
    assert promoted == [("digits-a", a1["id"]), ("digits-b", b1["id"]), ("digits-a", a1["id"])]
    decided = await deployment(msm, waiting["id"])
    assert decided["status"] == "requested", decided["gate"]
    assert decided["gate"]["production_version_id"] == a1["id"]


async def test_two_transactions_deciding_one_waiting_deployment_request_it_once(msm: httpx.AsyncClient) -> None:
    split, bset = uuid.uuid4(), await badcase_test_set(msm, "emotion")
    v1 = await version(msm, splits=[split])
    waiting = [(await deploy(msm, v1, name=f"emotion-{i}")).json() for i in range(2)]  # two awaiting one version
    assert [w["status"] for w in waiting] == ["awaiting_tests"] * 2
    # The last two results arrive at two workers at once, while a third decides the function again.
    await asyncio.gather(result_on(msm, v1, split, "test_split", 0.99),
                         result_on(msm, v1, bset, "badcase_test_set", 1.0, {A: True}), redecide(msm, "emotion"))
    for w in waiting:
        assert (await deployment(msm, w["id"]))["status"] == "requested"
    requested = sorted(e["data"]["deployment_id"] for e in await outbox(msm, "deployment.requested"))
    assert requested == sorted(w["id"] for w in waiting)  # once each


async def test_concurrent_first_thresholds_of_a_function_all_succeed(msm: httpx.AsyncClient) -> None:
    bodies = [{"thresholds": {"test_split.accuracy": {"min": 0.9 + i / 100}}} for i in range(4)]
    answers = await asyncio.gather(*(msm.put("/functions/wine/thresholds", json=b, headers=MAINTAINER)
                                     for b in bodies))
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    final = (await msm.get("/functions/wine/thresholds")).json()["thresholds"]
    assert final in [b["thresholds"] for b in bodies]


async def test_bounds_a_threshold_cannot_take(msm: httpx.AsyncClient) -> None:
    v1 = await version(msm, splits=[uuid.uuid4()])
    for bound in ({"min": 0.9, "max": 0.1}, {"min": True}, {"max": "0.5"}):
        got = await deploy(msm, v1, thresholds={"accuracy": bound})
        assert got.status_code == 422, (bound, got.text)
        put = await msm.put("/functions/emotion/thresholds", json={"thresholds": {"accuracy": bound}},
                            headers=MAINTAINER)
        assert put.status_code == 422, (bound, put.text)
    too_many = {f"m{i}": {"min": 0.0} for i in range(51)}
    assert (await deploy(msm, v1, thresholds=too_many)).status_code == 422
    # NaN is not JSON, but Python's parser takes it; the preview's query takes "nan" as a float.
    nan = await msm.post("/deployments", content='{"name": "emotion", "versions": [{"model_version_id": "%s"}], '
                         '"thresholds": {"accuracy": {"min": NaN}}}' % v1["id"],
                         headers={"content-type": "application/json"})
    assert nan.status_code == 422, nan.text
    for params in ({"metric": "accuracy", "min": "nan"}, {"metric": "accuracy", "max": "-inf"},
                   {"metric": "accuracy", "min": 1, "max": 0}):
        got = await msm.get(f"/model-versions/{v1['id']}/gate", params=params)
        assert got.status_code == 422, (params, got.text)
    assert await outbox(msm, "deployment.requested") == []


async def test_one_deployment_serves_one_function(msm: httpx.AsyncClient) -> None:
    digits, shapes = await version(msm, "digits", "digits"), await version(msm, "shapes", "shapes")
    got = await msm.post("/deployments", json={
        "name": "mixed", "routing": "ab", "versions": [{"model_version_id": digits["id"], "weight": 1},
                                                       {"model_version_id": shapes["id"], "weight": 1}]},
        headers=MAINTAINER)
    assert got.status_code == 422 and "different functions" in got.json()["detail"], got.text
    assert (await msm.get("/deployments")).json() == []  # nothing half-written
