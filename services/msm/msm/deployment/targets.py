"""The built-in deploy targets, plugins of the deploy_targets seam (registered in MSM's pyproject.toml under
`mlife.deploy_targets`, found as an outside one would be): `local` (served by MSM itself), `docker` (a build
context, built when an engine is configured), `edge` (a package of the models and a manifest)."""

from __future__ import annotations

import json
import tarfile
import uuid
from pathlib import Path

from mlife_shared.plugins.seams.deploy_targets import DeployRequest, DeployResult
from msm.registry.docker import SdkDockerEngine, build_context
from msm.registry.models import ModelVersion

API = ">=1,<2"


class LocalTarget:
    name = "local"
    api = API
    description = "served by MSM itself at /api/msm/serve/<name>/predict (onnxruntime, in every API process)"
    onnx_only = True

    def bring_up(self, request: DeployRequest) -> DeployResult:
        # the deployer has loaded every version into onnxruntime; the API processes load them on first use
        return DeployResult(message=f"all versions loaded; served at /api/msm/serve/{request.name}/predict")


class DockerTarget:
    name = "docker"
    api = API
    description = ("a Docker build context of the primary version (an HTTP server around onnxruntime), built into "
                   "mlife/<name>:<version> when MLIFE_MSM_DOCKER_HOST names an engine")
    onnx_only = True

    def bring_up(self, request: DeployRequest) -> DeployResult:
        primary = request.primary()
        version = ModelVersion(id=uuid.UUID(primary.model_version_id), name=primary.name, version=primary.version,
                               md5=primary.md5, signature=dict(primary.signature), servable=primary.onnx)
        context = build_context(version, primary.path)
        path = request.scratch / "docker-context.tar"
        path.write_bytes(context)
        host = str(request.options.get("docker_host") or "")
        if not host:
            return DeployResult(artifact=path, message="build context stored (no MLIFE_MSM_DOCKER_HOST: not built)")
        tag = f"mlife/{request.name}:{primary.version}"
        SdkDockerEngine(host).build(context, tag)
        return DeployResult(artifact=path, message=f"image {tag} built")


class EdgeTarget:
    name = "edge"
    api = API
    description = "a tar.gz for devices: manifest.json (routing, versions, signatures) and models/<version id>.onnx"
    onnx_only = False

    def bring_up(self, request: DeployRequest) -> DeployResult:
        path = request.scratch / "edge-package.tar.gz"
        edge_package(request, path)
        return DeployResult(artifact=path, message=f"edge package of {len(request.versions)} versions stored")


def edge_package(request: DeployRequest, path: Path) -> None:
    """A gzipped tar: `manifest.json` (routing, versions, signatures) and `models/<version id>.onnx`."""
    versions = [{"model_version_id": v.model_version_id, "weight": v.weight, "role": v.role, "name": v.name,
                 "version": v.version} for v in request.versions]
    manifest = json.dumps({"deployment_id": request.deployment_id, "name": request.name, "routing": request.routing,
                           "versions": versions,
                           "signatures": {v.model_version_id: v.signature for v in request.versions}}).encode()
    manifest_file = request.scratch / "manifest.json"
    manifest_file.write_bytes(manifest)
    with tarfile.open(path, mode="w:gz") as tar:
        tar.add(str(manifest_file), arcname="manifest.json")
        for v in request.versions:
            tar.add(str(v.path), arcname=f"models/{v.model_version_id}.onnx")
