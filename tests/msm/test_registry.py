"""Registry: direct upload (streamed), import from MLife's storage only, model.uploaded, aliases, search."""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from mlife_shared.events.contracts import ModelUploaded
from mlife_shared.objectstore.base import iterate
from msm.registry.consumers import on_model_uploaded
from tests.msm.onnx_models import identity_classifier
from tests.support.auth import as_role
from tests.support.msm import count, deliver, outbox, upload


async def test_upload_registers_a_version_and_emits_model_registered(msm: httpx.AsyncClient) -> None:
    got = await upload(msm, "emotion", identity_classifier(4), description="first", tags=["cnn", "small"],
                       metrics='{"accuracy": 0.91}')
    assert got.status_code == 201, got.text
    v = got.json()
    assert (v["name"], v["version"], v["format"], v["servable"], v["source"]) == ("emotion", "1", "onnx", True,
                                                                                 "upload")
    assert v["metrics"] == {"accuracy": 0.91} and v["tags"] == ["cnn", "small"]
    assert v["signature"]["inputs"][0] == {"name": "x", "shape": ["N", 4], "dtype": "float32", "elem_type": 1}
    assert v["object_key"].startswith("msm/models/")
    second = (await upload(msm, "emotion", identity_classifier(4, seed=1))).json()
    assert second["version"] == "2"
    events = await outbox(msm, "model.registered")
    assert [e["data"]["version"] for e in events] == ["1", "2"]
    assert events[0]["data"]["model_version_id"] == v["id"] and events[0]["data"]["object_key"] == v["object_key"]
    detail = (await msm.get("/models/emotion")).json()
    assert [x["version"] for x in detail["versions"]] == ["1", "2"]


