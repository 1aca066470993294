"""Contract versions: what counts as breaking (mlife_shared.events.compat), how an earlier version is kept
through its deprecation period (registry.register_previous) and served downgraded, and that an event published
in an earlier version still parses on the bus after its producer moved on."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Literal

import pytest
from pydantic import Field

from mlife_shared.events import (
    EVENTS,
    PREVIOUS,
    EventData,
    UnknownVersion,
    downgrade,
    model_of_version,
    new_envelope,
    register,
    register_previous,
    versions,
)
from mlife_shared.events.compat import breaking_changes
from mlife_shared.messaging.consumer import PoisonMessage, parse_data
from tests.contracts.test_event_contracts import unversioned_breaks

SUBJECT = "versioning_test.labelled"


class LabelledV1(EventData):
    """Sent when a test item was labelled (version 1: one label)."""

    subject = SUBJECT
    producer = "versioning_test"
    schema_version = 1
    item_id: uuid.UUID
    label: str
    source: Literal["human", "model"] = "human"


class LabelledV2(EventData):
    """Sent when a test item was labelled (version 2: several labels)."""

    subject = SUBJECT
    producer = "versioning_test"
    schema_version = 2
    item_id: uuid.UUID
    labels: list[str] = Field(min_length=1)
    source: Literal["human", "model"] = "human"


class LabelledV3(EventData):
    """Sent when a test item was labelled (version 3: labels with scores)."""

    subject = SUBJECT
    producer = "versioning_test"
    schema_version = 3
    item_id: uuid.UUID
    scores: dict[str, float]
    source: Literal["human", "model"] = "human"


def _v3_to_v2(data: dict[str, object]) -> dict[str, object]:
    scores = data["scores"]
    assert isinstance(scores, dict)
    return {"item_id": data["item_id"], "labels": sorted(scores, key=lambda k: -scores[k]), "source": data["source"]}


def _v2_to_v1(data: dict[str, object]) -> dict[str, object]:
    labels = data["labels"]
    assert isinstance(labels, list)
    return {"item_id": data["item_id"], "label": labels[0], "source": data["source"]}


@pytest.fixture
def three_versions() -> Iterator[None]:
    register(LabelledV3)
    register_previous(LabelledV2, deprecated_on=date(2026, 1, 1), sunset=date(2026, 12, 31), downgrade=_v3_to_v2)
    register_previous(LabelledV1, deprecated_on=date(2025, 6, 1), sunset=date(2026, 6, 1), downgrade=_v2_to_v1)
    try:
        yield
    finally:
        EVENTS.pop(SUBJECT, None)
        for key in [k for k in PREVIOUS if k[0] == SUBJECT]:
            del PREVIOUS[key]


def schema(model: type[EventData]) -> dict[str, object]:
    return model.model_json_schema()


def test_additive_changes_are_compatible_and_the_rest_break() -> None:
    class Added(EventData):
        """Sent when x."""

        subject, producer = "x.y", "x"
        item_id: uuid.UUID
        label: str
        source: Literal["human", "model", "rule"] = "human"
        note: str | None = None

    class Narrowed(EventData):
        """Sent when x."""

        subject, producer = "x.y", "x"
        item_id: str
        source: Literal["human"] = "human"
        reviewer: str

    assert breaking_changes(schema(LabelledV1), schema(Added)) == []
    found = breaking_changes(schema(LabelledV1), schema(Narrowed))
    assert "data.label: removed" in found
    assert "data.reviewer: added as required" in found
    assert any(c.startswith("data.item_id: type string/uuid became string") for c in found)
    assert any(c.startswith("data.source: enum value(s) ['model'] removed") for c in found)
    assert breaking_changes(schema(LabelledV1), schema(LabelledV2)) == ["data.label: removed",
                                                                       "data.labels: added as required"]


def test_a_union_that_accepts_less_breaks_one_that_accepts_more_does_not() -> None:
    optional = {"type": "object", "properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}}
    required = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert breaking_changes(required, optional) == []
    assert breaking_changes(optional, required) == ["data.n: no longer accepts null"]


def test_an_earlier_version_is_kept_long_enough_and_in_order() -> None:
    register(LabelledV3)
    try:
        with pytest.raises(ValueError, match="at least 180 days"):
            register_previous(LabelledV2, deprecated_on=date(2026, 1, 1), sunset=date(2026, 2, 1), downgrade=_v3_to_v2)
        with pytest.raises(ValueError, match="version 2 .* must be registered before version 1"):
            register_previous(LabelledV1, deprecated_on=date(2026, 1, 1), sunset=date(2027, 1, 1), downgrade=_v2_to_v1)
        with pytest.raises(ValueError, match="register the latest version"):
            register_previous(LabelledV3, deprecated_on=date(2026, 1, 1), sunset=date(2027, 1, 1), downgrade=_v3_to_v2)
    finally:
        EVENTS.pop(SUBJECT, None)


def test_events_are_served_downgraded_until_the_sunset(three_versions: None) -> None:
    assert versions(SUBJECT) == [3, 2, 1] and model_of_version(SUBJECT, 2) is LabelledV2
    item = uuid.uuid4()
    v3 = LabelledV3(item_id=item, scores={"cat": 0.2, "dog": 0.7}).model_dump(mode="json")
    assert downgrade(SUBJECT, v3, 3, 2, today=date(2026, 3, 1)) == {"item_id": str(item), "labels": ["dog", "cat"],
                                                                    "source": "human"}
    assert downgrade(SUBJECT, v3, 3, 1, today=date(2026, 3, 1))["label"] == "dog"
    with pytest.raises(UnknownVersion, match="version 1 of versioning_test.labelled was retired on 2026-06-01"):
        downgrade(SUBJECT, v3, 3, 1, today=date(2026, 6, 1))
    with pytest.raises(UnknownVersion, match="has no version 0"):
        downgrade(SUBJECT, v3, 3, 0, today=date(2026, 3, 1))


def test_an_event_published_in_an_earlier_version_still_parses(three_versions: None) -> None:
    old = new_envelope(LabelledV2(item_id=uuid.uuid4(), labels=["cat"]))
    parsed = parse_data(old.model_dump_json().encode(), {"Nats-Msg-Id": str(old.id)})
    assert parsed.version == 2 and isinstance(parsed.data, LabelledV2)
    unknown = old.model_dump(mode="json") | {"version": 7}
    with pytest.raises(PoisonMessage, match="version 7 is not a served version"):
        parse_data(json.dumps(unknown).encode(), None)


def test_the_snapshot_check_refuses_unversioned_breaks_and_early_removals() -> None:
    v1 = {"producer": "p", "schema_version": 1, "schema": schema(LabelledV1)}
    v2 = {"producer": "p", "schema_version": 2, "schema": schema(LabelledV2)}
    kept = {**v1, "sunset": "2027-01-01"}
    today = date(2026, 12, 6)
    assert unversioned_breaks({"s": v1}, {"s": {**v1, "schema": schema(LabelledV2)}}, today) == [
        "s v1: data.label: removed", "s v1: data.labels: added as required"]
    assert unversioned_breaks({"s": v1}, {"s": v2}, today) == [
        "s: version 1 replaced by 2 without keeping it for its deprecation period (registry.register_previous)"]
    assert unversioned_breaks({"s": v1}, {"s": v2, "s@v1": kept}, today) == []
    assert unversioned_breaks({"s": v2, "s@v1": kept}, {"s": v2}, today) == [
        "s@v1: removed; keep it (registry.register_previous) until its sunset"]
    assert unversioned_breaks({"s": v2, "s@v1": kept}, {"s": v2}, date(2027, 1, 1)) == []


def test_the_asyncapi_document_lists_the_earlier_versions_it_still_serves(three_versions: None) -> None:
    import jsonschema

    from mlife_shared.events.asyncapi import document, markdown
    from tests.contracts.test_asyncapi import SPEC, envelope_validator

    doc = document(events={SUBJECT: LabelledV3})
    jsonschema.Draft7Validator(SPEC).validate(doc)
    channel = doc["channels"]["versioning_test_labelled"]
    assert list(channel["messages"]) == ["LabelledV3", "LabelledV3_v2", "LabelledV3_v1"]
    old = doc["components"]["messages"]["LabelledV3_v1"]
    assert old["x-mlife-schema-version"] == 1 and old["x-mlife-deprecated"] == {"since": "2025-06-01",
                                                                                "sunset": "2026-06-01"}
    v1 = new_envelope(LabelledV1(item_id=uuid.uuid4(), label="cat")).model_dump(mode="json")
    envelope_validator(doc, "LabelledV3_v1").validate(v1)
    assert list(envelope_validator(doc, "LabelledV3").iter_errors(v1)), "a v1 event passed as v3"
    assert "Version 2 is still served until 2026-12-31 (deprecated on 2026-01-01)." in markdown(doc)
