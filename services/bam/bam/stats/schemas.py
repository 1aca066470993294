from __future__ import annotations

from datetime import date
from typing import Literal, get_args

from pydantic import BaseModel, Field

Attribute = Literal["function", "system_version", "model_name", "model_version", "status", "severity", "source",
                    "owner", "media_type", "label", "prediction", "tag", "week"]
ATTRIBUTES: tuple[Attribute, ...] = get_args(Attribute)


class StatsGroup(BaseModel):
    key: dict[str, str | None] = Field(description="The group's value of each `group_by` attribute (null when unset)")
    count: int
    share: float = Field(description="`count / total`")


class ConfusionMatrix(BaseModel):
    """The pair of attributes as a table: `counts[i][j]` badcases have row value i and column value j."""

    rows: list[str | None] = Field(description="Values of the first attribute, largest row first")
    columns: list[str | None] = Field(description="Values of the second attribute, largest column first")
    counts: list[list[int]]


class BadcaseStats(BaseModel):
    """Counts of the filtered badcases per group, largest first.

    Grouped by `tag`, a badcase counts once per tag (untagged: once under null), so the shares can add up to
    more than 1; grouped by anything else they add up to 1 with `other`."""

    total: int = Field(description="Badcases that match the filter")
    group_by: list[Attribute]
    groups: list[StatsGroup]
    other: int = Field(description="Count in the groups beyond `limit`")
    other_groups: int = Field(description="How many groups beyond `limit` there are")
    matrix: ConfusionMatrix | None = Field(
        None, description="With two attributes: the rows and columns of the returned groups, every cell counted")


class WeeklyPoint(BaseModel):
    week: date = Field(description="Monday (UTC) that starts the ISO week")
    reported: int = Field(description="Badcases first seen this week")
    occurrences: int = Field(description="Reports received this week (new badcases and merged repeats)")
    fixed: int = Field(description="Badcases whose latest fix was this week")
    regressed: int = Field(description="Badcases whose latest regression was this week")
    open: int = Field(description=(
        "Badcases open at the end of the week: first seen by then and not yet in their current closed status "
        "(fixed since `fixed_at`, wont_fix since its last update). An approximation from the current state: a "
        "badcase closed once and reopened since counts as open while it was closed"))


class WeeklyStats(BaseModel):
    """Per ISO week (Monday start, UTC), oldest first, the current week last; weeks with nothing are zeros."""

    weeks: int
    series: list[WeeklyPoint]
