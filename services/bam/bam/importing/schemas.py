from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ImportFormat = Literal["csv", "jsonl"]
MAX_ERRORS_SHOWN = 1000


class RowError(BaseModel):
    row: int = Field(description="1-based number of the row in the file; a CSV header and blank lines are not counted")
    line: int = Field(description="1-based line of the file where the row starts")
    error: str = Field(description="What is wrong with the row, and where")


class ImportResult(BaseModel):
    """What a bulk import did: `rows = created + merged + failed`. Every valid row was recorded; the failed
    ones were skipped and are listed (the first 1,000) with their numbers."""

    rows: int = Field(description="Rows read from the file")
    created: int = Field(description="Rows that became a new badcase")
    merged: int = Field(description="Rows merged into a badcase: an existing one or one created earlier in this file")
    failed: int = Field(description="Rows skipped because they are invalid")
    errors: list[RowError] = Field(description=f"The first {MAX_ERRORS_SHOWN} failed rows, in file order")
    errors_not_shown: int = Field(0, description="Failed rows beyond the ones listed in `errors`")
