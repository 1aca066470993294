"""The deployer: brings a requested deployment up. For `local`, every version must load into
onnxruntime here (the API processes then load them on first use, see serving/runtime.py); `docker`
stores a build context (and builds it when an engine is configured); `edge` stores a package."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.app import ServiceContext
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import DeploymentFailed, DeploymentRequested, DeploymentSucceeded
from mlife_shared.messaging.outbox import caused_by
from mlife_shared.objectstore.base import iterate
from msm.config import Settings
from msm.deployment.models import Deployment
from msm.deployment.repository import DeploymentRepository
from msm.deployment.service import DeploymentService
from msm.notification.service import emit
from msm.registry.docker import SdkDockerEngine, build_context
from msm.registry.repository import RegistryRepository
from msm.registry.service import download, scratch_dir

log = structlog.get_logger(__name__)


def _load(path: str, threads: int) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


async def _bring_up(session: AsyncSession, ctx: ServiceContext[Settings], deployment: Deployment) -> str | None:
    settings = ctx.settings
    versions = await RegistryRepository(session).versions([uuid.UUID(v["model_version_id"])
                                                           for v in deployment.versions])
    with scratch_dir() as tmp:
        paths = {}
        for vid, version in versions.items():
            paths[vid] = await download(ctx.store, version.object_key, tmp / f"{vid}.onnx")
            if version.servable:
                await asyncio.to_thread(_load, str(paths[vid]), 1)
        if deployment.target == "docker":
            primary = next(versions[uuid.UUID(v["model_version_id"])] for v in deployment.versions
                           if v["role"] == "primary")
            context = await asyncio.to_thread(build_context, primary, paths[primary.id])
            key = f"deployments/{deployment.id}/docker-context.tar"
            await ctx.scoped.put(key, iterate(context))
            if settings.docker_host:
                tag = f"mlife/{deployment.name}:{primary.version}"
                await asyncio.to_thread(SdkDockerEngine(settings.docker_host).build, context, tag)
            return ctx.scoped.full_key(key)
        if deployment.target == "edge":
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
            key = f"deployments/{deployment.id}/edge-package.tar.gz"
            await ctx.scoped.put(key, iterate(buffer.getvalue()))
            return ctx.scoped.full_key(key)
    return None


async def on_deployment_requested(event: Envelope[DeploymentRequested], session: AsyncSession,
                                  ctx: ServiceContext[Settings]) -> None:
    repo = DeploymentRepository(session)
    deployment = await repo.get(event.data.deployment_id, for_update=True)
    if deployment is None or deployment.status != "requested":
        return  # not ours (another MSM), or already handled
    service = DeploymentService(session)
    try:
        deployment.artifact_key = await _bring_up(session, ctx, deployment)
    except Exception as exc:  # noqa: BLE001 - any failure to load is the deployment's failure, recorded
        reason = f"{type(exc).__name__}: {str(getattr(exc, 'message', exc))[:500]}"
        deployment.failure_reason = reason
        await service.change(deployment, "failed", "deployer", reason)
        await emit(session, DeploymentFailed(deployment_id=deployment.id, reason=reason), **caused_by(event))
        log.warning("deployment_failed", deployment_id=str(deployment.id), reason=reason)
        return
    previous = await repo.live_by_name(deployment.name)
    if previous is not None and previous.id != deployment.id:
        deployment.previous_deployment_id = previous.id
        await service.change(previous, "superseded", "deployer", f"replaced by {deployment.id}")
    await service.change(deployment, "live", "deployer", "all versions loaded")
    await emit(session, DeploymentSucceeded(deployment_id=deployment.id), **caused_by(event))
