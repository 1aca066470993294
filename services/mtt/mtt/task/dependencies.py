"""The services a request gets, on the request's unit of work."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mlife_shared.app import SessionDep
from mtt.task.artifacts import ArtifactService
from mtt.task.service import TaskService


async def task_service(request: Request, session: SessionDep) -> TaskService:
    return TaskService(session, request.app.state.settings, request.app.state.raw_store)


async def artifact_service(request: Request, session: SessionDep) -> ArtifactService:
    return ArtifactService(session, request.app.state.settings, request.app.state.raw_store)


TaskServiceDep = Annotated[TaskService, Depends(task_service)]
ArtifactServiceDep = Annotated[ArtifactService, Depends(artifact_service)]
