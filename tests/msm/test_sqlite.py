"""The embedded mode's database: the same flow on SQLite (registry, gate, deployer, serving, feedback)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mlife_shared.app import create_app
from mlife_shared.migrations import upgrade
from msm.app import SPEC
from tests.msm.onnx_models import identity_classifier
from tests.support.auth import as_role
from tests.support.msm import badcase_test_set, bring_up, make_settings, outbox, record_testing, upload


@pytest.fixture
async def msm_sqlite(nats_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'msm.db'}"
    await asyncio.to_thread(upgrade, "msm.migrations", url)
    app = create_app(SPEC, make_settings(url, nats_url, tmp_path))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://msm/api/msm",
                                     headers=as_role("engineer")) as client:
            client.app = app  # type: ignore[attr-defined]
            client.db_url = url  # type: ignore[attr-defined]
            yield client


async def test_the_whole_flow_on_sqlite(msm_sqlite: httpx.AsyncClient) -> None:
    msm = msm_sqlite
    answers = await asyncio.gather(*(upload(msm, "emotion", identity_classifier(4, seed=i)) for i in range(3)))
    assert sorted(a.json()["version"] for a in answers) == ["1", "2", "3"]
    by_version = {a.json()["version"]: a.json() for a in answers}
    assert (await msm.patch("/models/emotion", json={"function": "emotion"})).status_code == 200
    bset = await badcase_test_set(msm, "emotion")
    bc = str(uuid.uuid4())
    await record_testing(msm, "emotion", "1", {bc: True}, {"accuracy": 0.9}, bset, set_kind="badcase_test_set")
    await record_testing(msm, "emotion", "2", {bc: False}, {"accuracy": 0.95}, bset, set_kind="badcase_test_set")
    maintainer = as_role("maintainer")
    assert (await msm.post("/models/emotion/aliases", json={"alias": "production", "version": "1"},
                           headers=maintainer)).status_code == 200
    blocked = await msm.post("/deployments", json={"name": "emotion",
                                                   "versions": [{"model_version_id": by_version["2"]["id"]}]})
    assert blocked.status_code == 409 and blocked.json()["detail"]["regressed_badcases"] == [bc]
    waiting = await msm.post("/deployments", json={"name": "emotion",
                                                   "versions": [{"model_version_id": by_version["3"]["id"]}]})
    assert waiting.status_code == 202 and waiting.json()["status"] == "awaiting_tests"
    await record_testing(msm, "emotion", "3", {bc: False}, {"accuracy": 0.97}, bset, set_kind="badcase_test_set")
    assert (await msm.get(f"/deployments/{waiting.json()['id']}")).json()["status"] == "blocked"
    ok = await msm.post("/deployments", json={"name": "emotion",
                                              "versions": [{"model_version_id": by_version["1"]["id"]}]})
    assert ok.status_code == 201, ok.text
    await bring_up(msm)
    answer = await msm.post("/serve/emotion/predict", json={"inputs": {"x": [0, 1, 0, 0]}})
    assert answer.status_code == 200 and answer.json()["model_version"] == "1"
    fb = await msm.post("/serve/emotion/feedback", json={"prediction_id": answer.json()["prediction_id"],
                                                         "correct_label": 3}, headers=as_role("tester"))
    assert fb.status_code == 201, fb.text
    assert len(await outbox(msm, "serving.feedback")) == 1
