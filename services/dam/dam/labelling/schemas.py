from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from dam.document.schemas import RowFilter
from mlife_shared.bounds import INT32_MAX


class Prelabel(BaseModel):
    """Where pre-labels come from: a column of the document, a model MLife serves (a deployment of MSM, called
    inside the platform), or an outside serving endpoint (a user URL, called through the outbound guard)."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = Field(None, description="'annotation' or an extra column")
    deployment: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[^/?#\s]+$",
                                   description="An MSM deployment: DAM asks MSM's predict (the operator-configured "
                                               "MLIFE_DAM_MSM_URL) as the caller")
    endpoint: str | None = Field(None, max_length=2048,
                                 description="An outside serving endpoint answering MSM's predict shape. It gets no "
                                             "MLife credential; internal addresses are refused unless an operator "
                                             "allow-lists them (MLIFE_DAM_OUTBOUND_ALLOW_HOSTS)")
    authorization: SecretStr | None = Field(None, max_length=4096,
                                            description="With endpoint: the Authorization header that endpoint "
                                                        "expects (its own secret; used once, never stored)")
    input_column: str | None = Field(None, description="With endpoint or deployment: the extra column holding each "
                                                       "row's model input (JSON numbers)")
    input_name: str = Field("input", max_length=200, description="The model's input name")
    output_name: str | None = Field(None, max_length=200, description="The output to read (default: the first)")

    @model_validator(mode="after")
    def _one(self) -> Prelabel:
        if sum(x is not None for x in (self.column, self.endpoint, self.deployment)) != 1:
            raise ValueError("give exactly one of column, deployment or endpoint")
        if self.endpoint is not None and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError("the endpoint must be an http(s) URL")
        if self.column is None and self.input_column is None:
            raise ValueError("a model needs input_column: the column holding each row's model input")
        if self.authorization is not None and self.endpoint is None:
            raise ValueError("authorization goes with an outside endpoint only")
        return self


class LabellingTaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_id: uuid.UUID
    version: int | None = Field(None, ge=1, le=INT32_MAX)
    filter: RowFilter = RowFilter()
    kind: Literal["classification", "detection"] = "classification"
    labels: list[str] = Field(min_length=1, max_length=500)
    prelabel: Prelabel | None = None
    label_studio: bool = Field(True, description="Without `connector`: push the task to Label Studio when it is "
                                                 "configured")
    connector: str | None = Field(None, max_length=100,
                                  description="The labelling tool to push the task to: an active labelling plugin "
                                              "(GET /plugins lists them; 'labelstudio' is built in). Default: "
                                              "Label Studio when configured and `label_studio`")
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
    connector: str | None = Field(description="The labelling plugin the task is run in (None: annotations by API)")
    external_project: str | None = Field(description="The tool's project id")
    ls_project_id: int | None = Field(description="Label Studio's project id (connector labelstudio)")
    completed_version: int | None
    created_at: datetime
    completed_at: datetime | None


class AnnotationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    md5: str | None = None
    item_id: uuid.UUID | None = None
    annotation: Any

    @model_validator(mode="after")
    def _one(self) -> AnnotationIn:
        if (self.md5 is None) == (self.item_id is None):
            raise ValueError("name the item by exactly one of md5 or item_id")
        return self


class AnnotationsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annotations: list[AnnotationIn] = Field(max_length=100_000)
    complete: bool = Field(False, description="Complete the task now, even if some items are not annotated")
