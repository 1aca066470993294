from __future__ import annotations

import uuid

from fastapi import APIRouter

from mlife_shared.auth import Viewer
from mtt.report.dependencies import ReportServiceDep
from mtt.report.schemas import Report

router = APIRouter(prefix="/tasks", tags=["reports"])


@router.get("/{task_id}/report")
async def task_report(task_id: uuid.UUID, svc: ReportServiceDep, _: Viewer,
                      compare_with: uuid.UUID | None = None) -> Report:
    """Metrics, confusion, most-confused pairs, weakest classes; `compare_with` another task of the same function."""
    return await svc.report(task_id, compare_with)
