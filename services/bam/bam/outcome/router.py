import uuid

from fastapi import APIRouter, Request

from bam.badcase.service import BadcaseService
from bam.outcome.schemas import BadcaseOutcomes
from bam.outcome.service import outcomes_of
from mlife_shared.app import SessionDep
from mlife_shared.auth import Viewer

router = APIRouter(prefix="/badcases", tags=["badcases"])


@router.get("/{badcase_id}/outcomes")
async def badcase_outcomes(badcase_id: uuid.UUID, session: SessionDep, _: Viewer, request: Request) -> BadcaseOutcomes:
    """The outcome of this badcase for every tested model version (latest first), with the full history."""
    b = await BadcaseService(session, request.app.state.settings).get(badcase_id)
    return await outcomes_of(session, badcase_id, b.function)
