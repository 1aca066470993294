"""The report service a request gets, on the request's unit of work."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mlife_shared.app import SessionDep
from mtt.report.service import ReportService


async def report_service(request: Request, session: SessionDep) -> ReportService:
    return ReportService(session, request.app.state.settings, request.app.state.raw_store)


ReportServiceDep = Annotated[ReportService, Depends(report_service)]
