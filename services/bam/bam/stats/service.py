"""Statistics of the filtered badcases: groups and confusion tables, and the weekly burn-down."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bam.badcase.filters import BadcaseFilter
from bam.stats.exceptions import InvalidGroupBy
from bam.stats.repository import GroupCounts, Key, StatsRepository
from bam.stats.schemas import ATTRIBUTES, Attribute, BadcaseStats, ConfusionMatrix, StatsGroup, WeeklyPoint, WeeklyStats
from mlife_shared.db import utcnow


def parse_group_by(raw: str) -> list[Attribute]:
    names = [n.strip() for n in raw.split(",")]
    known: dict[str, Attribute] = {a: a for a in ATTRIBUTES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidGroupBy(f"cannot group by {', '.join(repr(n) for n in unknown)}; "
                             f"the attributes are: {', '.join(ATTRIBUTES)}")
    if len(names) > 2 or len(set(names)) != len(names):
        raise InvalidGroupBy("group by one attribute, or two different ones separated by a comma")
    return [known[n] for n in names]


def week_start(moment: datetime) -> datetime:
    """The Monday 00:00 UTC that starts `moment`'s ISO week."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


class StatsService:
    def __init__(self, session: AsyncSession) -> None:
        self.repo = StatsRepository(session)

    async def group(self, f: BadcaseFilter, group_by: str, limit: int) -> BadcaseStats:
        attributes = parse_group_by(group_by)
        found = await self.repo.groups(f, attributes, limit)
        # Without the tag join every badcase is in exactly one group, so the groups add up to the total.
        total = await self.repo.count_filtered(f) if "tag" in attributes else found.counted
        shown = sum(n for _, n in found.rows)
        return BadcaseStats(
            total=total, group_by=attributes,
            groups=[StatsGroup(key=dict(zip(attributes, key, strict=True)), count=n, share=n / total if total else 0.0)
                    for key, n in found.rows],
            other=found.counted - shown, other_groups=found.groups - len(found.rows),
            matrix=await self._matrix(f, attributes, found) if len(attributes) == 2 else None)

    async def _matrix(self, f: BadcaseFilter, attributes: Sequence[str], found: GroupCounts) -> ConfusionMatrix:
        rows, columns = _by_size(found.rows, 0), _by_size(found.rows, 1)
        cells = found.rows
        if found.groups > len(found.rows):
            # Some groups were cut by `limit`: count every cell of the rows and columns shown.
            cells = await self.repo.cells(f, attributes, [rows, columns])
        counts = dict(cells)
        return ConfusionMatrix(rows=rows, columns=columns,
                               counts=[[counts.get((r, c), 0) for c in columns] for r in rows])

    async def weekly(self, f: BadcaseFilter, weeks: int, now: datetime | None = None) -> WeeklyStats:
        current = week_start(now or utcnow())
        starts = [current - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]
        counts = await self.repo.weekly(f, starts[0], current + timedelta(weeks=1))
        # Walk back from the badcases open now: before week w ended, those first seen in w were not there
        # yet and those closed in w were still open.
        open_ = counts[("open", None)]
        series = []
        for start in reversed(starts):
            week = start.date().isoformat()
            series.append(WeeklyPoint(
                week=start.date(), reported=counts[("reported", week)], occurrences=counts[("occurrences", week)],
                fixed=counts[("fixed", week)], regressed=counts[("regressed", week)], open=open_))
            open_ += counts[("closed", week)] - counts[("reported", week)]
        return WeeklyStats(weeks=weeks, series=series[::-1])


def _by_size(cells: Sequence[tuple[Key, int]], axis: int) -> list[str | None]:
    """The values on one axis, largest total first (null last among equals)."""
    totals: dict[str | None, int] = defaultdict(int)
    for key, n in cells:
        totals[key[axis]] += n
    return sorted(totals, key=lambda v: (-totals[v], v is None, v or ""))
