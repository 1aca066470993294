from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from msm.inputs import StrictIn
from msm.notification.service import SUBJECTS


def _check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(SUBJECTS) - {"*"})
    if unknown:
        raise ValueError(f"unknown events {unknown}; choose from {list(SUBJECTS)} or '*'")
    return events


class WebhookCreate(StrictIn):
    url: str = Field(max_length=2000)
    events: list[str] = Field(min_length=1, max_length=20)
    secret: str | None = Field(None, min_length=16, max_length=200, description="Generated when omitted")
    description: str = Field("", max_length=2000)
    _events = field_validator("events")(_check_events)


class WebhookUpdate(StrictIn):
    url: str | None = Field(None, max_length=2000)
    events: list[str] | None = Field(None, min_length=1, max_length=20)
    active: bool | None = None
    description: str | None = Field(None, max_length=2000)
    _events = field_validator("events")(lambda v: _check_events(v) if v is not None else v)


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    url: str
    events: list[str]
    active: bool
    description: str
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="The signing secret; shown only now")


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    event_id: uuid.UUID
    subject: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    log: list[dict[str, object]]
    created_at: datetime
    delivered_at: datetime | None
