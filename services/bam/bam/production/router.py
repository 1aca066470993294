from typing import Annotated

from fastapi import APIRouter, Depends, Request

from bam.production.schemas import ProductionRead
from bam.production.service import ProductionService
from mlife_shared.app import SessionDep
from mlife_shared.auth import Viewer

router = APIRouter(prefix="/production", tags=["production"])


async def production_service(request: Request, session: SessionDep) -> ProductionService:
    return ProductionService(session, request.app.state.settings)


ProductionServiceDep = Annotated[ProductionService, Depends(production_service)]


@router.get("")
async def list_production(service: ProductionServiceDep, _: Viewer) -> list[ProductionRead]:
    """Each function's production model version (from `model.promoted`): the version its badcase statuses follow."""
    return await service.productions()