async def test_pickle_and_garbage_uploads_are_refused_and_nothing_is_written(msm: httpx.AsyncClient,
                                                                            tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
            import os
            return (os.makedirs, (str(tmp_path / "pwned"),))

    for data in (pickle.dumps(Evil()), b"\x00\x01garbage" * 100, b"", b'{"a": 1}'):
        got = await upload(msm, "emotion", data)
        assert got.status_code == 422, got.text
        assert got.json()["error"] == "InvalidOnnxModel"
    assert not (tmp_path / "pwned").exists()
    assert await count(msm, "model_version") == 0 and await count(msm, "registered_model") == 0
    assert await outbox(msm) == []
    bad_name = await upload(msm, "../etc", identity_classifier(4))
    assert bad_name.status_code in (404, 422)


async def test_upload_limits_and_roles(msm: httpx.AsyncClient) -> None:
    msm.app.state.settings.model_max_bytes = 100  # type: ignore[attr-defined]
    got = await upload(msm, "emotion", identity_classifier(4))
    assert got.status_code == 413
    msm.app.state.settings.model_max_bytes = 1 << 30  # type: ignore[attr-defined]
    viewer = await msm.post("/models/emotion/versions", content=identity_classifier(4), headers=as_role("viewer"))
    assert viewer.status_code == 403
    bad_metrics = await upload(msm, "emotion", identity_classifier(4), metrics="not json")
    assert bad_metrics.status_code == 422


async def test_import_only_from_mlife_storage(msm: httpx.AsyncClient) -> None:
    store = msm.app.state.raw_store  # type: ignore[attr-defined]
    await store.put("mtt/models/t1/model.onnx", iterate(identity_classifier(4)))
    await store.put("dam/blobs/x/model.onnx", iterate(identity_classifier(4)))
    ok = await msm.post("/models/emotion/versions/import", json={"source_key": "mtt/models/t1/model.onnx"})
    assert ok.status_code == 201, ok.text
    assert ok.json()["lineage"]["source_key"] == "mtt/models/t1/model.onnx"
    for key in ("https://evil.example/model.onnx", "s3://bucket/model.onnx", "dam/blobs/x/model.onnx",
                "mtt/../dam/blobs/x/model.onnx", "/etc/passwd", "file:///etc/passwd"):
        got = await msm.post("/models/emotion/versions/import", json={"source_key": key})
        assert got.status_code == 422, (key, got.text)
    missing = await msm.post("/models/emotion/versions/import", json={"source_key": "mtt/models/none.onnx"})
    assert missing.status_code == 404
    assert await count(msm, "model_version") == 1


async def test_model_uploaded_is_registered_once_and_pickles_are_refused(msm: httpx.AsyncClient) -> None:
    store = msm.app.state.raw_store  # type: ignore[attr-defined]
    await store.put("mtt/models/t1/model.onnx", iterate(identity_classifier(4)))
    await store.put("mtt/models/t2/model.onnx", iterate(pickle.dumps({"weights": [1, 2, 3]})))
    task = uuid.uuid4()
    event = ModelUploaded(task_id=task, model_name="emotion", object_key="mtt/models/t1/model.onnx", format="onnx",
                          md5="0" * 32, size=10, metrics={"accuracy": 0.8})
    await deliver(msm, on_model_uploaded, event)
    await deliver(msm, on_model_uploaded, event)  # a second upload event for the same task changes nothing
    for bad in ("mtt/models/t2/model.onnx", "https://example.com/m.onnx", "bam/x/model.onnx"):
        await deliver(msm, on_model_uploaded, ModelUploaded(task_id=uuid.uuid4(), model_name="emotion",
                                                            object_key=bad, format="onnx", md5="0" * 32, size=1))
    versions = (await msm.get("/model-versions", params={"name": "emotion"})).json()
    assert len(versions) == 1
    assert versions[0]["task_id"] == str(task) and versions[0]["source"] == "mtt"
    assert versions[0]["metrics"] == {"accuracy": 0.8}
    assert len(await outbox(msm, "model.registered")) == 1


async def test_aliases_are_recorded_and_reverted(msm: httpx.AsyncClient) -> None:
    v1 = (await upload(msm, "emotion", identity_classifier(4))).json()
    v2 = (await upload(msm, "emotion", identity_classifier(4, seed=2))).json()
    maintainer = as_role("maintainer", "mia")
    refused = await msm.post("/models/emotion/aliases", json={"alias": "production", "version": "1"})
    assert refused.status_code == 403
    first = await msm.post("/models/emotion/aliases", json={"alias": "production", "version": "1",
                                                            "reason": "first release"}, headers=maintainer)
    assert first.status_code == 200, first.text
    moved = await msm.post("/models/emotion/aliases", json={"alias": "production", "version": v2["id"],
                                                            "reason": "better"}, headers=maintainer)
    assert moved.json()["from_version_id"] == v1["id"] and moved.json()["to_version_id"] == v2["id"]
    again = await msm.post("/models/emotion/aliases", json={"alias": "production", "version": "2"},
                           headers=maintainer)
    assert again.status_code == 409
    staging = await msm.post("/models/emotion/aliases", json={"alias": "staging", "version": "production"})
    assert staging.status_code == 200
    reverted = await msm.post("/models/emotion/aliases/production/revert", json={"reason": "v2 misbehaves"},
                              headers=maintainer)
    assert reverted.status_code == 200
    assert reverted.json()["to_version_id"] == v1["id"] and reverted.json()["actor"] == "mia"
    detail = (await msm.get("/models/emotion")).json()
    assert {a["alias"]: a["version"] for a in detail["aliases"]} == {"production": "1", "staging": "2"}
    history = (await msm.get("/models/emotion/aliases/history", params={"alias": "production"})).json()
    assert [(h["reason"], h["actor"]) for h in history] == [("v2 misbehaves", "mia"), ("better", "mia"),
                                                            ("first release", "mia")]
    bad = await msm.post("/models/emotion/aliases", json={"alias": "Bad Alias", "version": "1"})
    assert bad.status_code == 422
    unknown = await msm.post("/models/emotion/aliases", json={"alias": "x", "version": "9"})
    assert unknown.status_code == 404


async def test_search_by_name_tag_and_metric(msm: httpx.AsyncClient) -> None:
    await upload(msm, "emotion", identity_classifier(4), tags=["cnn"], metrics='{"accuracy": 0.7}')
    await upload(msm, "emotion", identity_classifier(4, seed=1), tags=["cnn", "int8"], metrics='{"accuracy": 0.9}')
    await upload(msm, "speech", identity_classifier(4, seed=2), tags=["rnn"], metrics='{"accuracy": 0.95}')
    by_tag = (await msm.get("/model-versions", params={"tag": "cnn"})).json()
    assert sorted(v["version"] for v in by_tag) == ["1", "2"]
    by_metric = (await msm.get("/model-versions", params={"metric": "accuracy", "min": 0.8})).json()
    assert [(v["name"], v["version"]) for v in by_metric] == [("speech", "1"), ("emotion", "2")]
    by_name = (await msm.get("/model-versions", params={"name": "spe"})).json()
    assert [v["name"] for v in by_name] == ["speech"]
    models = (await msm.get("/models", params={"name": "emo"})).json()
    assert [m["name"] for m in models] == ["emotion"]
    patched = await msm.patch(f"/model-versions/{by_name[0]['id']}", json={"tags": ["prod-ready"]})
    assert patched.json()["tags"] == ["prod-ready"]
    assert (await msm.patch(f"/model-versions/{by_name[0]['id']}", json={"bogus": 1})).status_code == 422


async def test_nan_and_nul_are_422_not_500(msm: httpx.AsyncClient) -> None:
    version = (await upload(msm, "emotion", identity_classifier(4))).json()
    raw = {"content-type": "application/json"}
    cases = [
        ("POST", "/models/emotion/versions/import", '{"source_key": "mtt/a\\u0000b"}'),
        ("POST", "/models/emotion/versions/import", '{"source_key": "mtt/x.onnx", "metrics": {"a": NaN}}'),
        ("PATCH", f"/model-versions/{version['id']}", '{"metrics": {"accuracy": Infinity}}'),
        ("PATCH", f"/model-versions/{version['id']}", '{"description": "bad\\u0000text"}'),
        ("POST", "/deployments", '{"name": "x", "versions": [{"model_version_id": "%s"}], '
                                 '"thresholds": {"accuracy": {"min": NaN}}}' % version["id"]),
        ("POST", "/models/emotion/aliases", '{"alias": "staging", "version": "1", "reason": "\\u0000"}'),
    ]
    for method, path, body in cases:
        got = await msm.request(method, path, content=body, headers=raw)
        assert got.status_code == 422, (path, body, got.text)
    for path in ("/models/emo%00tion", "/model-versions?name=a%00b", "/models/emotion/aliases/history?alias=%00",
                 "/deployments?name=%00"):
        got = await msm.get(path)
        assert got.status_code == 422, (path, got.text)
    assert (await upload(msm, "emotion", identity_classifier(4), metrics='{"a": NaN}')).status_code == 422
    assert (await upload(msm, "emotion", identity_classifier(4), description="a\x00b")).status_code == 422


async def test_other_formats_from_mtt_are_tracked_but_never_served(msm: httpx.AsyncClient) -> None:
    store = msm.app.state.raw_store  # type: ignore[attr-defined]
    await store.put("mtt/models/t9/model.pt", iterate(pickle.dumps({"state_dict": [1, 2]})))
    await deliver(msm, on_model_uploaded, ModelUploaded(task_id=uuid.uuid4(), model_name="torchy",
                                                        object_key="mtt/models/t9/model.pt", format="pytorch",
                                                        md5="0" * 32, size=10))
    version = (await msm.get("/model-versions", params={"name": "torchy"})).json()[0]
    assert (version["format"], version["servable"], version["signature"]) == ("pytorch", False, {})
    got = await msm.post("/deployments", json={"name": "torchy", "versions": [{"model_version_id": version["id"]}],
                                               "override_reason": "try"}, headers=as_role("maintainer"))
    assert got.status_code == 422 and "ONNX" in got.json()["detail"]
    assert (await msm.post(f"/model-versions/{version['id']}/compress", json={})).status_code == 422
    assert (await msm.get(f"/model-versions/{version['id']}/docker-context")).status_code == 422


async def test_concurrent_uploads_of_a_new_model_number_their_versions(msm: httpx.AsyncClient) -> None:
    import asyncio

    answers = await asyncio.gather(*(upload(msm, "fresh", identity_classifier(4, seed=i)) for i in range(4)))
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert sorted(a.json()["version"] for a in answers) == ["1", "2", "3", "4"]


async def test_patching_a_model_with_nulls_clears_instead_of_failing(msm: httpx.AsyncClient) -> None:
    assert (await upload(msm, "patchy", identity_classifier(4), tags=["a"])).status_code == 201
    r = await msm.patch("/models/patchy", json={"description": "", "function": "digits", "tags": None})
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == [] and r.json()["description"] == "" and r.json()["function"] == "digits"
    r = await msm.patch("/models/patchy", json={"description": None, "tags": ["b", "b"]})
    assert r.status_code == 200 and r.json()["tags"] == ["b"] and r.json()["function"] == "digits"
    # The function is what the gate, badcases and test sets hang on: it can be changed, never cleared.
    for cleared in ("", None, "  "):
        r = await msm.patch("/models/patchy", json={"function": cleared})
        assert r.status_code == 422, (cleared, r.text)
    assert (await msm.get("/models/patchy")).json()["function"] == "digits"
