"""DAM through the gateway: streamed upload and dedup, check, archive, document import and rows,
group items, with an API token (the gateway signs the identity DAM verifies)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from gateway.app import _bootstrap_admin, create
from gateway.config import Settings as GatewaySettings
from tests.dam.helpers import dam_settings, md5, png, random_bytes, serve_dam, zip_bytes
from tests.support.auth import SECRET
from tests.support.processes import free_port

ADMIN_TOKEN = "mlf_dam_gateway_test_" + uuid.uuid4().hex


@pytest.fixture
async def via_gateway(make_database: Callable[[str], Awaitable[str]], dam_db: str, nats_url: str,
                      tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    async for _ in serve_dam(dam_settings(dam_db, nats_url, tmp_path), port):
        db = await make_database("gateway.migrations")
        closed = f"http://127.0.0.1:{free_port()}"
        settings = GatewaySettings(environment="test", database_url=db, nats_url=nats_url, identity_secret=SECRET,
                                   home=tmp_path / "gw", dam_url=f"http://127.0.0.1:{port}", bam_url=closed,
                                   mtt_url=closed, msm_url=closed, admin_token=ADMIN_TOKEN)
        await _bootstrap_admin(settings)
        app = create(settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost/api/dam",
                                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60) as client:
                yield client


async def test_dam_through_the_gateway(via_gateway: httpx.AsyncClient) -> None:
    gw = via_gateway
    big = random_bytes(3 * 1024 * 1024)

    async def chunks():  # streamed without a length, as a browser or a CLI would
        for i in range(0, len(big), 256 * 1024):
            yield big[i:i + 256 * 1024]

    r = await gw.post("/files", params={"name": "blobs/big.bin"}, content=chunks())
    assert r.status_code == 201, r.text
    assert r.json()["md5"] == md5(big) and r.json()["size"] == len(big)
    assert (await gw.post("/files", content=big)).json()["duplicate"] is True
    assert (await gw.post("/files/check", json={"md5s": [md5(big)]})).json()["existing"] == [md5(big)]
    imgs = {f"shots/{i}.png": png(8, 8, seed=i) for i in range(4)}
    r = await gw.post("/files", params={"extract": "true"}, content=zip_bytes(imgs))
    assert r.status_code == 201 and r.json()["count"] == 4, r.text
    rows = [{"path": p, "annotation": "ok" if i % 2 else "bad"} for i, p in enumerate(imgs)]
    doc = await gw.post("/documents", params={"name": "shots"}, json=rows)
    assert doc.status_code == 201, doc.text
    doc_id = doc.json()["id"]
    assert (await gw.post(f"/documents/{doc_id}/import", params={"mode": "append"},
                          json=[{"md5": md5(big), "annotation": "ok"}])).json()["current_version"] == 2
    page = (await gw.get(f"/documents/{doc_id}/rows", params={"labels": "ok"})).json()
    assert page["total"] == 3
    ds = await gw.post("/datasets", json={"name": "shots", "documents": [{"id": doc_id}],
                                          "split": {"train": 0.5, "test": 0.5}})
    assert ds.status_code == 201, ds.text
    by = {d["purpose"]: d for d in ds.json()["datasets"]}
    leak = await gw.get("/datasets/leakage", params={"train": by["train"]["id"], "test": by["test"]["id"]})
    assert leak.json()["shared_count"] == 0
    manifest = await gw.get(f"/datasets/{by['test']['id']}/manifest")
    assert len(manifest.text.splitlines()) == by["test"]["item_count"]
    stats = (await gw.get(f"/documents/{doc_id}/stats")).json()
    assert stats["by_class"] == {"ok": 3, "bad": 2}
    csv_out = await gw.get(f"/documents/{doc_id}/export", params={"format": "csv"})
    assert csv_out.status_code == 200 and csv_out.text.startswith("md5,path,annotation")
    found = (await gw.post("/search", json={"q": "shots/1"})).json()
    assert found["total"] == 1
    task = await gw.post("/labelling-tasks", json={"document_id": doc_id, "labels": ["ok", "bad"],
                                                   "filter": {"labels": ["bad"]}})
    assert task.status_code == 201, task.text
    done = await gw.post(f"/labelling-tasks/{task.json()['id']}/annotations", json={"annotations": [
        {"md5": md5(imgs["shots/0.png"]), "annotation": "ok"}, {"md5": md5(imgs["shots/2.png"]), "annotation": "ok"}]})
    assert done.json()["status"] == "completed" and done.json()["completed_version"] == 3
    got = await gw.get(f"/files/{md5(big)}/content")
    assert md5(got.content) == md5(big)
    assert (await gw.post("/files", params={"name": "../x"}, content=b"x")).status_code == 422
    anon = await gw.post("/files", content=b"x", headers={"Authorization": ""})
    assert anon.status_code == 401
