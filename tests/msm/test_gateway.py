"""MSM through the gateway: the real `msm api` process behind the real gateway app, called with an API
token — upload (streamed through the proxy), gate, deploy, predict, feedback, rollback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.app import _bootstrap_admin, create
from gateway.config import Settings as GatewaySettings
from mlife_shared.app import ServiceContext
from mlife_shared.db import Database
from mlife_shared.events import new_envelope
from mlife_shared.events.contracts import DeploymentRequested
from mlife_shared.objectstore import LocalObjectStore, ScopedStore
from msm.config import Settings as MsmSettings
from msm.deployment.consumers import on_deployment_requested
from tests.msm.onnx_models import classifier, identity_classifier
from tests.support.processes import free_port
from tests.support.waiting import wait_for

SECRET = "msm-gateway-secret-" + uuid.uuid4().hex
TOKEN = "mlf_msm_gateway_" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def stack(make_database: Callable[[str], Awaitable[str]], nats_url: str,
                tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str, Path]]:
    msm_db = await make_database("msm.migrations")
    port = free_port()
    env = dict(os.environ, MLIFE_ENVIRONMENT="test", MLIFE_IDENTITY_SECRET=SECRET, MLIFE_MSM_DATABASE_URL=msm_db,
               MLIFE_NATS_URL=nats_url, MLIFE_HOME=str(tmp_path / "msm"), MLIFE_OBJECT_STORE="local",
               MLIFE_LOG_LEVEL="WARNING", ORT_DISABLE_TELEMETRY="1")
    proc = subprocess.Popen([sys.executable, "-m", "msm", "api", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        async def _ready() -> bool:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else "msm exited"
            try:
                async with httpx.AsyncClient() as c:
                    return (await c.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(_ready, 45, "msm to be ready")
        gw_db = await make_database("gateway.migrations")
        closed = f"http://127.0.0.1:{free_port()}"
        settings = GatewaySettings(environment="test", database_url=gw_db, nats_url=nats_url, identity_secret=SECRET,
                                   home=tmp_path / "gw", bam_url=closed, dam_url=closed, mtt_url=closed,
                                   msm_url=f"http://127.0.0.1:{port}", admin_token=TOKEN,
                                   admin_password="pw-" + uuid.uuid4().hex, allowed_hosts=["gateway"])
        await _bootstrap_admin(settings)
        app = create(settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway",
                                         headers=AUTH, timeout=60) as client:
                yield client, msm_db, tmp_path / "msm" / "objects"
    finally:
        proc.terminate()
        proc.wait(10)


async def run_deployer(msm_db: str, objects: Path) -> None:
    """The deployer of the MSM worker, applied to every deployment.requested in MSM's outbox."""
    engine = create_async_engine(msm_db)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT CAST(envelope AS TEXT) FROM outbox "
                                           "WHERE subject = 'deployment.requested'"))).scalars().all()
    await engine.dispose()
    store = LocalObjectStore(objects)
    ctx = ServiceContext(MsmSettings(environment="test", database_url=msm_db, identity_secret=SECRET,
                                     object_store_path=objects), store, ScopedStore(store, "msm"))
    db = Database(msm_db)
    try:
        for row in rows:
            data = DeploymentRequested.model_validate(json.loads(row)["data"])
            async with db.transaction() as session:
                await on_deployment_requested(new_envelope(data), session, ctx=ctx)
    finally:
        await db.dispose()


async def test_registry_gate_serving_feedback_and_rollback_through_the_gateway(
        stack: tuple[httpx.AsyncClient, str, Path]) -> None:
    gw, msm_db, objects = stack
    octet = {"content-type": "application/octet-stream"}
    v1 = await gw.post("/api/msm/models/emotion/versions", content=identity_classifier(4), headers=octet,
                       params={"tags": ["gw"]})
    assert v1.status_code == 201, v1.text
    v2 = await gw.post("/api/msm/models/emotion/versions",
                       content=classifier(np.fliplr(np.eye(4, dtype=np.float32)) * 10), headers=octet)
    assert (await gw.patch("/api/msm/models/emotion", json={"function": "emotion"})).status_code == 200
    refused = await gw.post("/api/msm/models/emotion/versions", content=b"\x80\x04garbage", headers=octet)
    assert refused.status_code == 422 and refused.json()["error"] == "InvalidOnnxModel"

    blocked = await gw.post("/api/msm/deployments", json={"name": "emotion",
                                                          "versions": [{"model_version_id": v1.json()["id"]}]})
    assert blocked.status_code == 409 and blocked.json()["error"] == "GateBlocked"
    over = await gw.post(f"/api/msm/deployments/{blocked.json()['detail']['deployment_id']}/override",
                         json={"reason": "first release, no test set yet"})
    assert over.status_code == 200 and over.json()["override_by"]
    await run_deployer(msm_db, objects)
    assert (await gw.get(f"/api/msm/deployments/{over.json()['id']}")).json()["status"] == "live"

    answer = await gw.post("/api/msm/serve/emotion/predict", json={"inputs": {"x": [[0, 0, 1, 0], [1, 0, 0, 0]]}})
    assert answer.status_code == 200, answer.text
    assert np.argmax(answer.json()["outputs"]["probs"], axis=1).tolist() == [2, 0]
    bad = await gw.post("/api/msm/serve/emotion/predict", json={"inputs": {"x": [[1, 2]]}})
    assert bad.status_code == 422
    fb = await gw.post("/api/msm/serve/emotion/feedback", json={"inputs": {"x": [0, 0, 1, 0]}, "prediction": 2,
                                                                "correct_label": 1, "client_id": "c",
                                                                "device_id": "d"})
    assert fb.status_code == 201, fb.text

    second = await gw.post("/api/msm/deployments", json={"name": "emotion", "override_reason": "try v2",
                                                         "versions": [{"model_version_id": v2.json()["id"]}]})
    assert second.status_code == 201
    await run_deployer(msm_db, objects)
    back = await gw.post(f"/api/msm/deployments/{second.json()['id']}/rollback", json={"reason": "worse"})
    assert back.status_code == 200 and back.json()["id"] == over.json()["id"]
    openapi = (await gw.get("/openapi.json")).json()
    assert any(p.startswith("/api/msm/serve/") for p in openapi["paths"])
