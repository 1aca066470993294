from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from mlife_shared.names import FunctionName

Patterns = list[str]
VERSIONS = ("Pin subjects to an earlier version of their contract, still served through its deprecation period "
            "(docs/events.md): e.g. {\"badcase.created\": 1}; each event is sent downgraded to it until the "
            "version's sunset, then in the latest version")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookFilter(_In):
    function: list[FunctionName] = Field(default_factory=list, max_length=50,
                                         description="Only events whose `data.function` is one of these (empty: all)")


class WebhookCreate(_In):
    url: str = Field(max_length=2000, description="Where deliveries are POSTed (http or https, a public address "
                                                  "unless the operator allow-listed it)")
    description: str = Field("", max_length=2000)
    subjects: Patterns = Field(min_length=1, max_length=50, description="NATS patterns over the public subjects, "
                               "e.g. [\"badcase.*\", \"model.>\"]; each must match at least one")
    filter: WebhookFilter = Field(default_factory=WebhookFilter)
    versions: dict[str, int] = Field(default_factory=dict, max_length=100, description=VERSIONS)


class WebhookUpdate(_In):
    url: str | None = Field(None, max_length=2000)
    description: str | None = Field(None, max_length=2000)
    subjects: Patterns | None = Field(None, min_length=1, max_length=50)
    filter: WebhookFilter | None = None
    versions: dict[str, int] | None = Field(None, max_length=100, description=VERSIONS)
    active: bool | None = Field(None, description="false pauses deliveries (kept pending); true resumes them")


class WebhookRead(BaseModel):
    id: uuid.UUID
    url: str
    description: str
    subjects: list[str]
    filter: WebhookFilter
    versions: dict[str, int] = Field(description="The subjects pinned to an earlier contract version")
    active: bool
    disabled_reason: str | None
    previous_secret_until: datetime | None = Field(description="Until when the secret before the last rotation "
                                                   "still signs deliveries (null: no rotation under way)")
    created_by: str
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="The signing secret (`whsec_…`); shown only now")


class SecretRotated(BaseModel):
    secret: str = Field(description="The new signing secret; shown only now")
    previous_secret_until: datetime = Field(description="The old secret signs deliveries too until then")


class SubjectRead(BaseModel):
    subject: str
    stream: str
    description: str
    has_function: bool = Field(description="Its payload has `function`, so a function filter can select it")


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    number: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    event_id: uuid.UUID = Field(description="The `webhook-id` header: the same over retries and replays")
    subject: str
    test: bool
    replay_id: uuid.UUID | None
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    log: list[AttemptRead] = Field(default_factory=list, description="Every attempt, first first")


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    total: int
    next_offset: int | None


class TestDelivery(_In):
    subject: str = Field(max_length=200, description="A public subject; its example payload is sent, marked test")


class ReplayRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    webhook_id: uuid.UUID
    requested_by: str
    requested_at: datetime
    since: datetime | None
    stream: str | None
    sequence: int | None
    events_read: int
    deliveries: int
