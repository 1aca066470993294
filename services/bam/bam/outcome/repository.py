from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, or_, select

from bam.badcase.models import Badcase, Outcome
from mlife_shared.repository import Repository

OPEN = ("new", "triaged", "in_progress", "regressed")


@dataclass(frozen=True)
class VersionRef:
    """A model version as events name it: registry name and version, and MSM's id when the producer knew it."""

    model_name: str
    model_version: str
    model_version_id: uuid.UUID | None = None

    def same_as(self, other: VersionRef) -> bool:
        if self.model_version_id is not None and other.model_version_id is not None:
            return self.model_version_id == other.model_version_id
        return (self.model_name, self.model_version) == (other.model_name, other.model_version)

    def outcomes(self) -> ColumnElement[bool]:
        by_name = and_(Outcome.model_name == self.model_name, Outcome.model_version == self.model_version)
        if self.model_version_id is None:
            return by_name
        return or_(Outcome.model_version_id == self.model_version_id, by_name)


class OutcomeRepository(Repository):
    async def for_badcase(self, badcase_id: uuid.UUID, limit: int = 500) -> Sequence[Outcome]:
        stmt = (select(Outcome).where(Outcome.badcase_id == badcase_id)
                .order_by(Outcome.recorded_at.desc(), Outcome.id).limit(limit))
        return (await self.session.scalars(stmt)).all()

    async def to_move(self, function: str, version: VersionRef) -> Sequence[tuple[Badcase, bool]]:
        """The function's badcases whose status the version's latest outcome contradicts — open ones it passes,
        fixed ones it fails — with that outcome, locked (PostgreSQL), in id order."""
        latest = (select(Outcome.badcase_id, Outcome.passed,
                         func.row_number().over(partition_by=Outcome.badcase_id,
                                                order_by=(Outcome.recorded_at.desc(), Outcome.id.desc()))
                         .label("rank"))
                  .join(Badcase, Badcase.id == Outcome.badcase_id)
                  .where(version.outcomes(), Badcase.function == function).subquery())
        stmt = (select(Badcase, latest.c.passed).join(latest, latest.c.badcase_id == Badcase.id)
                .where(latest.c.rank == 1, Badcase.function == function,
                       or_(and_(Badcase.status.in_(OPEN), latest.c.passed.is_(True)),
                           and_(Badcase.status == "fixed", latest.c.passed.is_(False))))
                .order_by(Badcase.id))
        # Only the badcases are locked, FOR NO KEY UPDATE: a status is not a key, so outcome inserts (their foreign
        # keys) are not blocked.
        stmt = self.lock(stmt, of=Badcase, key_share=True)
        return [(b, bool(passed)) for b, passed in (await self.session.execute(stmt)).all()]
