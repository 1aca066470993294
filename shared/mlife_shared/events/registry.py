"""Every subject of the bus, its payload model and its stream (one stream per producing service).

This module imports no contract: contracts register themselves here (`@register`), and the package
(`mlife_shared.events`) imports `contracts` right after this module, so the registry is complete whenever
anything under `mlife_shared.events` has been imported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from mlife_shared.events.envelope import EventData

EVENTS: dict[str, type[EventData]] = {}
# Contract versions: a subject's latest model is in EVENTS; earlier versions kept through their deprecation
# period are here, each with the function that turns the next version's payload into its own.
DEPRECATION_DAYS = 180
Payload = dict[str, Any]


@dataclass(frozen=True)
class Previous:
    """A superseded version of a contract, still served (downgraded) to subscribers who pinned it."""

    model: type[EventData]
    deprecated_on: date
    sunset: date
    downgrade: Callable[[Payload], Payload]  # the payload of version `model.schema_version + 1` → this version's


PREVIOUS: dict[tuple[str, int], Previous] = {}


class UnknownVersion(ValueError):
    """A version of a subject that was never registered, or whose deprecation period is over."""

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


def register_previous(model: type[EventData], *, deprecated_on: date, sunset: date,
                      downgrade: Callable[[Payload], Payload]) -> None:
    """Keep `model`, an earlier version of a registered contract, for its deprecation period (at least
    DEPRECATION_DAYS): the bus carries the latest version only, and subscribers who pinned this one (webhooks,
    `mlife.events.subscribe(versions=...)`) get each event downgraded to it until `sunset`.

        register_previous(BadcaseCreatedV1, deprecated_on=date(2027, 1, 4), sunset=date(2027, 7, 3),
                          downgrade=lambda v2: {**without(v2, "labels"), "label": v2["labels"][0]})
    """
    latest = EVENTS.get(model.subject)
    if latest is None or model.schema_version >= latest.schema_version:
        raise ValueError(f"{model.__name__}: register the latest version of {model.subject!r} first; an earlier "
                         f"version must have a lower schema_version")
    if (sunset - deprecated_on).days < DEPRECATION_DAYS:
        raise ValueError(f"{model.__name__}: a deprecated version is kept at least {DEPRECATION_DAYS} days "
                         f"(sunset {sunset} is {(sunset - deprecated_on).days} days after {deprecated_on})")
    if model.schema_version + 1 != latest.schema_version and (model.subject, model.schema_version + 1) not in PREVIOUS:
        raise ValueError(f"{model.__name__}: version {model.schema_version + 1} of {model.subject!r} must be "
                         f"registered before version {model.schema_version} (each downgrades from the next)")
    PREVIOUS[(model.subject, model.schema_version)] = Previous(model, deprecated_on, sunset, downgrade)


def versions(subject: str) -> list[int]:
    """The versions of `subject` served today, latest first."""
    latest = EVENTS[subject].schema_version
    return [latest, *sorted((v for s, v in PREVIOUS if s == subject), reverse=True)]


def model_of_version(subject: str, version: int) -> type[EventData] | None:
    """The contract of one version of a subject (None: no such version is registered)."""
    latest = EVENTS.get(subject)
    if latest is not None and latest.schema_version == version:
        return latest
    previous = PREVIOUS.get((subject, version))
    return previous.model if previous else None


def downgrade(subject: str, payload: Payload, from_version: int, to_version: int, *,
              today: date | None = None) -> Payload:
    """`payload` (of version `from_version`) as version `to_version` of its contract, validated by it; a
    version past its sunset, or never registered, raises UnknownVersion."""
    if to_version > from_version:
        raise UnknownVersion(f"{subject} version {to_version} is newer than the event's ({from_version})")
    out = payload
    for version in range(from_version - 1, to_version - 1, -1):
        previous = PREVIOUS.get((subject, version))
        if previous is None:
            raise UnknownVersion(f"{subject} has no version {version} (served: {versions(subject)})")
        if previous.sunset <= (today or date.today()):
            raise UnknownVersion(f"version {version} of {subject} was retired on {previous.sunset}; "
                                 f"move to version {EVENTS[subject].schema_version}")
        out = previous.model.model_validate(previous.downgrade(out)).model_dump(mode="json")
    return out
