"""Event contracts: the envelope, the registry of every subject, and the payload models.

The registry imports no contract; each contract registers itself there (`@register`). This package imports
`contracts`, so the registry is complete as soon as anything under `mlife_shared.events` is imported (importing
`mlife_shared.events.registry` runs this file first)."""

from mlife_shared.events import contracts  # registers every contract of ARCHITECTURE §2
from mlife_shared.events.envelope import Envelope, EventData, new_envelope
from mlife_shared.events.registry import (
    EVENTS,
    PREVIOUS,
    UnknownVersion,
    downgrade,
    event_model,
    model_of_version,
    register,
    register_previous,
    stream_for_subject,
    streams,
    versions,
)

__all__ = ["EVENTS", "PREVIOUS", "Envelope", "EventData", "UnknownVersion", "contracts", "downgrade", "event_model",
           "model_of_version", "new_envelope", "register", "register_previous", "stream_for_subject", "streams",
           "versions"]
