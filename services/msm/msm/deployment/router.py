from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from mlife_shared.app import SessionDep
from mlife_shared.auth import Engineer, Maintainer, Viewer
from mlife_shared.errors import error_body
from mlife_shared.names import FUNCTION_MAX_CHARS, FUNCTION_PATTERN
from msm.deployment import schemas as s
from msm.deployment.service import DeploymentService
from msm.inputs import reject_nul

router = APIRouter(tags=["deployments"], dependencies=[Depends(reject_nul)])


async def deployment_service(session: SessionDep, request: Request) -> DeploymentService:
    return DeploymentService(session, request.app.state.plugins)


Service = Annotated[DeploymentService, Depends(deployment_service)]


@router.post("/deployments", status_code=201, response_model=s.DeploymentDetail,
             responses={202: {"description": "awaiting tests (see gate.evidence)"},
                        409: {"description": "blocked by the gate"}})
async def create_deployment(body: s.DeploymentCreate, service: Service,
                            user: Engineer) -> s.DeploymentDetail | JSONResponse:
    """Request a deployment of a model whose function is set. The gate checks the candidates' results on the
    function's badcase test set and their test splits (thresholds, badcases production passes); missing results
    are asked of MTT and the request waits (202, `awaiting_tests`); a blocked request is kept (`blocked`) and
    answered 409 with the reasons and the regressed / untested badcases."""
    deployment = await service.create(body, user)
    if deployment.status == "awaiting_tests":
        return JSONResponse((await service.detail(deployment)).model_dump(mode="json"), status_code=202)
    if deployment.status == "blocked":
        # Not raised: the blocked deployment and its gate result must be committed, for the record and an override.
        blocked = {"message": "the deployment gate blocked this request", "deployment_id": str(deployment.id),
                  "reasons": deployment.gate["reasons"],
                  "regressed_badcases": deployment.gate["regressed_badcases"],
                  "untested_badcases": deployment.gate["untested_badcases"],
                  "override": f"POST /api/msm/deployments/{deployment.id}/override with a reason (maintainer)"}
        return JSONResponse(error_body("GateBlocked", blocked), status_code=409)
    return await service.detail(deployment)


@router.get("/deployments")
async def list_deployments(service: Service, _: Viewer, name: str | None = None, status: str | None = None,
                           limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[s.DeploymentRead]:
    """Deployments, newest first."""
    return await service.search(name, status, limit)


@router.get("/deployments/{deployment_id}")
async def get_deployment(deployment_id: uuid.UUID, service: Service, _: Viewer) -> s.DeploymentDetail:
    """A deployment with its gate result, status history and attached badcases."""
    return await service.detail(await service.get(deployment_id))


@router.post("/deployments/{deployment_id}/override")
async def override_gate(deployment_id: uuid.UUID, body: s.OverrideRequest, service: Service,
                        user: Maintainer) -> s.DeploymentDetail:
    """Deploy a blocked request (or one awaiting tests) anyway; the reason and the maintainer are recorded."""
    return await service.detail(await service.override(deployment_id, body.reason, user))


@router.post("/deployments/{deployment_id}/rollback")
async def rollback(deployment_id: uuid.UUID, body: s.RollbackRequest, service: Service,
                   user: Maintainer) -> s.DeploymentDetail:
    """Roll a live deployment back to the one it replaced (which is live again, at once)."""
    return await service.detail(await service.rollback(deployment_id, body.reason, user))


@router.post("/deployments/{deployment_id}/badcases")
async def attach_badcases(deployment_id: uuid.UUID, body: s.BadcaseAttach, service: Service,
                          _: Engineer) -> s.DeploymentDetail:
    """Attach badcases to a deployment by hand."""
    deployment = await service.get(deployment_id)
    await service.attach(deployment, body.badcase_ids, body.note)
    return await service.detail(deployment)


@router.post("/deployments/{deployment_id}/metrics", status_code=201)
async def record_metrics(deployment_id: uuid.UUID, body: s.MetricValues, service: Service,
                         _: Engineer) -> s.MetricRead:
    """Record values of the deployment's user-defined metrics (checked against its schema)."""
    return s.MetricRead.model_validate(await service.record_metrics(deployment_id, body.values))


@router.get("/deployments/{deployment_id}/metrics")
async def list_metrics(deployment_id: uuid.UUID, service: Service, _: Viewer,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[s.MetricRead]:
    """Recorded user-metric values, newest first."""
    return await service.metrics(deployment_id, limit)


FunctionPath = Annotated[str, Path(max_length=FUNCTION_MAX_CHARS, pattern=FUNCTION_PATTERN)]


@router.get("/functions/{function}/thresholds")
async def get_function_thresholds(function: FunctionPath, service: Service, _: Viewer) -> s.FunctionThresholdsRead:
    """The function's default gate thresholds (used when a deployment request gives none)."""
    return await service.function_thresholds(function)


@router.put("/functions/{function}/thresholds")
async def put_function_thresholds(function: FunctionPath, body: s.FunctionThresholdsUpdate, service: Service,
                                  user: Maintainer) -> s.FunctionThresholdsRead:
    """Set the function's default gate thresholds, e.g. `{"test_split.accuracy": {"min": 0.95}}` (maintainer)."""
    return await service.set_function_thresholds(
        function, {k: v.model_dump(exclude_none=True) for k, v in body.thresholds.items()}, user)
