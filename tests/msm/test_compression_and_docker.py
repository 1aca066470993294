"""Dynamic INT8 quantization → a new, smaller version whose accuracy delta is recorded once MTT tested
both versions on the chosen dataset; Docker build contexts and builds through a fake engine."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from typing import Any

import httpx
import numpy as np

from tests.msm.archives import tar_files
from tests.msm.onnx_models import identity_classifier, large_classifier
from tests.support.auth import as_role
from tests.support.msm import outbox, record_testing, upload


async def test_compress_registers_a_smaller_version_and_records_the_measured_delta(msm: httpx.AsyncClient) -> None:
    source = (await upload(msm, "big", large_classifier())).json()
    dataset = uuid.uuid4()
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (32, 256)).astype(np.float32)
    w = np.random.default_rng(0).normal(0, 1, (256, 64)).astype(np.float32)
    labels = np.argmax(x @ w, axis=1).tolist()
    got = await msm.post(f"/model-versions/{source['id']}/compress",
                         json={"evaluate_on_dataset_id": str(dataset),
                               "sample": {"inputs": {"x": x.tolist()}, "labels": labels}})
    assert got.status_code == 201, got.text
    comp, version = got.json()["compression"], got.json()["version"]
    assert version["version"] == "2" and version["parent_version_id"] == source["id"]
    assert version["source"] == "compression" and "int8" in version["tags"]
    assert comp["size_before"] == source["size"] and comp["size_after"] < comp["size_before"] / 2
    assert comp["sample_delta"]["samples"] == 32 and comp["sample_delta"]["accuracy_original"] == 1.0
    assert comp["metric_delta"] is None
    registered = (await outbox(msm, "model.registered"))[-1]["data"]
    assert registered["evaluate_on_dataset_id"] == str(dataset) and registered["version"] == "2"

    # MTT's evaluator reports both versions on that dataset (in either order); the delta follows.
    await record_testing(msm, "big", "2", {}, {"accuracy": 0.88}, dataset_id=dataset)
    pending = (await msm.get(f"/model-versions/{version['id']}")).json()["compression"]
    assert pending["metric_delta"] is None and pending["waiting_for"] == ["big v1"]
    await record_testing(msm, "big", "1", {}, {"accuracy": 0.90}, dataset_id=uuid.uuid4())  # another dataset
    assert (await msm.get(f"/model-versions/{version['id']}")).json()["compression"]["metric_delta"] is None
    await record_testing(msm, "big", "1", {}, {"accuracy": 0.91}, dataset_id=dataset)
    measured = (await msm.get(f"/model-versions/{version['id']}")).json()
    assert abs(measured["compression"]["metric_delta"]["accuracy"] - (0.88 - 0.91)) < 1e-9
    assert measured["compression"]["measured_at"] is not None
    assert [t["metrics"]["accuracy"] for t in measured["testing"]] == [0.88]

    again = await msm.post(f"/model-versions/{version['id']}/compress", json={})
    assert again.status_code == 422
    bad_sample = await msm.post(f"/model-versions/{source['id']}/compress",
                                json={"sample": {"inputs": {"x": [[1, 2]]}, "labels": [0]}})
    assert bad_sample.status_code == 422
    missing = await msm.post(f"/model-versions/{uuid.uuid4()}/compress", json={})
    assert missing.status_code == 404


class FakeEngine:
    """The one allowed fake: a Docker engine that checks the context like `docker build` would."""

    def __init__(self) -> None:
        self.builds: list[tuple[str, dict[str, bytes]]] = []

    def build(self, context: bytes, tag: str) -> dict[str, Any]:
        files = tar_files(context)
        assert b"FROM " in files["Dockerfile"]
        for line in files["Dockerfile"].decode().splitlines():
            if line.startswith("COPY "):
                for name in line.split()[1:-1]:
                    assert name in files, f"COPY of a missing file {name}"
        self.builds.append((tag, files))
        return {"image_id": "sha256:" + "0" * 64, "tag": tag, "log": ["Successfully built"]}


async def test_docker_context_and_build(msm: httpx.AsyncClient) -> None:
    model = identity_classifier(4)
    version = (await upload(msm, "emotion", model)).json()
    got = await msm.get(f"/model-versions/{version['id']}/docker-context")
    assert got.status_code == 200 and got.headers["content-type"] == "application/x-tar"
    files = tar_files(got.content)
    assert set(files) == {"Dockerfile", "server.py", "requirements.txt", "mlife-model.json", "model.onnx"}
    assert files["model.onnx"] == model
    assert all("==" in line for line in files["requirements.txt"].decode().split())
    assert json.loads(files["mlife-model.json"])["signature"]["inputs"][0]["name"] == "x"
    compile(files["server.py"], "server.py", "exec")

    maintainer = as_role("maintainer")
    none = await msm.post(f"/model-versions/{version['id']}/docker-build", json={"tag": "mlife/emotion:1"},
                          headers=maintainer)
    assert none.status_code == 422 and "MLIFE_MSM_DOCKER_HOST" in none.json()["detail"]
    engine = FakeEngine()
    msm.app.state.docker_engine = engine  # type: ignore[attr-defined]
    built = await msm.post(f"/model-versions/{version['id']}/docker-build", json={"tag": "mlife/emotion:1"},
                           headers=maintainer)
    assert built.status_code == 200, built.text
    assert built.json()["tag"] == "mlife/emotion:1" and engine.builds[0][1]["model.onnx"] == model
    bad_tag = await msm.post(f"/model-versions/{version['id']}/docker-build", json={"tag": "Bad Tag;rm"},
                             headers=maintainer)
    assert bad_tag.status_code == 422
    assert (await msm.post(f"/model-versions/{version['id']}/docker-build", json={"tag": "a/b:1"})).status_code == 403
