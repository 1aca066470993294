"""The deployer: brings a requested deployment up. For `local`, every version must load into
onnxruntime here (the API processes then load them on first use, see serving/runtime.py); `docker`
stores a build context (and builds it when an engine is configured); `edge` stores a package."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceContext
from mlife_shared.events.contracts import DeploymentFailed, DeploymentSucceeded
from mlife_shared.messaging import outbox
from mlife_shared.objectstore.base import iterate
from msm.config import Settings
from msm.deployment.models import Deployment
from msm.deployment.repository import DeploymentRepository
from msm.deployment.service import DeploymentService
from msm.registry.docker import SdkDockerEngine, build_context
from msm.registry.models import ModelVersion
from msm.registry.repository import RegistryRepository
from msm.registry.service import download, scratch_dir

log = structlog.get_logger(__name__)


def _load(path: str, threads: int) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def edge_package(deployment: Deployment, versions: dict[uuid.UUID, ModelVersion], paths: dict[uuid.UUID, Path]) -> bytes:
    """A gzipped tar: `manifest.json` (routing, versions, signatures) and `models/<version id>.onnx`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        manifest = json.dumps({"deployment_id": str(deployment.id), "name": deployment.name,
                               "routing": deployment.routing, "versions": deployment.versions,
                               "signatures": {str(k): v.signature for k, v in versions.items()}}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        for vid, path in paths.items():
            tar.add(str(path), arcname=f"models/{vid}.onnx")
    return buffer.getvalue()


class Deployer:
    def __init__(self, session: AsyncSession, ctx: ServiceContext[Settings]) -> None:
        self.session = session
        self.ctx = ctx
        self.repo = DeploymentRepository(session)
        self.service = DeploymentService(session)

    async def deploy(self, deployment_id: uuid.UUID, correlation: dict[str, Any]) -> None:
        """Bring the requested deployment up and make it live (superseding the live one of its name), or
        record why it failed; a deployment no longer `requested` was handled already (or by another MSM)."""
        deployment = await self.repo.deployment(deployment_id, for_update=True)
        if deployment is None or deployment.status != "requested":
            return
        try:
            deployment.artifact_key = await self._bring_up(deployment)
        except Exception as exc:  # noqa: BLE001 - any failure to load is the deployment's failure, recorded
            reason = f"{type(exc).__name__}: {str(getattr(exc, 'message', exc))[:500]}"
            deployment.failure_reason = reason
            await self.service.change(deployment, "failed", "deployer", reason)
            await outbox.add(self.session, DeploymentFailed(deployment_id=deployment.id, function=deployment.function,
                                                            reason=reason), **correlation)
            log.warning("deployment_failed", deployment_id=str(deployment.id), reason=reason)
            return
        previous = await self.repo.live_by_name(deployment.name)
        if previous is not None and previous.id != deployment.id:
            deployment.previous_deployment_id = previous.id
            await self.service.change(previous, "superseded", "deployer", f"replaced by {deployment.id}")
        await self.service.change(deployment, "live", "deployer", "all versions loaded")
        await outbox.add(self.session, DeploymentSucceeded(deployment_id=deployment.id, function=deployment.function),
                         **correlation)

    async def _bring_up(self, deployment: Deployment) -> str | None:
        """Every version downloaded (and loaded when servable); the artifact's full key for docker and edge."""
        versions = await RegistryRepository(self.session).versions([uuid.UUID(v["model_version_id"])
                                                                    for v in deployment.versions])
        with scratch_dir() as tmp:
            paths = {}
            for vid, version in versions.items():
                paths[vid] = await download(self.ctx.store, version.object_key, tmp / f"{vid}.onnx")
                if version.servable:
                    await asyncio.to_thread(_load, str(paths[vid]), 1)
            if deployment.target == "docker":
                primary = next(versions[uuid.UUID(v["model_version_id"])] for v in deployment.versions
                               if v["role"] == "primary")
                return await self._docker(deployment, primary, paths[primary.id])
            if deployment.target == "edge":
                package = await asyncio.to_thread(edge_package, deployment, versions, paths)
                return await self._store(f"deployments/{deployment.id}/edge-package.tar.gz", package)
        return None

    async def _docker(self, deployment: Deployment, primary: ModelVersion, model: Path) -> str:
        context = await asyncio.to_thread(build_context, primary, model)
        key = await self._store(f"deployments/{deployment.id}/docker-context.tar", context)
        if self.ctx.settings.docker_host:
            tag = f"mlife/{deployment.name}:{primary.version}"
            await asyncio.to_thread(SdkDockerEngine(self.ctx.settings.docker_host).build, context, tag)
        return key

    async def _store(self, key: str, data: bytes) -> str:
        await self.ctx.scoped.put(key, iterate(data))
        return self.ctx.scoped.full_key(key)
