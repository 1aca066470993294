from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from bam.badcase.filters import FilterBody
from mlife_shared.names import FunctionName
from mlife_shared.objectstore import InvalidKey, validate_key

Source = Literal["manual", "import", "testing", "serving"]
Status = Literal["new", "triaged", "in_progress", "fixed", "wont_fix", "regressed"]
Severity = Literal["low", "medium", "high", "critical"]
MediaType = Literal["image", "audio", "video", "text", "json", "other"]
MAX_JSON_BYTES = 64 * 1024
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def check_text(value: Any) -> None:
    """No NUL and no lone surrogate anywhere (in strings, keys, lists and objects): PostgreSQL cannot store them."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters (\\u0000)")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must not contain unpaired surrogates (\\ud800-\\udfff)") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k)
            check_text(v)
    elif isinstance(value, list):
        for v in value:
            check_text(v)


def _bounded_json(value: Any) -> Any:
    check_text(value)
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False))
    except ValueError as exc:
        raise ValueError("must be JSON without NaN or Infinity") from exc
    if size > MAX_JSON_BYTES:
        raise ValueError(f"must serialise to at most {MAX_JSON_BYTES} bytes of JSON")
    return value


def _clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


BoundedJson = Annotated[Any, AfterValidator(_bounded_json)]
FeatureValue = str | int | float | bool | None
Features = Annotated[dict[Annotated[str, Field(min_length=1, max_length=200)], FeatureValue],
                     Field(min_length=1, max_length=10_000), AfterValidator(_bounded_json)]
ShortText = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_clean_text)]
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f<>]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataRef(Strict):
    """Where the badcase's data is: a DAM file MD5, an object key, or a URL (never fetched by BAM)."""

    kind: Literal["md5", "key", "url"]
    value: str = Field(min_length=1, max_length=2048)
    media_type: MediaType | None = None

    @model_validator(mode="after")
    def _check(self) -> DataRef:
        if self.kind == "md5":
            if not _MD5.match(self.value):
                raise ValueError("an md5 reference must be 32 hexadecimal characters")
            self.value = self.value.lower()
        elif self.kind == "key":
            try:
                validate_key(self.value)
            except InvalidKey as exc:
                raise ValueError(f"an object key must be a safe relative path: {exc.message}") from exc
        elif not re.match(r"^https?://[^\s/]+", self.value):
            raise ValueError("a url reference must be an http(s) URL")
        return self


class BadcaseCreate(Strict):
    """A report of a badcase. A report equal to an existing badcase is merged into it."""

    function: FunctionName = Field(description="ML system function, e.g. 'expression recognition'")
    system_version: Annotated[str, Field(max_length=100)] | None = None
    model_name: Annotated[str, Field(max_length=200)] | None = None
    model_version: Annotated[str, Field(max_length=100)] | None = None
    data: list[DataRef] = Field(default_factory=list, max_length=20)
    prediction: BoundedJson = Field(None, description="What the model produced: a label or a structured value")
    ground_truth: BoundedJson = Field(None, description="What it should have produced")
    description: Annotated[str, Field(max_length=10_000), AfterValidator(_clean_text)] = ""
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    severity: Severity = "medium"
    source: Literal["manual", "import"] = "manual"
    client_id: Annotated[str, Field(max_length=200)] | None = None
    device_id: Annotated[str, Field(max_length=200)] | None = None
    features: Features | None = Field(None, description="A tabular badcase's row: feature column → value (its data "
                                                        "when it has no file); part of what makes it the same badcase")
    task_id: uuid.UUID | None = Field(None, description="The testing task whose run found it")
    deployment_id: uuid.UUID | None = Field(None, description="The deployment whose prediction was wrong")
    model_version_id: uuid.UUID | None = Field(None, description="MSM's id of the model version it was found on")

    @model_validator(mode="after")
    def _clean_strings(self) -> BadcaseCreate:
        for name in ("function", "system_version", "model_name", "model_version", "description", "client_id",
                     "device_id"):
            check_text(getattr(self, name))
        return self

    @field_validator("tags")
    @classmethod
    def _dedupe_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(t.strip() for t in tags if t.strip()))


class BadcaseUpdate(Strict):
    """Triage: only the fields sent are changed; `priority: null` clears a manual priority."""

    status: Status | None = None
    priority: Annotated[float, Field(ge=0, le=1_000_000)] | None = None
    severity: Severity | None = None
    owner: Annotated[str, Field(max_length=100)] | None = None
    tags: list[Tag] | None = Field(None, max_length=50)
    description: Annotated[str, Field(max_length=10_000), AfterValidator(_clean_text)] | None = None


class BadcaseRead(BaseModel):
    id: uuid.UUID
    function: str
    system_version: str | None
    model_name: str | None
    model_version: str | None
    source: Source
    reporter: str | None
    client_id: str | None
    device_id: str | None
    description: str
    tags: list[str]
    data: list[dict[str, Any]]
    data_md5: str | None
    media_type: str | None
    prediction: Any
    ground_truth: Any
    status: Status
    severity: Severity
    priority: float = Field(description="The effective priority: the manual one when set, else the score")
    priority_score: float
    priority_is_manual: bool
    owner: str | None
    frequency: int
    first_seen: datetime
    last_seen: datetime
    created_at: datetime
    updated_at: datetime
    fixed_at: datetime | None
    regressed_at: datetime | None
    added_to_test_data_at: datetime | None
    features: dict[str, Any] | None = Field(None, description="A tabular badcase's feature row")
    task_id: uuid.UUID | None = Field(None, description="The testing task whose run found it (the first report's)")
    deployment_id: uuid.UUID | None = Field(None, description="The deployment that served it (the first report's)")
    model_version_id: uuid.UUID | None = Field(None, description="MSM's id of the model version it was found on")
    merged_into: uuid.UUID | None = Field(None, description="Set when this report was merged into an existing badcase")


class BadcasePage(BaseModel):
    items: list[BadcaseRead]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null at the end")


class OccurrenceRead(BaseModel):
    id: uuid.UUID
    source: Source
    reporter: str | None
    client_id: str | None
    device_id: str | None
    deployment_id: str | None
    task_id: uuid.UUID | None = None
    model_version_id: uuid.UUID | None = None
    model_name: str | None
    model_version: str | None
    description: str
    prediction: Any
    reported_at: datetime


class TriageChangeRead(BaseModel):
    actor: str
    field: str
    old: Any
    new: Any
    changed_at: datetime


class AddToTestData(Strict):
    """Either `ids` or `filter` (not both)."""

    ids: list[uuid.UUID] | None = Field(None, min_length=1, max_length=10_000)
    filter: FilterBody | None = None

    @model_validator(mode="after")
    def _one(self) -> AddToTestData:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give either ids or filter")
        return self


class TestDataResult(BaseModel):
    request_ids: list[uuid.UUID]
    added: int
    skipped: list[dict[str, str]]
