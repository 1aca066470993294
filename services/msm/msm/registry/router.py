from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from mlife_shared.app import SessionDep, StoreDep
from mlife_shared.auth import Engineer, Maintainer, Viewer
from mlife_shared.errors import Forbidden, Unprocessable
from mlife_shared.http_limits import loads_bounded
from mlife_shared.objectstore import ObjectStore
from msm.deployment.router import deployment_service
from msm.deployment.schemas import Bound, check_thresholds
from msm.deployment.service import DeploymentService
from msm.inputs import reject_nul
from msm.registry import schemas as s
from msm.registry.alias import AliasService
from msm.registry.compression import CompressionService
from msm.registry.docker import DockerEngine
from msm.registry.service import RegistryService

router = APIRouter(tags=["registry"], dependencies=[Depends(reject_nul)])


async def registry_service(request: Request, session: SessionDep, store: StoreDep) -> RegistryService:
    return RegistryService(session, request.app.state.settings, store)


async def alias_service(session: SessionDep) -> AliasService:
    return AliasService(session)


async def compression_service(request: Request, session: SessionDep, store: StoreDep) -> CompressionService:
    return CompressionService(session, request.app.state.settings, store, request.app.state.raw_store)


async def raw_store(request: Request) -> ObjectStore:
    """The unscoped object store: models are imported from (and read under) other services' prefixes too."""
    store: ObjectStore = request.app.state.raw_store
    return store


Service = Annotated[RegistryService, Depends(registry_service)]
Aliases = Annotated[AliasService, Depends(alias_service)]
Compressions = Annotated[CompressionService, Depends(compression_service)]
RawStore = Annotated[ObjectStore, Depends(raw_store)]
Deployments = Annotated[DeploymentService, Depends(deployment_service)]


@router.get("/models")
async def list_models(service: Service, _: Viewer, name: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[s.ModelRead]:
    """Registered models, optionally by name (substring)."""
    return [s.ModelRead.model_validate(m) for m in await service.models(name, limit)]


@router.get("/models/{name}")
async def get_model(name: str, service: Service, _: Viewer) -> s.ModelDetail:
    """A model with its versions and aliases."""
    return await service.model_detail(name)


@router.patch("/models/{name}")
async def update_model(name: str, body: s.ModelUpdate, service: Service, _: Engineer) -> s.ModelRead:
    """Change a model's description, tags or function (the function it serves: required before a deployment)."""
    return s.ModelRead.model_validate(await service.update_model(name, body.model_dump(exclude_unset=True)))


@router.post("/models/{name}/versions", status_code=201,
             openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                              "format": "binary"}}}}})
async def upload_version(name: str, request: Request, service: Service, user: Engineer,
                         description: str = "", tags: Annotated[list[str], Query()] = [],  # noqa: B006
                         metrics: str = Query("{}", description="JSON object of metric name → number"),
                         test_dataset_ids: Annotated[list[uuid.UUID], Query(
                             description="The version's test split(s): the gate requires its results on them")] = [],  # noqa: B006
                         ) -> s.VersionRead:
    """Upload an ONNX model (the raw request body, streamed) as a new version of `name`."""
    try:
        parsed = s.VersionUpdate(metrics=loads_bounded(metrics, what="metrics")).metrics or {}
    except ValueError as exc:
        raise Unprocessable("metrics must be a JSON object of name → number") from exc
    version = await service.upload(name, request.stream(), source="upload", actor=user.username, metrics=parsed,
                                   tags=tags, description=description, test_dataset_ids=test_dataset_ids)
    return s.VersionRead.model_validate(version)


@router.post("/models/{name}/versions/import", status_code=201)
async def import_version(name: str, body: s.VersionImport, service: Service, store: RawStore,
                         user: Engineer) -> s.VersionRead:
    """Register a model already in MLife's object store (keys under the allowed prefixes only)."""
    version = await service.import_key(name, body.source_key, store, source="import", actor=user.username,
                                       metrics=body.metrics, tags=body.tags, description=body.description)
    return s.VersionRead.model_validate(version)


