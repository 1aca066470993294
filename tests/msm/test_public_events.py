"""What MSM once sent to its own webhooks only is on the bus like its other events (the gateway's webhooks send
every public event): a blocked deployment and a moved alias are outbox rows, with the function where MSM knows
it; the deployment events carry their function."""

from __future__ import annotations

import httpx

from tests.msm.onnx_models import identity_classifier
from tests.support.auth import FreshRole
from tests.support.msm import outbox, upload

MAINTAINER = FreshRole("maintainer", "mia")


async def test_blocked_and_requested_deployments_are_events_with_their_function(msm: httpx.AsyncClient) -> None:
    version = (await upload(msm, "emotion", identity_classifier(4))).json()
    assert (await msm.patch("/models/emotion", json={"function": "emotion"})).status_code == 200
    blocked = await msm.post("/deployments", json={"name": "emotion",
                                                   "versions": [{"model_version_id": version["id"]}]})
    assert blocked.status_code == 409
    deployment_id = blocked.json()["detail"]["deployment_id"]
    over = await msm.post(f"/deployments/{deployment_id}/override", json={"reason": "bootstrap"},
                          headers=MAINTAINER)
    assert over.status_code == 200, over.text
    [event] = [e["data"] for e in await outbox(msm, "deployment.blocked")]
    assert event["deployment_id"] == deployment_id and event["function"] == "emotion" and event["name"] == "emotion"
    assert "nothing to be tested on" in event["reasons"][0]
    [requested] = [e["data"] for e in await outbox(msm, "deployment.requested")]
    assert requested["deployment_id"] == deployment_id and requested["function"] == "emotion"


async def test_alias_moves_are_events(msm: httpx.AsyncClient) -> None:
    await upload(msm, "emotion", identity_classifier(4))
    await upload(msm, "emotion", identity_classifier(4, seed=1))
    assert (await msm.patch("/models/emotion", json={"function": "emotion"})).status_code == 200
    for version, reason in (("1", "go"), ("2", "better")):
        moved = await msm.post("/models/emotion/aliases", json={"alias": "production", "version": version,
                                                                "reason": reason}, headers=MAINTAINER)
        assert moved.status_code in (200, 201), moved.text
    reverted = await msm.post("/models/emotion/aliases/production/revert", json={"reason": "oops"},
                              headers=MAINTAINER)
    assert reverted.status_code in (200, 201), reverted.text
    moves = sorted((e["data"] for e in await outbox(msm, "model.alias_moved")), key=lambda d: d["reason"])
    assert [(m["from_version"], m["to_version"], m["reason"], m["actor"], m["function"]) for m in moves] == [
        ("1", "2", "better", "mia", "emotion"), (None, "1", "go", "mia", "emotion"),
        ("2", "1", "oops", "mia", "emotion")]
