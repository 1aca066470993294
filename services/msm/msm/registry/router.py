from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from mlife_shared.app import SessionDep, StoreDep
from mlife_shared.auth import Engineer, Maintainer, Viewer
from mlife_shared.errors import Forbidden, PayloadTooLarge, Unprocessable
from mlife_shared.http_limits import loads_bounded
from msm.deployment.schemas import Bound, check_thresholds
from msm.deployment.service import DeploymentService
from msm.inputs import reject_nul
from msm.registry import schemas as s
from msm.registry.compression import compress
from msm.registry.docker import build_context
from msm.registry.repository import RegistryRepository
from msm.registry.service import RegistryService, check_name, download, scratch_dir
from msm.testing.repository import TestingRepository

router = APIRouter(tags=["registry"], dependencies=[Depends(reject_nul)])


def _service(request: Request, session: SessionDep, store: StoreDep) -> RegistryService:
    return RegistryService(session, request.app.state.settings, store)


async def _detail(session: SessionDep, version_id: uuid.UUID) -> s.VersionDetail:
    repo = RegistryRepository(session)
    version = await repo.version(version_id)
    assert version is not None
    aliases = [a.alias for a in await repo.aliases(version.model_id) if a.version_id == version.id]
    testing = TestingRepository(session)
    results = [s.TestingSummary.model_validate(r, from_attributes=True)
               for r in await testing.results(version.name, version.version)]
    outcomes = await testing.outcomes(version.name, version.version)
    comp = await repo.compression_of(version.id)
    compression = None
    if comp is not None:
        compression = s.CompressionRead.model_validate(comp)
        if comp.dataset_id is not None and comp.metric_delta is None:
            pair = await repo.versions([comp.source_version_id, comp.compressed_version_id])
            compression.waiting_for = [f"{v.name} v{v.version}" for v in pair.values()
                                       if await testing.latest_on(v.name, v.version, comp.dataset_id) is None]
    return s.VersionDetail(**s.VersionRead.model_validate(version).model_dump(), aliases=aliases, testing=results,
                           badcase_outcomes={"passed": sum(outcomes.values()),
                                             "failed": len(outcomes) - sum(outcomes.values())},
                           compression=compression)


@router.get("/models")
async def list_models(session: SessionDep, _: Viewer, name: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[s.ModelRead]:
    """Registered models, optionally by name (substring)."""
    return [s.ModelRead.model_validate(m) for m in await RegistryRepository(session).search_models(name, limit)]


@router.get("/models/{name}")
async def get_model(name: str, request: Request, session: SessionDep, store: StoreDep, _: Viewer) -> s.ModelDetail:
    """A model with its versions and aliases."""
    model = await _service(request, session, store).get_model(name)
    repo = RegistryRepository(session)
    versions = await repo.versions_of(model.id)
    by_id = {v.id: v for v in versions}
    aliases = [s.AliasRead(alias=a.alias, version_id=a.version_id, version=by_id[a.version_id].version,
                           updated_at=a.updated_at) for a in await repo.aliases(model.id)]
    return s.ModelDetail(**s.ModelRead.model_validate(model).model_dump(), aliases=aliases,
                         versions=[s.VersionRead.model_validate(v) for v in versions])


@router.patch("/models/{name}")
async def update_model(name: str, body: s.ModelUpdate, request: Request, session: SessionDep, store: StoreDep,
                       _: Engineer) -> s.ModelRead:
    """Change a model's description, tags or function (the function it serves: required before a deployment)."""
    model = await _service(request, session, store).update_model(name, body.model_dump(exclude_unset=True))
    return s.ModelRead.model_validate(model)


@router.post("/models/{name}/versions", status_code=201,
             openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                              "format": "binary"}}}}})
