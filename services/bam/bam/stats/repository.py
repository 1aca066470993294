"""Every statistics query: GROUP BY in the database, never badcases loaded into Python. The filter is the
badcase list's own (`BadcaseRepository.conditions`). A week is its Monday (UTC) as 'YYYY-MM-DD': PostgreSQL
`date_trunc('week', …)::date`, SQLite date arithmetic on the stored text."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, get_args

from sqlalchemy import (
    Date,
    Dialect,
    Select,
    SQLColumnExpression,
    String,
    TypeDecorator,
    cast,
    func,
    join,
    literal,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.sql.elements import ColumnElement, TextClause

from bam.badcase.filters import BadcaseFilter
from bam.badcase.models import Badcase, BadcaseTag, Occurrence
from bam.badcase.repository import BadcaseRepository
from bam.badcase.schemas import Status
from mlife_shared.db import cast_table
from mlife_shared.repository import Repository

OPEN = tuple(s for s in get_args(Status) if s not in ("fixed", "wont_fix"))
_BADCASE, _TAG = cast_table(Badcase), cast_table(BadcaseTag)
_SPECIAL: dict[str, SQLColumnExpression[Any]] = {
    "label": _BADCASE.c.ground_truth_label, "prediction": _BADCASE.c.prediction_label, "tag": _TAG.c.tag}
Key = tuple[str | None, ...]


class WeekStart(TypeDecorator[str]):
    """A week as 'YYYY-MM-DD' in Python; a DATE on PostgreSQL (grouping by text costs three times more), text on SQLite."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(Date() if dialect.name == "postgresql" else String())

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        return date.fromisoformat(value) if value is not None and dialect.name == "postgresql" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return value.isoformat() if isinstance(value, date) else value


@dataclass
class GroupCounts:
    rows: list[tuple[Key, int]]
    counted: int = 0
    groups: int = 0


class StatsRepository(Repository):
    def conditions(self, f: BadcaseFilter) -> list[ColumnElement[bool] | TextClause]:
        return BadcaseRepository(self.session).conditions(f)

    def week_of(self, column: Any) -> ColumnElement[str]:
        # Literal SQL, not bound parameters: the same expression must match in SELECT and GROUP BY.
        if self.is_postgresql:
            utc = func.timezone(literal_column("'UTC'"), column)
            return type_coerce(cast(func.date_trunc(literal_column("'week'"), utc), Date), WeekStart())
        return type_coerce(func.date(column, literal_column("'-6 days'"), literal_column("'weekday 1'")), WeekStart())

    def attribute(self, name: str) -> SQLColumnExpression[Any]:
        """The attribute's Core column (groups are Core queries: no ORM compile state or row loading)."""
        if name == "week":
            return self.week_of(_BADCASE.c.first_seen)
        return _SPECIAL[name] if name in _SPECIAL else _BADCASE.c[name]

    def _grouped(self, f: BadcaseFilter, attributes: Sequence[str], *extra: Any) -> tuple[Select[Any], list[Any]]:
        keys = [self.attribute(a) for a in attributes]
        source = _BADCASE.outerjoin(_TAG, _TAG.c.badcase_id == _BADCASE.c.id) if "tag" in attributes else _BADCASE
        return select(*keys, *extra).select_from(source).where(*self.conditions(f)).group_by(*keys), keys

    async def groups(self, f: BadcaseFilter, attributes: Sequence[str], limit: int) -> GroupCounts:
        """The `limit` largest groups, with the sum of all groups' counts and the number of groups."""
        n = func.count()
        stmt, keys = self._grouped(f, attributes, n, func.sum(func.count()).over(), func.count().over())
        stmt = stmt.order_by(n.desc(), *(k.asc().nulls_last() for k in keys)).limit(limit)
        rows = await self.core_rows(stmt)
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
        return [(tuple(r[:width]), int(r[width])) for r in await self.core_rows(stmt)]

    async def count_filtered(self, f: BadcaseFilter) -> int:
        return int(await self.one(select(func.count()).select_from(Badcase).where(*self.conditions(f))) or 0)

    async def weekly(self, f: BadcaseFilter, start: datetime, end: datetime) -> Counter[tuple[str, str | None]]:
        """Counts per (kind, week) for the weeks in [start, end), and ('open', None): the badcases open now.

        'closed' counts the badcases in their current closed status since that week: fixed since `fixed_at`,
        wont_fix since `updated_at` (no column keeps when it was decided; the last update is at or after it).
        Every condition is a range on one indexed timestamp, so only the weeks asked for are read."""
        conditions = self.conditions(f)

        def per_week(kind: str, column: Any, *where: Any, source: Any = Badcase) -> Select[Any, Any, Any]:
            week = self.week_of(column)
            return (select(literal(kind, String), week, func.count()).select_from(source)
                    .where(*conditions, *where, column >= start, column < end).group_by(week))

        # Unfiltered, the reports need no join: at 1M badcases that join is most of the work.
        reports = Occurrence if not conditions else join(Occurrence, Badcase, Badcase.id == Occurrence.badcase_id)
        parts = [
            per_week("reported", Badcase.first_seen),
            per_week("occurrences", Occurrence.reported_at, source=reports),
            per_week("fixed", Badcase.fixed_at),
            per_week("regressed", Badcase.regressed_at),
            per_week("closed", Badcase.fixed_at, Badcase.status == "fixed"),
            per_week("closed", Badcase.updated_at, Badcase.status == "wont_fix"),
            select(literal("open", String), null(), func.count()).where(*conditions, Badcase.status.in_(OPEN)),
        ]
        counts: Counter[tuple[str, str | None]] = Counter()
        for kind, week, n in (await self.session.execute(parts[0].union_all(*parts[1:]))).all():
            counts[(kind, week)] += int(n)
        return counts


def _one_of(column: SQLColumnExpression[Any], values: Sequence[str | None]) -> ColumnElement[bool]:
    present = [v for v in values if v is not None]
    condition = column.in_(present)
    return or_(condition, column.is_(None)) if None in values else condition
