"""Deploy targets are plugins (issue 16): the built-ins conform to the seam, and an outside package's target —
installed as an entry point, found at MSM's start — is named by a deployment and brought up by MSM's deployer on
real PostgreSQL and the object store exactly like a built-in; a failing one fails its deployment with its
message, one MSM does not have is a 422 naming the active ones, one removed since the request fails it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlife_shared.plugins.testing import check_installed, check_plugin
from msm.app import SPEC
from tests.msm.onnx_models import identity_classifier
from tests.support.apps import asgi_client
from tests.support.auth import FreshRole
from tests.support.msm import bring_up, make_settings, outbox, upload
from tests.support.plugin_install import InstalledPlugin, install_plugin

MAINTAINER = FreshRole("maintainer", "mia")

TARGETS = '''
import json, os, shutil
from pathlib import Path
from mlife_shared.plugins.seams.deploy_targets import DeployFailed, DeployResult

class Folder:
    name, api, description = "folder", ">=1,<2", "copies the models to MLIFE_TEST_FOLDER_TARGET/<name>"
    onnx_only = False

    def bring_up(self, request):
        folder = Path(os.environ["MLIFE_TEST_FOLDER_TARGET"]) / request.name
        folder.mkdir(parents=True, exist_ok=True)
        for v in request.versions:
            shutil.copyfile(v.path, folder / f"{v.name}-{v.version}.onnx")
        manifest = request.scratch / "folder-manifest.json"
        manifest.write_text(json.dumps({"deployment": request.deployment_id, "function": request.function,
                                        "versions": [[v.name, v.version, v.role, v.onnx] for v in request.versions]}))
        return DeployResult(artifact=manifest, message=f"copied {len(request.versions)} models to {folder}")

class Broken:
    name, api, description = "broken", ">=1,<2", "always fails"
    onnx_only = True

    def bring_up(self, request):
        raise DeployFailed("the disk is full")
'''


@pytest.mark.parametrize("name", ["local", "docker", "edge"])
def test_the_builtin_targets_conform(name: str) -> None:
    target = check_installed("deploy_targets", name)
    assert target.onnx_only is (name != "edge")


def test_the_conformance_kit_catches_a_target_that_returns_no_result() -> None:
    class Sloppy:
        name, api, description, onnx_only = "sloppy", ">=1,<2", "returns a dict", False

        def bring_up(self, request: Any) -> dict[str, str]:
            return {"status": "ok"}

    with pytest.raises(AssertionError, match="should return a DeployResult"):
        check_plugin("deploy_targets", Sloppy())


@pytest.fixture
def targets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> InstalledPlugin:
    monkeypatch.setenv("MLIFE_TEST_FOLDER_TARGET", str(tmp_path / "served"))
    return install_plugin(monkeypatch, tmp_path / "site", distribution="mlife-test-targets", seam="deploy_targets",
                          entries={"folder": "Folder", "broken": "Broken"}, module="mlife_test_targets",
                          source=TARGETS)


@pytest.fixture
async def msm_plus(targets: InstalledPlugin, msm_db: str, nats_url: str,
                   tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """MSM started with the outside targets installed."""
    async with asgi_client(SPEC, make_settings(msm_db, nats_url, tmp_path)) as client:
        client.db_url = msm_db  # type: ignore[attr-defined]
        yield client


async def _version(msm: httpx.AsyncClient) -> dict[str, Any]:
    got = await upload(msm, "emotion", identity_classifier(4))
    assert got.status_code == 201, got.text
    assert (await msm.patch("/models/emotion", json={"function": "emotion"})).status_code == 200
    return got.json()


def _deployer(msm: httpx.AsyncClient, version: dict[str, Any]) -> Callable[..., Any]:
    async def request(target: str, name: str) -> httpx.Response:
        return await msm.post("/deployments", headers=MAINTAINER, json={
            "name": name, "target": target, "versions": [{"model_version_id": version["id"]}],
            "override_reason": "no test results in this test"})

    return request


async def test_an_outside_target_is_used_like_a_builtin(msm_plus: httpx.AsyncClient, tmp_path: Path,
                                                        targets: InstalledPlugin) -> None:
    msm = msm_plus
    listed = {p["name"]: p for p in (await msm.get("/plugins")).json()["plugins"] if p["seam"] == "deploy_targets"}
    assert {n: (p["state"], p["builtin"]) for n, p in listed.items()} == {
        "local": ("active", True), "docker": ("active", True), "edge": ("active", True),
        "folder": ("active", False), "broken": ("active", False)}
    assert listed["folder"]["distribution"] == "mlife-test-targets"
    version = await _version(msm)
    request = _deployer(msm, version)

    got = await request("folder", "emotion-folder")
    assert got.status_code == 201, got.text
    assert got.json()["target"] == "folder" and got.json()["status"] == "requested"
    [requested] = await outbox(msm, "deployment.requested")
    assert requested["data"]["target"] == "folder"
    await bring_up(msm)
    detail = (await msm.get(f"/deployments/{got.json()['id']}")).json()
    assert detail["status"] == "live", detail
    served = tmp_path / "served" / "emotion-folder" / "emotion-1.onnx"
    assert served.read_bytes() == identity_classifier(4)
    assert detail["history"][-1]["detail"] == f"copied 1 models to {served.parent}"
    assert detail["artifact_key"].endswith(f"deployments/{detail['id']}/folder-manifest.json")
    stored = b"".join([c async for c in await msm.app.state.raw_store.get(detail["artifact_key"])])  # type: ignore[attr-defined]
    assert b'"function": "emotion"' in stored and b'["emotion", "1", "primary", true]' in stored

    broken = await request("broken", "emotion-broken")
    assert broken.status_code == 201, broken.text
    await bring_up(msm)
    detail = (await msm.get(f"/deployments/{broken.json()['id']}")).json()
    assert detail["status"] == "failed" and detail["failure_reason"] == "DeployFailed: the disk is full"
    assert [e["data"]["deployment_id"] for e in await outbox(msm, "deployment.failed")] == [detail["id"]]

    unknown = await request("mars", "emotion-mars")
    assert unknown.status_code == 422, unknown.text
    assert "'mars' is not installed; active ones: broken, docker, edge, folder, local" in unknown.text
    assert (await request("Not A Name", "emotion-bad")).status_code == 422

    gone = await request("folder", "emotion-gone")
    assert gone.status_code == 201, gone.text
    targets.remove()  # its package uninstalled before the worker brought the deployment up
    await bring_up(msm)
    detail = (await msm.get(f"/deployments/{gone.json()['id']}")).json()
    assert detail["status"] == "failed"
    assert "the deploy_targets plugin 'folder' is not installed; active ones: docker, edge, local" in \
        detail["failure_reason"]
    assert not (tmp_path / "served" / "emotion-gone").exists()
