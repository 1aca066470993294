from fastapi import APIRouter

from bam.production.schemas import ProductionRead
from bam.production.service import productions
from mlife_shared.app import SessionDep
from mlife_shared.auth import Viewer

router = APIRouter(prefix="/production", tags=["production"])


@router.get("")
async def list_production(session: SessionDep, _: Viewer) -> list[ProductionRead]:
    """Each function's production model version (from `model.promoted`): the version its badcase statuses follow."""
    return await productions(session)
