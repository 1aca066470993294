import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from bam.outcome.schemas import BadcaseOutcomes
from bam.outcome.service import OutcomeService
from mlife_shared.app import SessionDep
from mlife_shared.auth import Viewer

router = APIRouter(prefix="/badcases", tags=["badcases"])


async def outcome_service(request: Request, session: SessionDep) -> OutcomeService:
    return OutcomeService(session, request.app.state.settings)


OutcomeServiceDep = Annotated[OutcomeService, Depends(outcome_service)]


@router.get("/{badcase_id}/outcomes")
async def badcase_outcomes(badcase_id: uuid.UUID, service: OutcomeServiceDep, _: Viewer) -> BadcaseOutcomes:
    """The outcome of this badcase for every tested model version (latest first), with the full history."""
    return await service.outcomes_of(badcase_id)