async def upload_version(name: str, request: Request, session: SessionDep, store: StoreDep, user: Engineer,
                         description: str = "", tags: Annotated[list[str], Query()] = [],  # noqa: B006
                         metrics: str = Query("{}", description="JSON object of metric name → number"),
                         test_dataset_ids: Annotated[list[uuid.UUID], Query(
                             description="The version's test split(s): the gate requires its results on them")] = [],  # noqa: B006
                         ) -> s.VersionRead:
    """Upload an ONNX model (the raw request body, streamed) as a new version of `name`."""
    check_name(name)
    try:
        parsed = s.VersionUpdate(metrics=loads_bounded(metrics, what="metrics")).metrics or {}
    except ValueError as exc:
        raise Unprocessable("metrics must be a JSON object of name → number") from exc
    settings = request.app.state.settings
    with scratch_dir() as tmp:
        path, size = tmp / "upload.onnx", 0
        with path.open("wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > settings.model_max_bytes:
                    raise PayloadTooLarge(f"the model is larger than {settings.model_max_bytes} bytes")
                await asyncio.to_thread(fh.write, chunk)
        version = await _service(request, session, store).register(
            name, path, source="upload", actor=user.username, metrics=parsed, tags=tags, description=description,
            test_dataset_ids=test_dataset_ids)
    return s.VersionRead.model_validate(version)


@router.post("/models/{name}/versions/import", status_code=201)
async def import_version(name: str, body: s.VersionImport, request: Request, session: SessionDep, store: StoreDep,
                         user: Engineer) -> s.VersionRead:
    """Register a model already in MLife's object store (keys under the allowed prefixes only)."""
    version = await _service(request, session, store).import_key(
        name, body.source_key, request.app.state.raw_store, source="import", actor=user.username,
        metrics=body.metrics, tags=body.tags, description=body.description)
    return s.VersionRead.model_validate(version)


@router.get("/model-versions")
async def search_versions(request: Request, session: SessionDep, store: StoreDep, _: Viewer,
                          name: str | None = None, tag: str | None = None, metric: str | None = None,
                          min: float | None = None, max: float | None = None,  # noqa: A002
                          limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[s.VersionRead]:
    """Search versions by name (substring), tag, and a metric range (sorted by that metric, best first)."""
    rows = await _service(request, session, store).search(name=name, tag=tag, metric=metric, min_value=min,
                                                          max_value=max, limit=limit)
    return [s.VersionRead.model_validate(v) for v in rows]


@router.get("/model-versions/{version_id}")
async def get_version(version_id: uuid.UUID, request: Request, session: SessionDep, store: StoreDep,
                      _: Viewer) -> s.VersionDetail:
    """A version with its lineage: testing results, badcase outcomes, aliases, compression."""
    await _service(request, session, store).get_version(version_id)
    return await _detail(session, version_id)


@router.get("/model-versions/{version_id}/gate")
async def check_gate(version_id: uuid.UUID, request: Request, session: SessionDep, store: StoreDep, _: Viewer,
                     metric: str | None = None, min: float | None = None,  # noqa: A002
                     max: float | None = None) -> s.GateCheck:  # noqa: A002
    """What the deployment gate would say about this version now, with the same evidence and rules as a
    deployment request; missing evidence is reported (`awaiting`), not asked for: nothing is recorded or sent.
    `metric` may name the set (`test_split.accuracy`); without it, the function's default thresholds apply."""
    version = await _service(request, session, store).get_version(version_id)
    thresholds = None
    if metric:
        try:  # the same checks as a request's thresholds: a NaN bound would pass anything
            thresholds = {metric: Bound(min=min, max=max)}
            check_thresholds(thresholds)
        except ValueError as exc:
            raise Unprocessable(f"give min and/or max, finite, with metric: {exc}") from exc
    result = await DeploymentService(session).preview(version, thresholds)
    return s.GateCheck(**{k: result[k] for k in s.GateCheck.model_fields})


@router.patch("/model-versions/{version_id}")
async def update_version(version_id: uuid.UUID, body: s.VersionUpdate, request: Request, session: SessionDep,
                         store: StoreDep, _: Engineer) -> s.VersionRead:
    """Annotate a version: description, tags, metrics."""
    version = await _service(request, session, store).update_version(version_id, body.model_dump(exclude_unset=True))
    return s.VersionRead.model_validate(version)


@router.post("/models/{name}/aliases")
async def move_alias(name: str, body: s.AliasMove, request: Request, session: SessionDep, store: StoreDep,
                     user: Engineer) -> s.AliasChangeRead:
    """Point an alias at a version (recorded: who, when, why). Moving `production` needs a maintainer."""
    if body.alias == "production" and not user.has("maintainer"):
        raise Forbidden("moving the production alias needs the maintainer role")
    change = await _service(request, session, store).move_alias(name, body.alias, body.version,
                                                                actor=user.username, reason=body.reason)
    return s.AliasChangeRead.model_validate(change)


@router.post("/models/{name}/aliases/{alias}/revert")
async def revert_alias(name: str, alias: str, body: s.AliasRevert, request: Request, session: SessionDep,
                       store: StoreDep, user: Engineer) -> s.AliasChangeRead:
    """Move an alias back to where it pointed before its last move."""
    if alias == "production" and not user.has("maintainer"):
        raise Forbidden("moving the production alias needs the maintainer role")
    change = await _service(request, session, store).revert_alias(name, alias, actor=user.username,
                                                                  reason=body.reason)
    return s.AliasChangeRead.model_validate(change)


@router.get("/models/{name}/aliases/history")
async def alias_history(name: str, request: Request, session: SessionDep, store: StoreDep, _: Viewer,
                        alias: str | None = None) -> list[s.AliasChangeRead]:
    """Every alias move of a model, newest first."""
    model = await _service(request, session, store).get_model(name)
    return [s.AliasChangeRead.model_validate(c) for c in await RegistryRepository(session).alias_history(model.id,
                                                                                                       alias)]


@router.post("/model-versions/{version_id}/compress", status_code=201)
async def compress_version(version_id: uuid.UUID, body: s.CompressRequest, request: Request, session: SessionDep,
                           store: StoreDep, user: Engineer) -> s.CompressResult:
    """Dynamic INT8 quantization → a new version; MTT measures the accuracy delta on the chosen dataset."""
    version, comp = await compress(session, request.app.state.settings, store, request.app.state.raw_store,
                                   version_id, actor=user.username, dataset_id=body.evaluate_on_dataset_id,
                                   sample=body.sample)
    return s.CompressResult(version=s.VersionRead.model_validate(version),
                            compression=s.CompressionRead.model_validate(comp))


async def _context(request: Request, session: SessionDep, store: StoreDep, version_id: uuid.UUID) -> bytes:
    version = await _service(request, session, store).get_version(version_id)
    with scratch_dir() as tmp:
        path = await download(request.app.state.raw_store, version.object_key, tmp / "model.onnx")
        return await asyncio.to_thread(build_context, version, path)


@router.get("/model-versions/{version_id}/docker-context", response_class=Response,
            responses={200: {"content": {"application/x-tar": {}}}})
async def docker_context(version_id: uuid.UUID, request: Request, session: SessionDep, store: StoreDep,
                         _: Viewer) -> Response:
    """A Docker build context (Dockerfile, model, minimal server, pinned requirements) as a tar."""
    data = await _context(request, session, store, version_id)
    return Response(data, media_type="application/x-tar",
                    headers={"content-disposition": f'attachment; filename="model-{version_id}.tar"'})


@router.post("/model-versions/{version_id}/docker-build")
async def docker_build(version_id: uuid.UUID, body: s.DockerBuild, request: Request, session: SessionDep,
                       store: StoreDep, _: Maintainer) -> dict[str, object]:
    """Build the image through the configured Docker engine (MLIFE_MSM_DOCKER_HOST)."""
    engine = getattr(request.app.state, "docker_engine", None)
    if engine is None:
        raise Unprocessable("no Docker engine is configured (set MLIFE_MSM_DOCKER_HOST); download the context instead")
    data = await _context(request, session, store, version_id)
    return await asyncio.to_thread(engine.build, data, body.tag)
