"""Labelling against a real Label Studio: the project and tasks with pre-labels as predictions, the
webhook round trip (shared-secret header), the periodic reconciliation when no webhook arrives, the
annotations written into a new document version, and `labelling.requested` / `labelling.completed`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.dam.helpers import WEBHOOK_SECRET, dam_settings, png, serve_dam
from tests.support.outbox import outbox_events
from tests.support.processes import free_port
from tests.support.waiting import wait_for

# The first test also installs Label Studio into .venv-labelstudio on a fresh machine (a few minutes).
pytestmark = pytest.mark.timeout(1800)


def ls_client(labelstudio) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(base_url=labelstudio.url, headers={"Authorization": f"Token {labelstudio.token}"},
                             timeout=60)


@pytest.fixture
async def dam_hooked(dam_db: str, nats_url: str, tmp_path: Path, labelstudio) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """DAM over HTTP, connected to Label Studio with a webhook; no periodic reconciliation."""
    port = free_port()
    settings = dam_settings(dam_db, nats_url, tmp_path, labelstudio_url=labelstudio.url,
                            labelstudio_token=labelstudio.token, public_url=f"http://127.0.0.1:{port}",
                            labelstudio_webhook_url=f"http://127.0.0.1:{port}/api/dam/webhooks/labelstudio",
                            labelstudio_webhook_secret=WEBHOOK_SECRET, labelstudio_reconcile_seconds=0)
    async for c in serve_dam(settings, port):
        yield c


@pytest.fixture
async def dam_polling(dam_db: str, nats_url: str, tmp_path: Path, labelstudio) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """DAM connected to Label Studio without a webhook: only the periodic reconciliation brings annotations."""
    port = free_port()
    settings = dam_settings(dam_db, nats_url, tmp_path, labelstudio_url=labelstudio.url,
                            labelstudio_token=labelstudio.token, public_url=f"http://127.0.0.1:{port}",
                            labelstudio_webhook_url="", labelstudio_reconcile_seconds=0.5)
    async for c in serve_dam(settings, port):
        yield c


async def make_doc(dam: httpx.AsyncClient, annotations: list[object]) -> tuple[str, list[str]]:
    md5s, rows = [], []
    for i, ann in enumerate(annotations):
        r = await dam.post("/files", content=png(40, 30, seed=100 + i))
        md5s.append(r.json()["md5"])
        row = {"md5": md5s[-1], "site": f"s{i}"}
        if ann is not None:
            row["annotation"] = ann
        rows.append(row)
    r = await dam.post("/documents", params={"name": "to-label"}, json=rows)
    assert r.status_code == 201, r.text
    return r.json()["id"], md5s


async def ls_tasks(ls: httpx.AsyncClient, project: int) -> list[dict]:  # type: ignore[type-arg]
    r = await ls.get("/api/tasks", params={"project": project, "page_size": 100, "fields": "all"})
    assert r.status_code == 200, r.text
    body = r.json()
    return body["tasks"] if isinstance(body, dict) else body


async def test_webhook_round_trip_with_prelabels(dam_hooked: httpx.AsyncClient, dam_db: str, labelstudio) -> None:  # type: ignore[no-untyped-def]
    dam = dam_hooked
    doc, md5s = await make_doc(dam, ["cat", "dog", "cat"])
    r = await dam.post("/labelling-tasks", json={"document_id": doc, "labels": ["cat", "dog"],
                                                 "prelabel": {"column": "annotation"}})
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["ls_project_id"] and task["item_count"] == 3 and task["status"] == "open"
    assert '<Choice value="dog"/>' in task["label_config"]
    requested = await outbox_events(dam_db, "labelling.requested")
    assert [e["data"]["labelling_task_id"] for e in requested] == [task["id"]]
    async with ls_client(labelstudio) as ls:
        tasks = sorted(await ls_tasks(ls, task["ls_project_id"]), key=lambda t: t["id"])
        assert [t["data"]["md5"] for t in tasks] == md5s
        preds = (await ls.get("/api/predictions", params={"task": tasks[1]["id"]})).json()
        assert preds[0]["result"][0]["value"]["choices"] == ["dog"]
        for t, label in zip(tasks, ["dog", "dog", "cat"], strict=True):
            r = await ls.post(f"/api/tasks/{t['id']}/annotations/", json={"result": [
                {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]})
            assert r.status_code == 201, r.text

    async def _completed() -> bool:
        return (await dam.get(f"/labelling-tasks/{task['id']}")).json()["status"] == "completed"

    await wait_for(_completed, 30, "the labelling task to complete through the webhooks")
    done = (await dam.get(f"/labelling-tasks/{task['id']}")).json()
    assert done["completed_version"] == 2 and done["annotated_count"] == 3
    rows = (await dam.get(f"/documents/{doc}/rows")).json()["items"]
    assert [x["label"] for x in rows] == ["dog", "dog", "cat"] and rows[0]["extra"] == {"site": "s0"}
    old = (await dam.get(f"/documents/{doc}/rows", params={"version": 1})).json()["items"]
    assert [x["label"] for x in old] == ["cat", "dog", "cat"]
    completed = await outbox_events(dam_db, "labelling.completed")
    assert [(e["data"]["document_version"], e["data"]["annotated_count"]) for e in completed] == [(2, 3)]


async def test_webhook_needs_the_shared_secret(dam_hooked: httpx.AsyncClient) -> None:
    url = "/webhooks/labelstudio"
    payload = {"action": "ANNOTATION_CREATED", "task": {"id": 1, "project": 1}, "annotation": {"result": []}}
    assert (await dam_hooked.post(url, json=payload)).status_code == 401
    assert (await dam_hooked.post(url, json=payload, headers={"X-MLife-Webhook-Secret": "wrong"})).status_code == 401
    ok = await dam_hooked.post(url, json=payload, headers={"X-MLife-Webhook-Secret": WEBHOOK_SECRET})
    assert ok.status_code == 200  # an unknown task is acknowledged and ignored
    bad = await dam_hooked.post(url, content=b"{not json", headers={"X-MLife-Webhook-Secret": WEBHOOK_SECRET})
    assert bad.status_code == 422


async def test_reconciliation_brings_annotations_without_webhooks(dam_polling: httpx.AsyncClient, dam_db: str,
                                                                 labelstudio) -> None:  # type: ignore[no-untyped-def]
    dam = dam_polling
    doc, _md5s = await make_doc(dam, [None, None])
    r = await dam.post("/labelling-tasks", json={"document_id": doc, "labels": ["car", "person"], "kind": "detection"})
    assert r.status_code == 201, r.text
    task = r.json()
    assert "<RectangleLabels" in task["label_config"]
    async with ls_client(labelstudio) as ls:
        tasks = sorted(await ls_tasks(ls, task["ls_project_id"]), key=lambda t: t["id"])
        hooks = (await ls.get("/api/webhooks/", params={"project": task["ls_project_id"]})).json()
        assert hooks == []
        for t in tasks:
            r = await ls.post(f"/api/tasks/{t['id']}/annotations/", json={"result": [
                {"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 40,
                 "original_height": 30, "value": {"x": 25.0, "y": 10.0, "width": 50.0, "height": 20.0,
                                                  "rotation": 0, "rectanglelabels": ["car"]}}]})
            assert r.status_code == 201, r.text

    async def _completed() -> bool:
        return (await dam.get(f"/labelling-tasks/{task['id']}")).json()["status"] == "completed"

    await wait_for(_completed, 60, "the periodic reconciliation to complete the task")
    rows = (await dam.get(f"/documents/{doc}/rows")).json()["items"]
    assert rows[0]["annotation"] == {"boxes": [{"label": "car", "x": 10.0, "y": 3.0, "width": 20.0, "height": 6.0}]}
    coco = (await dam.get(f"/documents/{doc}/export", params={"format": "coco"})).json()
    assert coco["annotations"][0]["bbox"] == [10.0, 3.0, 20.0, 6.0]
    assert len(await outbox_events(dam_db, "labelling.completed")) == 1


async def test_annotations_by_api_and_bad_requests(dam: httpx.AsyncClient, dam_db: str) -> None:
    doc, md5s = await make_doc(dam, ["a", "b"])
    r = await dam.post("/labelling-tasks", json={"document_id": doc, "labels": ["a", "b"], "label_studio": False})
    assert r.status_code == 201 and r.json()["ls_project_id"] is None
    tid = r.json()["id"]
    items = (await dam.get(f"/labelling-tasks/{tid}/items")).json()
    assert [i["md5"] for i in items] == md5s
    bad = await dam.post(f"/labelling-tasks/{tid}/annotations", json={"annotations": [{"md5": "0" * 32, "annotation": "a"}]})
    assert bad.status_code == 422
    r = await dam.post(f"/labelling-tasks/{tid}/annotations", json={"annotations": [{"md5": md5s[0], "annotation": "b"}]})
    assert r.json()["status"] == "open" and r.json()["annotated_count"] == 1
    r = await dam.post(f"/labelling-tasks/{tid}/annotations",
                       json={"annotations": [{"item_id": items[1]["item_id"], "annotation": "a"}]})
    assert r.json()["status"] == "completed" and r.json()["completed_version"] == 2
    closed = await dam.post(f"/labelling-tasks/{tid}/annotations", json={"annotations": []})
    assert closed.status_code == 409
    rows = (await dam.get(f"/documents/{doc}/rows")).json()["items"]
    assert [x["label"] for x in rows] == ["b", "a"]
    for body in [{"document_id": doc, "labels": []}, {"document_id": doc, "labels": ["a"], "prelabel": {"column": "nope"}},
                 {"document_id": doc, "labels": ["a"], "prelabel": {"endpoint": "file:///etc/passwd"}},
                 {"document_id": doc, "labels": ["a"], "prelabel": {"endpoint": "http://127.0.0.1:9/predict"}},
                 {"document_id": doc, "labels": ["a"], "prelabel": {"endpoint": "http://127.0.0.1:9/p", "input_column": "nope"}},
                 {"document_id": doc, "labels": ["a"], "prelabel": {"endpoint": f"http://127.0.0.1:{free_port()}/predict",
                                                                   "input_column": "site"}},
                 {"document_id": doc, "labels": ["a"], "filter": {"labels": ["zzz"]}},
                 {"document_id": "00000000-0000-0000-0000-000000000000", "labels": ["a"]}]:
        assert (await dam.post("/labelling-tasks", json=body)).status_code in (404, 422), body
    feats = (await dam.post("/documents", params={"name": "feats"},
                            json=[{"md5": md5s[0], "feat": "[0.1, 0.9]"}])).json()["id"]
    internal = await dam.post("/labelling-tasks", json={"document_id": feats, "labels": ["a", "b"], "prelabel": {
        "endpoint": f"http://127.0.0.1:{free_port()}/api/msm/serve/d/predict", "input_column": "feat"}})
    assert internal.status_code == 422 and "prelabel.endpoint" in internal.json()["detail"]
    dam.app.state.settings.outbound_allow_hosts = ["127.0.0.1"]  # type: ignore[attr-defined]
    unreachable = await dam.post("/labelling-tasks", json={"document_id": feats, "labels": ["a", "b"], "prelabel": {
        "endpoint": f"http://127.0.0.1:{free_port()}/api/msm/serve/d/predict", "input_column": "feat"}})
    assert unreachable.status_code == 422 and "unreachable" in unreachable.json()["detail"]
    dam.app.state.settings.msm_url = f"http://127.0.0.1:{free_port()}"  # type: ignore[attr-defined]
    no_msm = await dam.post("/labelling-tasks", json={"document_id": feats, "labels": ["a", "b"], "prelabel": {
        "deployment": "d", "input_column": "feat"}})
    assert no_msm.status_code == 422 and "MSM is unreachable" in no_msm.json()["detail"]
    assert len(await outbox_events(dam_db, "labelling.requested")) == 1


async def test_prelabels_from_a_model_deployed_on_msm(make_database, dam: httpx.AsyncClient, nats_url: str,  # type: ignore[no-untyped-def]
                                                      tmp_path: Path) -> None:
    """MSM (the real service, over HTTP) serves a tiny ONNX classifier; DAM asks it for pre-labels."""
    from mlife_shared.app import create_app
    from msm.app import SPEC as MSM_SPEC
    from msm.config import Settings as MsmSettings
    from tests.msm.onnx_models import identity_classifier
    from tests.support.apps import serve_app
    from tests.support.auth import SECRET, as_role
    from tests.support.msm import bring_up

    msm_db = await make_database("msm.migrations")
    settings = MsmSettings(environment="test", database_url=msm_db, nats_url=nats_url, identity_secret=SECRET,
                           home=tmp_path / "msm", object_store_path=tmp_path / "msm-objects", webhook_dispatch=False,
                           webhook_backoff_seconds=[0.0])
    port = free_port()
    async for msm in serve_app(create_app(MSM_SPEC, settings), port, "msm"):
        msm.db_url = msm_db  # type: ignore[attr-defined]
        version = await msm.post("/models/emotion/versions", content=identity_classifier(4),
                                 headers={"content-type": "application/octet-stream"})
        assert version.status_code == 201, version.text
        # a model serves a function before it is deployed; a maintainer deploys it without gate evidence
        assert (await msm.patch("/models/emotion", json={"function": "emotion"})).status_code == 200
        dep = await msm.post("/deployments", headers=as_role("maintainer"), json={
            "name": "emotion", "versions": [{"model_version_id": version.json()["id"]}],
            "override_reason": "no gate evidence needed for a pre-labelling test"})
        assert dep.status_code == 201, dep.text
        await bring_up(msm)
        md5s = []
        for i in range(3):
            md5s.append((await dam.post("/files", content=png(4, 4, seed=300 + i))).json()["md5"])
        rows = [{"md5": m, "feat": json.dumps([1.0 if j == k else 0.0 for j in range(4)])}
                for m, k in zip(md5s, [1, 3, 0], strict=True)]
        doc = (await dam.post("/documents", params={"name": "features"}, json=rows)).json()["id"]
        # MSM's URL is the operator's setting (inside the platform): the caller's identity goes there only
        dam.app.state.settings.msm_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
        r = await dam.post("/labelling-tasks", json={
            "document_id": doc, "labels": ["angry", "happy", "sad", "neutral"], "label_studio": False,
            "prelabel": {"deployment": "emotion", "input_column": "feat", "input_name": "x"}})
        assert r.status_code == 201, r.text
        assert r.json()["prelabel_source"] == "deployment:emotion"
        missing = await dam.post("/labelling-tasks", json={
            "document_id": doc, "labels": ["a"], "label_studio": False,
            "prelabel": {"deployment": "nothing-here", "input_column": "feat", "input_name": "x"}})
        assert missing.status_code == 422 and "no deployment 'nothing-here'" in missing.json()["detail"]
        items = (await dam.get(f"/labelling-tasks/{r.json()['id']}/items")).json()
        assert [i["prelabel"] for i in items] == ["happy", "neutral", "angry"]
