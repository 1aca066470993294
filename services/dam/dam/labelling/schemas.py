from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dam.document.schemas import RowFilter


class Prelabel(BaseModel):
    """Where pre-labels come from: a column of the document, or a deployed model's serving endpoint."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = Field(None, description="'annotation' or an extra column")
    endpoint: str | None = Field(None, description="A serving endpoint: MSM's .../api/msm/serve/{deployment}/predict")
    input_column: str | None = Field(None, description="With endpoint: the extra column holding each row's model "
                                                       "input (JSON numbers)")
    input_name: str = Field("input", max_length=200, description="The model's input name")
    output_name: str | None = Field(None, max_length=200, description="The output to read (default: the first)")

    @model_validator(mode="after")
    def _one(self) -> "Prelabel":
        if (self.column is None) == (self.endpoint is None):
            raise ValueError("give exactly one of column or endpoint")
        if self.endpoint is not None and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError("the endpoint must be an http(s) URL")
        if self.endpoint is not None and self.input_column is None:
            raise ValueError("a serving endpoint needs input_column: the column holding each row's model input")
        return self


class LabellingTaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_id: uuid.UUID
    version: int | None = Field(None, ge=1)
    filter: RowFilter = RowFilter()
    kind: Literal["classification", "detection"] = "classification"
    labels: list[str] = Field(min_length=1, max_length=500)
    prelabel: Prelabel | None = None
    label_studio: bool = Field(True, description="Push the task to Label Studio when a connector is configured")
    title: str | None = Field(None, max_length=50)
    max_items: int = Field(10_000, ge=1, le=100_000)


class LabellingTaskRead(BaseModel):
    id: uuid.UUID
    document_id: uuid.UUID
    document_version: int
    kind: str
    labels: list[str]
    label_config: str
    prelabel_source: str | None
    status: str
    items_key: str
    item_count: int
    annotated_count: int
    ls_project_id: int | None
    completed_version: int | None
    created_at: datetime
    completed_at: datetime | None


class AnnotationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    md5: str | None = None
    item_id: uuid.UUID | None = None
    annotation: Any

    @model_validator(mode="after")
    def _one(self) -> "AnnotationIn":
        if (self.md5 is None) == (self.item_id is None):
            raise ValueError("name the item by exactly one of md5 or item_id")
        return self


class AnnotationsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annotations: list[AnnotationIn] = Field(max_length=100_000)
    complete: bool = Field(False, description="Complete the task now, even if some items are not annotated")
