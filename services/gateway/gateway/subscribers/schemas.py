import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class ReplayRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    subscriber_name: str
    requested_by: str
    requested_at: datetime
    since: datetime | None
    stream: str | None
    sequence: int | None