@router.get("/model-versions")
async def search_versions(service: Service, _: Viewer, name: str | None = None, tag: str | None = None,
                          metric: str | None = None, min: float | None = None,  # noqa: A002
                          max: float | None = None,  # noqa: A002
                          limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[s.VersionRead]:
    """Search versions by name (substring), tag, and a metric range (sorted by that metric, best first)."""
    rows = await service.search(name=name, tag=tag, metric=metric, min_value=min, max_value=max, limit=limit)
    return [s.VersionRead.model_validate(v) for v in rows]


@router.get("/model-versions/{version_id}")
async def get_version(version_id: uuid.UUID, service: Service, _: Viewer) -> s.VersionDetail:
    """A version with its lineage: testing results, badcase outcomes, aliases, compression."""
    return await service.version_detail(version_id)


@router.get("/model-versions/{version_id}/gate")
async def check_gate(version_id: uuid.UUID, service: Service, deployments: Deployments, _: Viewer,
                     metric: str | None = None, min: float | None = None,  # noqa: A002
                     max: float | None = None) -> s.GateCheck:  # noqa: A002
    """What the deployment gate would say about this version now, with the same evidence and rules as a
    deployment request; missing evidence is reported (`awaiting`), not asked for: nothing is recorded or sent.
    `metric` may name the set (`test_split.accuracy`); without it, the function's default thresholds apply."""
    version = await service.get_version(version_id)
    thresholds = None
    if metric:
        try:  # the same checks as a request's thresholds: a NaN bound would pass anything
            thresholds = {metric: Bound(min=min, max=max)}
            check_thresholds(thresholds)
        except ValueError as exc:
            raise Unprocessable(f"give min and/or max, finite, with metric: {exc}") from exc
    result = await deployments.preview(version, thresholds)
    return s.GateCheck(**{k: result[k] for k in s.GateCheck.model_fields})


@router.patch("/model-versions/{version_id}")
async def update_version(version_id: uuid.UUID, body: s.VersionUpdate, service: Service,
                         _: Engineer) -> s.VersionRead:
    """Annotate a version: description, tags, metrics."""
    return s.VersionRead.model_validate(await service.update_version(version_id,
                                                                     body.model_dump(exclude_unset=True)))


def _may_move(alias: str, user: Engineer) -> None:
    if alias == "production" and not user.has("maintainer"):
        raise Forbidden("moving the production alias needs the maintainer role")


@router.post("/models/{name}/aliases")
async def move_alias(name: str, body: s.AliasMove, service: Aliases, user: Engineer) -> s.AliasChangeRead:
    """Point an alias at a version (recorded: who, when, why). Moving `production` needs a maintainer."""
    _may_move(body.alias, user)
    change = await service.move(name, body.alias, body.version, actor=user.username, reason=body.reason)
    return s.AliasChangeRead.model_validate(change)


@router.post("/models/{name}/aliases/{alias}/revert")
async def revert_alias(name: str, alias: str, body: s.AliasRevert, service: Aliases,
                       user: Engineer) -> s.AliasChangeRead:
    """Move an alias back to where it pointed before its last move."""
    _may_move(alias, user)
    change = await service.revert(name, alias, actor=user.username, reason=body.reason)
    return s.AliasChangeRead.model_validate(change)


@router.get("/models/{name}/aliases/history")
async def alias_history(name: str, service: Service, _: Viewer, alias: str | None = None) -> list[s.AliasChangeRead]:
    """Every alias move of a model, newest first."""
    return [s.AliasChangeRead.model_validate(c) for c in await service.alias_history(name, alias)]


@router.post("/model-versions/{version_id}/compress", status_code=201)
async def compress_version(version_id: uuid.UUID, body: s.CompressRequest, service: Compressions,
                           user: Engineer) -> s.CompressResult:
    """Dynamic INT8 quantization → a new version; MTT measures the accuracy delta on the chosen dataset."""
    version, comp = await service.compress(version_id, actor=user.username, dataset_id=body.evaluate_on_dataset_id,
                                           sample=body.sample)
    return s.CompressResult(version=s.VersionRead.model_validate(version),
                            compression=s.CompressionRead.model_validate(comp))


@router.get("/model-versions/{version_id}/docker-context", response_class=Response,
            responses={200: {"content": {"application/x-tar": {}}}})
async def docker_context(version_id: uuid.UUID, service: Service, store: RawStore, _: Viewer) -> Response:
    """A Docker build context (Dockerfile, model, minimal server, pinned requirements) as a tar."""
    data = await service.docker_context(version_id, store)
    return Response(data, media_type="application/x-tar",
                    headers={"content-disposition": f'attachment; filename="model-{version_id}.tar"'})


@router.post("/model-versions/{version_id}/docker-build")
async def docker_build(version_id: uuid.UUID, body: s.DockerBuild, request: Request, service: Service,
                       store: RawStore, _: Maintainer) -> dict[str, object]:
    """Build the image through the configured Docker engine (MLIFE_MSM_DOCKER_HOST)."""
    engine: DockerEngine | None = getattr(request.app.state, "docker_engine", None)
    if engine is None:
        raise Unprocessable("no Docker engine is configured (set MLIFE_MSM_DOCKER_HOST); download the context instead")
    data = await service.docker_context(version_id, store)
    return await asyncio.to_thread(engine.build, data, body.tag)
