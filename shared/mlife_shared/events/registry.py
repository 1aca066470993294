"""Every subject of the bus, its payload model and its stream (one stream per producing service)."""

from __future__ import annotations

from mlife_shared.events.envelope import EventData

EVENTS: dict[str, type[EventData]] = {}


def register(model: type[EventData]) -> type[EventData]:
    existing = EVENTS.get(model.subject)
    if existing is not None and existing is not model:
        raise ValueError(f"subject {model.subject} is already registered by {existing.__name__}")
    EVENTS[model.subject] = model
    return model


def event_model(subject: str) -> type[EventData] | None:
    return EVENTS.get(subject)


def stream_name(producer: str) -> str:
    return f"MLIFE_{producer.upper()}"


def streams() -> dict[str, list[str]]:
    """Stream name → exact subjects, derived from the registry so they can never overlap."""
    out: dict[str, list[str]] = {}
    for subject, model in sorted(EVENTS.items()):
        out.setdefault(stream_name(model.producer), []).append(subject)
    return out


def stream_for_subject(subject: str) -> str:
    model = EVENTS[subject]
    return stream_name(model.producer)


# Imported for its side effect: registering every contract of ARCHITECTURE §2.
from mlife_shared.events import contracts as _contracts  # noqa: E402,F401
