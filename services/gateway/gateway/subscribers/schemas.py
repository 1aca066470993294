import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

SubscriberName = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$",
                                      description="lower-case letters, digits, _ and -; names the NATS user "
                                                  "(`sub-<name>`) and the durables (`sub-<name>-<stream>`)")]


class SubscriberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SubscriberName
    description: str = Field("", max_length=500)
    subjects: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=50, description="NATS patterns over the public subjects (`model.>`, "
                                                 "`badcase.created`); each must match at least one")
    filter: dict[Annotated[str, Field(min_length=1, max_length=100)], Annotated[str, Field(max_length=200)]] = Field(
        default_factory=dict, max_length=10,
        description="payload fields and the value they must have (e.g. {\"function\": \"digits\"}). NATS cannot "
                    "filter on a payload: `mlife.events.subscribe` applies it (acks and skips the rest)")
    deliver: Literal["all", "new"] = Field("all", description="all: from the oldest event the streams keep; "
                                                              "new: only events published from now on")


class DurableRead(BaseModel):
    stream: str
    durable: str
    filter_subjects: list[str]
    pending: int | None = Field(None, description="events not yet delivered (null: NATS unreachable or "
                                                  "the durable is missing)")
    ack_pending: int | None = Field(None, description="delivered, not yet acknowledged")
    ack_floor: int | None = Field(None, description="stream sequence up to which every event is acknowledged")
    delivered: int | None = Field(None, description="stream sequence of the last delivery")


class SubscriberRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    subjects: list[str]
    filter: dict[str, str]
    nats_user: str = Field(description="the NATS user to log in as")
    durable: str = Field(description="`durable=` for mlife.events.subscribe: the durables are `<durable>-<stream>`")
    created_by: str
    created_at: datetime
    rotated_at: datetime | None
    durables: list[DurableRead]


class Credentials(BaseModel):
    nats_url: str
    nats_user: str
    password: str = Field(description="shown in this answer only; MLife keeps its hash")


class SubscriberCreated(SubscriberRead):
    credentials: Credentials


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime | None = Field(None, description="re-deliver from this time (ISO 8601 with a zone), on every "
                                                     "durable; older than the streams keep: from their oldest")
    stream: str | None = Field(None, description="with `sequence`: re-deliver this stream's durable from there")
    sequence: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_point(self) -> Self:
        if (self.since is None) == (self.stream is None and self.sequence is None):
            raise ValueError("give either `since` or both `stream` and `sequence`")
        if self.since is None and (self.stream is None or self.sequence is None):
            raise ValueError("`stream` and `sequence` go together")
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError("`since` needs a time zone (e.g. 2026-12-06T05:00:00Z)")
        return self


class ReplayRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    subscriber_name: str
    requested_by: str
    requested_at: datetime
    since: datetime | None
    stream: str | None
    sequence: int | None
