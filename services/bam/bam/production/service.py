"""Badcase status follows production. BAM keeps each function's production version (`model.promoted`); when a
version becomes production, and when the production version's testing results arrive, the function's open
badcases that production passes become `fixed` and its fixed ones that production fails become `regressed`,
judged by each badcase's latest outcome for that version. A candidate's results never change a status."""

from __future__ import annotations

from collections import Counter
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from bam.badcase.schemas import Status
from bam.badcase.service import BadcaseService
from bam.config import Settings
from bam.outcome.repository import OutcomeRepository, VersionRef
from bam.production.models import ProductionVersion
from bam.production.repository import ProductionRepository
from bam.production.schemas import ProductionRead
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import ModelPromoted
from mlife_shared.messaging.outbox import caused_by

log = structlog.get_logger(__name__)


def version_of(p: ProductionVersion) -> VersionRef | None:
    if p.model_name is None or p.model_version is None:
        return None
    return VersionRef(p.model_name, p.model_version, p.model_version_id)


def is_production(p: ProductionVersion, tested: VersionRef) -> bool:
    production = version_of(p)
    return production is not None and production.same_as(tested)


class ProductionService:
    """Each function's production version, and the statuses that follow it. Never commits."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.repo = ProductionRepository(session)
        self.outcomes = OutcomeRepository(session)
        self.badcases = BadcaseService(session, settings)

    async def lock(self, function: str) -> ProductionVersion:
        """The function's production row, locked: what a promotion and a testing result of it serialise on."""
        return await self.repo.lock_function(function)

    async def follow(self, p: ProductionVersion, *, actor: str, correlation: dict[str, Any]) -> Counter[str]:
        """Move the function's statuses to what its production version's latest outcomes say; `p` is locked.
        Each move is the badcase's own status change (`BadcaseService.set_status`): transition, history row
        and `badcase.updated`, as a person's triage."""
        counts: Counter[str] = Counter()
        production = version_of(p)
        if production is None:
            return counts
        for b, passed in await self.outcomes.to_move(p.function, production):
            status: Status = "fixed" if passed else "regressed"
            await self.badcases.set_status(b, status, actor, correlation=correlation)
            counts[status] += 1
        return counts

    async def promote(self, event: Envelope[ModelPromoted]) -> Counter[str]:
        d = event.data
        if not d.function or not d.function.strip():
            # Without a function there is no set of badcases it is production for (models of `unassigned` are not
            # one system): nothing moves.
            log.warning("promotion_without_function", model_name=d.model_name, model_version=d.model_version)
            return Counter()
        p = await self.lock(d.function.strip())
        if p.promoted_at is not None and p.promoted_at > event.time:
            log.info("promotion_superseded", function=p.function, model_name=d.model_name,
                     model_version=d.model_version, current=f"{p.model_name} {p.model_version}")
            return Counter()
        p.model_name, p.model_version, p.model_version_id = d.model_name, d.model_version, d.model_version_id
        p.promoted_at, p.event_id = event.time, event.id
        counts = await self.follow(p, actor=f"production:{d.model_name} {d.model_version}"[:100],
                                   correlation=caused_by(event))
        log.info("production_followed", function=p.function, model_name=d.model_name, model_version=d.model_version,
                 **counts)
        return counts

    async def productions(self) -> list[ProductionRead]:
        return [ProductionRead.model_validate(p, from_attributes=True) for p in await self.repo.promoted()]

    async def production_of(self, function: str) -> VersionRef | None:
        p = await self.repo.get(ProductionVersion, function)
        return version_of(p) if p is not None else None
