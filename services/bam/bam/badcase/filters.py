"""The filter of the badcase list, shared by retrieval, statistics and "add to test data"."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bam.badcase.exceptions import InvalidCursor

SortKey = Literal["priority", "-priority", "last_seen", "-last_seen", "first_seen", "-first_seen",
                  "frequency", "-frequency", "created_at", "-created_at"]


class BadcaseFilter(BaseModel):
    """Every filter of `GET /badcases` (query parameters), `GET /stats` and "add to test data" (a JSON object)."""

    q: str | None = Field(None, max_length=500, description="Full-text search over description and tags")
    function: str | None = Field(None, max_length=200, description="'unassigned': reported without a function")
    system_version: str | None = Field(None, max_length=100)
    model_name: str | None = Field(None, max_length=200)
    model_version: str | None = Field(None, max_length=100)
    status: Literal["new", "triaged", "in_progress", "fixed", "wont_fix", "regressed"] | None = None
    severity: Literal["low", "medium", "high", "critical"] | None = None
    source: Literal["manual", "import", "testing", "serving"] | None = None
    label: str | None = Field(None, max_length=200, description="Ground-truth label")
    prediction: str | None = Field(None, max_length=200, description="Predicted label")
    tag: str | None = Field(None, max_length=64)
    owner: str | None = Field(None, max_length=100)
    media_type: str | None = Field(None, max_length=20)
    task_id: uuid.UUID | None = Field(None, description="Found by this testing task")
    deployment_id: uuid.UUID | None = Field(None, description="Flagged on this deployment")
    model_version_id: uuid.UUID | None = Field(None, description="Found on this model version (MSM's id)")
    has_segment: bool | None = Field(None, description="true: only audio/video badcases with a segment or frame "
                                                        "range; false: only those without")
    min_priority: float | None = Field(None, ge=0)
    seen_after: datetime | None = None
    seen_before: datetime | None = None

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_zero(cls, value: object) -> object:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value

    def is_empty(self) -> bool:
        return all(v in (None, "") for v in self.model_dump().values())


class FilterBody(BadcaseFilter):
    """The same filters as a JSON object; an unknown field is an error."""

    model_config = ConfigDict(extra="forbid")


def _documented_parameters() -> list[dict[str, Any]]:
    """The OpenAPI parameters FastAPI writes for the filter spread over query parameters."""
    app = FastAPI()

    @app.get("/")
    def documented(f: Annotated[BadcaseFilter, Query()]) -> None:
        """Only documents the parameters."""

    parameters: list[dict[str, Any]] = app.openapi()["paths"]["/"]["get"]["parameters"]
    return parameters


# The routes taking the filter as query parameters pass this as `openapi_extra`: the parameters are documented
# as FastAPI documents `Annotated[BadcaseFilter, Query()]`.
FILTER_PARAMETERS: dict[str, Any] = {"parameters": _documented_parameters()}


async def _filter_query(request: Request) -> BadcaseFilter:
    """The filter from the query string in one validation, with FastAPI's 422 for a bad value. FastAPI's own
    spreading of a query model looks up and checks each of its 20 fields on every request: 8 % of a list page's
    CPU. Parameters the filter does not have (`sort`, `cursor`, `limit`, ...) are left to their route; a repeated
    parameter counts with its last value, as in FastAPI."""
    try:
        return BadcaseFilter.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise RequestValidationError([{**error, "loc": ("query", *error["loc"])}
                                      for error in exc.errors(include_url=False)]) from None


# As query parameters (documented by FILTER_PARAMETERS; other parameters such as `sort` stay beside it).
FilterQuery = Annotated[BadcaseFilter, Depends(_filter_query)]


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
