from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from dam.document.schemas import RowFilter
from mlife_shared.bounds import INT32_MAX


class FindingRead(BaseModel):
    cleaner: str = Field(description="The cleaner plugin that found it")
    code: str = Field(description="What it found, as a short machine-readable word")
    severity: str = Field(description="info | warning | error (findings flag; they never refuse an upload)")
    message: str = Field(description="What is wrong and what to do")
    md5: str | None = None
    position: int | None = Field(None, description="The row's position in the document version")
    related: list[str] = Field([], description="Other files the finding is about (near duplicates)")


class QualityRunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(None, ge=1, le=INT32_MAX, description="The document version (default: current)")
    filter: RowFilter = RowFilter()
    cleaners: list[str] | None = Field(None, max_length=100, description="Cleaner plugins to run (default: every "
                                                                         "active one)")
    classes: list[str] | None = Field(None, max_length=5000,
                                      description="The class list labels must come from (default: the labels of the "
                                                  "document's latest labelling task; none: no label check)")


class FindingCount(BaseModel):
    cleaner: str
    code: str
    severity: str
    count: int


class QualityReport(BaseModel):
    document_id: uuid.UUID
    version: int
    checked: bool = Field(description="Whether the cleaners ever ran over this version (false: nothing below yet)")
    cleaners: list[str] = Field(description="The cleaners of the run")
    classes: list[str] | None = Field(description="The class list the labels were checked against")
    row_count: int = Field(description="Rows the run looked at")
    checked_count: int = Field(description="Of them, files whose content was read (images within the run's budget)")
    ran_by: str | None
    ran_at: datetime | None
    counts: list[FindingCount]
    total: int = Field(description="Findings matching the query")
    findings: list[FindingRead]
