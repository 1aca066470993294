"""The deployer: brings a requested deployment up. Every ONNX version must load into onnxruntime here, then
the deployment's target (a deploy_targets plugin: the built-ins `local`, `docker`, `edge` in targets.py, or an
outside one) brings it up; the artifact it makes is stored under the deployment. A target that is not active
(its package removed since the request) or that raises fails the deployment with the reason."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceContext
from mlife_shared.events.contracts import DeploymentFailed, DeploymentSucceeded
from mlife_shared.messaging import outbox
from mlife_shared.plugins import seams_of
from mlife_shared.plugins.registry import plugins
from mlife_shared.plugins.seams.deploy_targets import DeployFailed, DeployRequest, DeployResult, DeployVersion
from msm.config import Settings
from msm.deployment.models import Deployment
from msm.deployment.repository import DeploymentRepository
from msm.deployment.service import DeploymentService
from msm.registry.repository import RegistryRepository
from msm.registry.service import download, file_chunks, scratch_dir

log = structlog.get_logger(__name__)


def _load(path: str, threads: int) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


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
            deployment.artifact_key, message = await self._bring_up(deployment)
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
        await self.service.change(deployment, "live", "deployer", message)
        await outbox.add(self.session, DeploymentSucceeded(deployment_id=deployment.id, function=deployment.function),
                         **correlation)

    async def _bring_up(self, deployment: Deployment) -> tuple[str | None, str]:
        """Every version downloaded (and loaded when it is ONNX), then brought up by the deployment's target;
        → the stored artifact's full key (if the target made one) and the target's message."""
        target = plugins(*seams_of("msm")).get("deploy_targets", deployment.target)
        versions = await RegistryRepository(self.session).versions([uuid.UUID(v["model_version_id"])
                                                                    for v in deployment.versions])
        with scratch_dir() as tmp:
            routes = []
            for route in deployment.versions:
                version = versions[uuid.UUID(route["model_version_id"])]
                path = await download(self.ctx.store, version.object_key, tmp / f"{version.id}.onnx")
                if version.servable:
                    await asyncio.to_thread(_load, str(path), 1)
                routes.append(DeployVersion(
                    model_version_id=str(version.id), name=version.name, version=version.version, role=route["role"],
                    weight=float(route["weight"]), path=path, onnx=version.servable, md5=version.md5,
                    signature=dict(version.signature or {})))
            scratch = tmp / "target"
            scratch.mkdir()
            request = DeployRequest(deployment_id=str(deployment.id), name=deployment.name,
                                    function=deployment.function, routing=deployment.routing,  # type: ignore[arg-type]
                                    versions=routes, scratch=scratch,
                                    options={"docker_host": self.ctx.settings.docker_host})
            result = await asyncio.to_thread(target.bring_up, request)
            if not isinstance(result, DeployResult):
                raise DeployFailed(f"the {deployment.target} target returned {type(result).__name__}, "
                                   "not a DeployResult")
            key = await self._store_artifact(deployment, Path(result.artifact), scratch) if result.artifact else None
            return key, result.message or f"brought up by the {deployment.target} target"

    async def _store_artifact(self, deployment: Deployment, artifact: Path, scratch: Path) -> str:
        if not artifact.resolve().is_relative_to(scratch.resolve()) or not artifact.is_file():
            raise DeployFailed(f"the {deployment.target} target's artifact {artifact.name!r} is no file in its "
                               "scratch folder")
        key = f"deployments/{deployment.id}/{artifact.name}"
        await self.ctx.scoped.put(key, file_chunks(artifact))
        return self.ctx.scoped.full_key(key)
