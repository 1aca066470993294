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
MediaType = Literal["image", "audio", "video", "text", "json", "tensor", "other"]
MAX_JSON_BYTES = 64 * 1024
MAX_SECONDS = 1e7  # about 116 days: anything longer is a unit mistake
MAX_FRAMES = (1 << 31) - 1
DURATION_SLACK = 1e-3  # seconds: a container's rounding of its own duration
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


SHAPES = ("Shapes the UI draws: a class label (`\"cat\"` or `{\"label\": \"cat\", \"score\": 0.9}`); "
          "detection boxes `{\"boxes\": [{\"label\": \"cat\", \"box\": [x1, y1, x2, y2], \"score\": 0.9}]}` "
          "(two opposite pixel corners in the original image, not x, y, width, height; label and score "
          "optional) or MTT's parallel lists `{\"boxes\": [[x1, y1, x2, y2]], \"labels\": [\"cat\"], "
          "\"scores\": [0.9]}`; text spans "
          "`{\"spans\": [{\"start\": 3, \"end\": 9, \"label\": \"PER\"}]}` (character offsets, end "
          "exclusive, label optional). A `boxes` or `spans` value of another form is refused; anything else is "
          "shown as JSON")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_box(i: int, box: Any) -> None:
    corners = box.get("box") if isinstance(box, dict) else box
    if not (isinstance(corners, list) and len(corners) == 4 and all(_number(c) for c in corners)):
        raise ValueError(f"boxes[{i}]: a box is [x1, y1, x2, y2] or {{\"box\": [x1, y1, x2, y2], \"label\": …, "
                         "\"score\": …}")
    if isinstance(box, dict) and box.get("score") is not None and not _number(box["score"]):
        raise ValueError(f"boxes[{i}].score must be a number")


def _check_span(i: int, span: Any) -> None:
    ok = isinstance(span, dict) and all(isinstance(span.get(k), int) and not isinstance(span.get(k), bool)
                                        for k in ("start", "end"))
    if not ok or not 0 <= span["start"] <= span["end"]:
        raise ValueError(f"spans[{i}]: a span is {{\"start\": 3, \"end\": 9, \"label\": \"PER\"}} with "
                         "0 ≤ start ≤ end (character offsets)")


def _check_overlays(value: Any) -> Any:
    """`boxes` and `spans` are drawn by the UI: their form is checked so a wrong one is a 422, not a broken view."""
    if not isinstance(value, dict):
        return value
    if "boxes" in value:
        if not isinstance(value["boxes"], list):
            raise ValueError("boxes must be a list of boxes")
        for i, box in enumerate(value["boxes"]):
            _check_box(i, box)
    if "spans" in value:
        if not isinstance(value["spans"], list):
            raise ValueError("spans must be a list of spans")
        for i, span in enumerate(value["spans"]):
            _check_span(i, span)
    return value


OverlayJson = Annotated[Any, AfterValidator(_bounded_json), AfterValidator(_check_overlays)]


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
    prediction: OverlayJson = Field(None, description="What the model produced: a label or a structured value. "
                                                      + SHAPES)
    ground_truth: OverlayJson = Field(None, description="What it should have produced, in the same shape. " + SHAPES)
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
    segment_start: Annotated[float, Field(ge=0, le=MAX_SECONDS)] | None = Field(
        None, description="Audio/video: where in the recording the badcase starts, in seconds (with segment_end)")
    segment_end: Annotated[float, Field(ge=0, le=MAX_SECONDS)] | None = Field(
        None, description="Audio/video: where it ends, in seconds; reports of the same data whose segments overlap "
                          "are one badcase")
    frame_start: Annotated[int, Field(ge=0, le=MAX_FRAMES)] | None = Field(
        None, description="Video only: the first frame of the badcase, 0-based (with frame_end)")
    frame_end: Annotated[int, Field(ge=0, le=MAX_FRAMES)] | None = Field(
        None, description="Video only: its last frame, inclusive")
    duration: Annotated[float, Field(gt=0, le=MAX_SECONDS)] | None = Field(
        None, description="The recording's duration in seconds, when known (a file uploaded with the report is "
                          "probed instead); a segment must end within it")

    @model_validator(mode="after")
    def _clean_strings(self) -> BadcaseCreate:
        for name in ("function", "system_version", "model_name", "model_version", "description", "client_id",
                     "device_id"):
            check_text(getattr(self, name))
        return self

    @model_validator(mode="after")
    def _check_segment(self) -> BadcaseCreate:
        check_segment(self.segment_start, self.segment_end, self.frame_start, self.frame_end, self.duration)
        if self.has_segment:
            kinds = {r.media_type for r in self.data if r.media_type}
            if kinds - {"audio", "video"}:
                raise ValueError(f"a segment or frame range is for audio or video data, not {sorted(kinds)}")
            if self.frame_start is not None and kinds and kinds != {"video"}:
                raise ValueError("a frame range is for video data only; give audio a segment in seconds")
        return self

    @property
    def has_segment(self) -> bool:
        return self.segment_start is not None or self.frame_start is not None

    @field_validator("tags")
    @classmethod
    def _dedupe_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(t.strip() for t in tags if t.strip()))


def check_segment(start: float | None, end: float | None, frame_start: int | None, frame_end: int | None,
                  duration: float | None) -> None:
    """The segment's own rules, whatever the data: both ends or neither, start ≤ end, within the duration."""
    if (start is None) != (end is None):
        raise ValueError("give both segment_start and segment_end (seconds), or neither")
    if (frame_start is None) != (frame_end is None):
        raise ValueError("give both frame_start and frame_end (inclusive), or neither")
    if start is not None and end is not None:
        if start > end:
            raise ValueError(f"segment_start ({start}) is after segment_end ({end})")
        if duration is not None and end > duration + DURATION_SLACK:
            raise ValueError(f"segment_end ({end} s) is past the end of the recording ({duration} s)")
    if frame_start is not None and frame_end is not None and frame_start > frame_end:
        raise ValueError(f"frame_start ({frame_start}) is after frame_end ({frame_end})")


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
    segment_start: float | None = Field(None, description="Audio/video: where the badcase starts, in seconds (the "
                                                          "union of the merged reports' segments)")
    segment_end: float | None = Field(None, description="Audio/video: where it ends, in seconds")
    frame_start: int | None = Field(None, description="Video: its first frame (0-based)")
    frame_end: int | None = Field(None, description="Video: its last frame (inclusive)")
    duration: float | None = Field(None, description="The recording's duration in seconds, when known")
    preview: PreviewRef | None = Field(None, description="Where the preview of its data lives; null when there is "
                                                         "nothing to preview")


class PreviewRef(BaseModel):
    """Where a badcase's preview is: `bam` → `GET /api/bam/badcases/{id}/preview` (BAM holds the data: an uploaded
    file, a served input, a tabular row); `dam` → `GET /api/dam/files/{md5}/preview` (a DAM file BAM does not hold)."""

    source: Literal["bam", "dam"]
    md5: str | None = Field(None, description="The data's MD5 (the DAM file's, for source=dam)")
    media_type: str | None = Field(None, description="image, audio, video, text, json, tensor or table")


BadcaseRead.model_rebuild()


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
    segment_start: float | None = Field(None, description="The segment this report was sent with (seconds)")
    segment_end: float | None = None
    frame_start: int | None = Field(None, description="The frame range this report was sent with (inclusive)")
    frame_end: int | None = None


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
