from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from dam.document.service import require_storable
from dam.quality.models import QualityFinding, QualityRun
from dam.quality.schemas import FindingCount, FindingRead, QualityReport, QualityRunCreate
from dam.quality.service import QualityService
from mlife_shared.app import SessionDep, StoreDep
from mlife_shared.auth import Engineer, Viewer
from mlife_shared.bounds import INT32_MAX

router = APIRouter(prefix="/documents", tags=["quality"])


async def quality_service(request: Request, session: SessionDep, store: StoreDep) -> QualityService:
    return QualityService(session, store, request.app.state.plugins)


QualityServiceDep = Annotated[QualityService, Depends(quality_service)]


def finding_read(f: QualityFinding) -> FindingRead:
    return FindingRead(cleaner=f.cleaner, code=f.code, severity=f.severity, message=f.message, md5=f.md5,
                       position=f.position, related=list(f.related or []))


async def report(svc: QualityService, document_id: uuid.UUID, version: int | None, *, severity: str | None = None,
                 cleaner: str | None = None, limit: int = 100, offset: int = 0) -> QualityReport:
    run, counts, page = await svc.report(document_id, version, severity=severity, cleaner=cleaner, limit=limit,
                                         offset=offset)
    return to_report(run, counts, page.total, [finding_read(f) for f in page.items])


def to_report(run: QualityRun, counts: list[tuple[str, str, str, int]], total: int,
              findings: list[FindingRead]) -> QualityReport:
    return QualityReport(document_id=run.document_id, version=run.document_version, checked=run.ran_at is not None,
                         cleaners=run.cleaners,
                         classes=run.classes, row_count=run.row_count, checked_count=run.checked_count,
                         ran_by=run.ran_by, ran_at=run.ran_at, total=total, findings=findings,
                         counts=[FindingCount(cleaner=c, code=k, severity=s, count=n) for c, k, s, n in counts])


@router.post("/{document_id}/findings")
async def run_cleaners(document_id: uuid.UUID, body: QualityRunCreate, svc: QualityServiceDep,
                       identity: Engineer) -> QualityReport:
    """Run the cleaner plugins (every active one, or those named) over a document version's rows; the findings
    replace that version's previous ones (the first 100 are returned; GET pages them)."""
    run = await svc.check_document(document_id, body, identity.username)
    return await report(svc, document_id, run.document_version)


@router.get("/{document_id}/findings")
async def get_findings(document_id: uuid.UUID, svc: QualityServiceDep, _: Viewer,
                       version: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
                       severity: Annotated[str | None, Query(max_length=20)] = None,
                       cleaner: Annotated[str | None, Query(max_length=100)] = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                       offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0) -> QualityReport:
    """The findings of the latest cleaner run over a document version (`checked` false: never run over it)."""
    require_storable("the filter", severity, cleaner)
    return await report(svc, document_id, version, severity=severity, cleaner=cleaner, limit=limit, offset=offset)
