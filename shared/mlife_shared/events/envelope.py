"""The event envelope, with CloudEvents names. `id` is also the `Nats-Msg-Id` and the idempotency key."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

from mlife_shared.ids import random_uuid


class EventData(BaseModel):
    """Base of every payload. Subclasses set `subject`, `producer` and `schema_version` and document
    "Sent when …" in their docstring. Payloads carry ids and object keys, never blobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: ClassVar[str]
    producer: ClassVar[str]
    schema_version: ClassVar[int] = 1


# Covariant: an Envelope[TestingCompleted] is an Envelope[EventData] wherever only the envelope's common
# fields are read (caused_by, the outbox); an envelope is never changed after it is made.
T_co = TypeVar("T_co", bound=EventData, covariant=True)


class Envelope(BaseModel, Generic[T_co]):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID = Field(description="Unique event id; the Nats-Msg-Id and the consumers' idempotency key")
    type: str = Field(description="The subject, e.g. badcase.created")
    version: int = Field(1, description="Version of the payload schema")
    source: str = Field(description="Producing service")
    time: datetime = Field(description="When the change happened (UTC)")
    correlation_id: uuid.UUID | None = Field(None, description="The id shared by every event of one flow")
    causation_id: uuid.UUID | None = Field(None, description="The id of the event that caused this one")
    data: T_co


E = TypeVar("E", bound=EventData)


_ENVELOPES: dict[type[EventData], type[Envelope[Any]]] = {}


def envelope_of(model: type[E]) -> type[Envelope[E]]:
    """`Envelope[model]` for a model known only at run time (type checkers read only literal subscripts).
    Remembered per class: pydantic's own generic-class lookup costs ~15 µs a call (a bulk import makes thousands)."""
    found = _ENVELOPES.get(model)
    if found is None:
        found = _ENVELOPES[model] = cast("type[Envelope[Any]]", Envelope.__class_getitem__(model))
    return cast("type[Envelope[E]]", found)


def new_envelope(data: EventData, *, correlation_id: uuid.UUID | None = None,
                 causation_id: uuid.UUID | None = None) -> Envelope[Any]:
    event_id = random_uuid()
    return envelope_of(type(data))(
        id=event_id,
        type=data.subject,
        version=data.schema_version,
        source=data.producer,
        time=datetime.now(UTC),
        correlation_id=correlation_id or event_id,
        causation_id=causation_id,
        data=data,
    )
