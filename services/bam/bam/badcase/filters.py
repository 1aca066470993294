"""The filter of the badcase list, shared by retrieval, statistics and "add to test data"."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Query

from bam.badcase.exceptions import InvalidCursor

SortKey = Literal["priority", "-priority", "last_seen", "-last_seen", "first_seen", "-first_seen",
                  "frequency", "-frequency", "created_at", "-created_at"]


@dataclass
class BadcaseFilter:
    q: str | None = None
    function: str | None = None
    system_version: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    status: str | None = None
    severity: str | None = None
    source: str | None = None
    label: str | None = None
    prediction: str | None = None
    tag: str | None = None
    owner: str | None = None
    media_type: str | None = None
    min_priority: float | None = None
    seen_after: datetime | None = None
    seen_before: datetime | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) in (None, "") for f in fields(self))


def filter_query(
    q: Annotated[str | None, Query(max_length=500, description="Full-text search over description and tags")] = None,
    function: Annotated[str | None, Query(max_length=200)] = None,
    system_version: Annotated[str | None, Query(max_length=100)] = None,
    model_name: Annotated[str | None, Query(max_length=200)] = None,
    model_version: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[Literal["new", "triaged", "in_progress", "fixed", "wont_fix", "regressed"] | None,
                      Query()] = None,
    severity: Annotated[Literal["low", "medium", "high", "critical"] | None, Query()] = None,
    source: Annotated[Literal["manual", "import", "testing", "serving"] | None, Query()] = None,
    label: Annotated[str | None, Query(max_length=200, description="Ground-truth label")] = None,
    prediction: Annotated[str | None, Query(max_length=200, description="Predicted label")] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    owner: Annotated[str | None, Query(max_length=100)] = None,
    media_type: Annotated[str | None, Query(max_length=20)] = None,
    min_priority: Annotated[float | None, Query(ge=0)] = None,
    seen_after: datetime | None = None,
    seen_before: datetime | None = None,
) -> BadcaseFilter:
    return BadcaseFilter(q=q, function=function, system_version=system_version, model_name=model_name,
                         model_version=model_version, status=status, severity=severity, source=source, label=label,
                         prediction=prediction, tag=tag, owner=owner, media_type=media_type,
                         min_priority=min_priority, seen_after=seen_after, seen_before=seen_before)


def encode_cursor(sort: str, value: object, id_: str) -> str:
    raw = json.dumps({"s": sort, "v": value.isoformat() if isinstance(value, datetime) else value, "i": id_})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[object, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if raw["s"] != sort:
            raise InvalidCursor("the cursor was made for another sort order; start again without it")
        value = raw["v"]
        if sort.lstrip("-") in ("last_seen", "first_seen", "created_at"):
            value = datetime.fromisoformat(value)
        return value, str(raw["i"])
    except InvalidCursor:
        raise
    except Exception as exc:  # noqa: BLE001 - any garbage is the same client error
        raise InvalidCursor() from exc
