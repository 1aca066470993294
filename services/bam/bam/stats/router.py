from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from bam.badcase.filters import FILTER_PARAMETERS, FilterQuery
from bam.responses import json_answer
from bam.stats.schemas import ATTRIBUTES, BadcaseStats, WeeklyStats
from bam.stats.service import StatsService
from mlife_shared.app import SessionDep
from mlife_shared.auth import Viewer

router = APIRouter(prefix="/stats", tags=["stats"])
Filter = FilterQuery


async def stats_service(session: SessionDep) -> StatsService:
    return StatsService(session)


StatsServiceDep = Annotated[StatsService, Depends(stats_service)]
GROUP_BY = f"One attribute, or two separated by a comma for a confusion table: {', '.join(ATTRIBUTES)}"


@router.get("", response_model=BadcaseStats, openapi_extra=FILTER_PARAMETERS)
async def badcase_stats(service: StatsServiceDep, _: Viewer, f: Filter,
                        group_by: Annotated[str, Query(max_length=100, description=GROUP_BY)],
                        limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Response:
    """Counts and shares of the filtered badcases per attribute value, or per pair as a confusion table."""
    return json_answer(await service.group(f, group_by, limit))


@router.get("/weekly", openapi_extra=FILTER_PARAMETERS)
async def weekly_stats(service: StatsServiceDep, _: Viewer, f: Filter,
                       weeks: Annotated[int, Query(ge=1, le=104)] = 12) -> WeeklyStats:
    """The burn-down of the filtered badcases: reported, fixed, regressed and open per ISO week (UTC)."""
    return await service.weekly(f, weeks)
