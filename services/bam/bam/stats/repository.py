"""Every statistics query: GROUP BY in the database, never badcases loaded into Python. The filter is the
badcase list's own (`BadcaseRepository.conditions`). Weeks are Mondays (UTC) as 'YYYY-MM-DD': PostgreSQL
`date_trunc('week', …)`, SQLite date arithmetic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (ColumnElement, Select, SQLColumnExpression, String, case, func, literal, literal_column, join,
                        null, or_, select)
from sqlalchemy.ext.asyncio import AsyncSession

from bam.badcase.filters import BadcaseFilter
from bam.badcase.models import Badcase, BadcaseTag, Occurrence, TriageChange
from bam.badcase.repository import BadcaseRepository

CLOSED = ("fixed", "wont_fix")
Key = tuple[str | None, ...]


@dataclass
class GroupCounts:
    rows: list[tuple[Key, int]]
    counted: int = 0
    groups: int = 0


class StatsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.badcases = BadcaseRepository(session)

    def week_of(self, column: Any) -> ColumnElement[str]:
        # Literal SQL, not bound parameters: the same expression must match in SELECT and GROUP BY.
        if self.badcases.dialect == "postgresql":
            utc = func.timezone(literal_column("'UTC'"), column)
            return func.to_char(func.date_trunc(literal_column("'week'"), utc), literal_column("'YYYY-MM-DD'"))
        return func.date(column, literal_column("'-6 days'"), literal_column("'weekday 1'"))

    def attribute(self, name: str) -> SQLColumnExpression[Any]:
        special: dict[str, SQLColumnExpression[Any]] = {
            "label": Badcase.ground_truth_label, "prediction": Badcase.prediction_label, "tag": BadcaseTag.tag,
            "week": self.week_of(Badcase.first_seen)}
        return special[name] if name in special else getattr(Badcase, name)

    def _grouped(self, f: BadcaseFilter, attributes: Sequence[str], *extra: Any) -> tuple[Select[Any], list[Any]]:
        keys = [self.attribute(a) for a in attributes]
        stmt = select(*keys, *extra).select_from(Badcase)
        if "tag" in attributes:
            stmt = stmt.outerjoin(BadcaseTag, BadcaseTag.badcase_id == Badcase.id)
        return stmt.where(*self.badcases.conditions(f)).group_by(*keys), keys

    async def groups(self, f: BadcaseFilter, attributes: Sequence[str], limit: int) -> GroupCounts:
        """The `limit` largest groups, with the sum of all groups' counts and the number of groups."""
        n = func.count()
        stmt, keys = self._grouped(f, attributes, n, func.sum(func.count()).over(), func.count().over())
        stmt = stmt.order_by(n.desc(), *(k.asc().nulls_last() for k in keys)).limit(limit)
        rows = (await self.session.execute(stmt)).all()
        if not rows:
            return GroupCounts(rows=[])
        width = len(attributes)
        return GroupCounts(rows=[(tuple(r[:width]), int(r[width])) for r in rows], counted=int(rows[0][width + 1]),
                           groups=int(rows[0][width + 2]))

    async def cells(self, f: BadcaseFilter, attributes: Sequence[str],
                    values: Sequence[Sequence[str | None]]) -> list[tuple[Key, int]]:
        """Every group whose value of each attribute is one of `values` (one list per attribute)."""
        stmt, keys = self._grouped(f, attributes, func.count())
        stmt = stmt.where(*(_one_of(k, v) for k, v in zip(keys, values, strict=True)))
        width = len(attributes)
        return [(tuple(r[:width]), int(r[width])) for r in (await self.session.execute(stmt)).all()]

    async def count(self, f: BadcaseFilter) -> int:
        stmt = select(func.count()).select_from(Badcase).where(*self.badcases.conditions(f))
        return int(await self.session.scalar(stmt) or 0)

    def closed_at(self) -> ColumnElement[datetime]:
        """When a currently closed badcase entered its status: `fixed_at`, or a wont_fix one's last status change."""
        last_change = (select(func.max(TriageChange.changed_at))
                       .where(TriageChange.badcase_id == Badcase.id, TriageChange.field == "status")
                       .scalar_subquery())
        return case((Badcase.status == "fixed", Badcase.fixed_at),
                    (Badcase.status == "wont_fix", func.coalesce(last_change, Badcase.updated_at)))

    async def weekly(self, f: BadcaseFilter, start: datetime, end: datetime) -> dict[tuple[str, str | None], int]:
        """Counts per (kind, week) for weeks in [start, end), plus ('seen', None) and ('closed', None): the
        badcases first seen, and closed, before `start`."""
        conditions = self.badcases.conditions(f)
        closed = [*conditions, Badcase.status.in_(CLOSED)]
        closed_at = self.closed_at()

        def per_week(kind: str, column: Any, where: list[Any], source: Any = Badcase) -> Select[Any, Any, Any]:
            week = self.week_of(column)
            return (select(literal(kind, String).label("kind"), week.label("week"), func.count().label("n"))
                    .select_from(source).where(*where, column >= start, column < end).group_by(week))

        def before(kind: str, column: Any, where: list[Any]) -> Select[Any, Any, Any]:
            return select(literal(kind, String), null(), func.count()).where(*where, column < start)

        parts = [
            per_week("reported", Badcase.first_seen, conditions),
            per_week("occurrences", Occurrence.reported_at, conditions,
                     join(Occurrence, Badcase, Badcase.id == Occurrence.badcase_id)),
            per_week("fixed", Badcase.fixed_at, conditions),
            per_week("regressed", Badcase.regressed_at, conditions),
            per_week("closed", closed_at, closed),
            before("seen", Badcase.first_seen, conditions),
            before("closed", closed_at, closed),
        ]
        stmt = parts[0].union_all(*parts[1:])
        return {(kind, week): int(n) for kind, week, n in (await self.session.execute(stmt)).all()}


def _one_of(column: SQLColumnExpression[Any], values: Sequence[str | None]) -> ColumnElement[bool]:
    present = [v for v in values if v is not None]
    condition = column.in_(present)
    return or_(condition, column.is_(None)) if None in values else condition
