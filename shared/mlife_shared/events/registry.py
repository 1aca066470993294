"""Every subject of the bus, its payload model and its stream (one stream per producing service).

This module imports no contract: contracts register themselves here (`@register`), and the package
(`mlife_shared.events`) imports `contracts` right after this module, so the registry is complete whenever
anything under `mlife_shared.events` has been imported."""

from __future__ import annotations

from typing import TypeVar

from mlife_shared.events.envelope import EventData

EVENTS: dict[str, type[EventData]] = {}

ContractT = TypeVar("ContractT", bound=type[EventData])


def register(model: ContractT) -> ContractT:
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


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, `>` one or more at the end."""
    p, t = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(t) > i
        if i >= len(t) or token not in ("*", t[i]):
            return False
    return len(p) == len(t)


def stream_for_subject(subject: str) -> str:
    model = EVENTS[subject]
    return stream_name(model.producer)
