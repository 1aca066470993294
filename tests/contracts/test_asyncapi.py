"""The AsyncAPI document of the public events (mlife_shared.events.asyncapi): valid AsyncAPI 3.0 (against
the specification's own JSON schema, vendored from the @asyncapi/specs 6.11.1 npm package, Apache-2.0),
complete (every registered contract, on the stream that really holds it), and true (its examples and a
real envelope from the outbox validate against the schemas it publishes)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mlife_shared.events import new_envelope
from mlife_shared.events.asyncapi import document, example_of, markdown, public_events
from mlife_shared.events.contracts import BadcaseCreated, DatasetGrouped
from mlife_shared.events.registry import streams, subject_matches
from mlife_shared.messaging.bus import DUPLICATE_WINDOW_SECONDS
from mlife_shared.messaging.natsauth import platform_users

HERE = Path(__file__).parent
SPEC = json.loads((HERE / "asyncapi-3.0.0.schema.json").read_text())
DOC = document("nats://nats.example.internal:4222")


def envelope_validator(doc: dict[str, Any], message: str) -> jsonschema.Draft202012Validator:
    """Validates against a message's payload schema, its `#/components/...` references resolved in `doc`."""
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{message}Envelope",
                                            "components": doc["components"]})


def test_the_document_is_valid_asyncapi_3() -> None:
    jsonschema.Draft7Validator(SPEC).validate(DOC)
    assert DOC["servers"]["nats"]["host"] == "nats.example.internal:4222"


def test_the_specification_check_can_fail() -> None:
    broken = copy.deepcopy(DOC)
    del broken["info"]["version"]
    first = next(iter(broken["operations"].values()))
    first["action"] = "consume"  # AsyncAPI 3 knows send and receive only
    errors = list(jsonschema.Draft7Validator(SPEC).iter_errors(broken))
    assert errors, "a document without info.version and with an unknown action passed the AsyncAPI schema"


def test_every_contract_is_a_channel_on_the_stream_that_holds_it() -> None:
    by_address = {c["address"]: c for c in DOC["channels"].values()}
    assert set(by_address) == set(public_events())
    assert len(public_events()) >= 22 and all(s.split(".")[0] in ("badcase", "dataset", "document", "labelling",
                                                                    "deployment", "model", "serving", "testing", "task", "alert")
                                               for s in public_events())
    for stream, subjects in streams().items():
        for subject in (s for s in subjects if s in by_address):  # (a test's own contracts are not public)
            assert by_address[subject]["x-mlife-stream"] == stream
            assert by_address[subject]["x-mlife-producer"] == public_events()[subject].producer
    assert len(DOC["operations"]) == len(public_events())
    assert all(op["action"] == "receive" for op in DOC["operations"].values())


def test_every_example_validates_against_its_schema_and_its_contract() -> None:
    for name, message in DOC["components"]["messages"].items():
        (example,) = message["examples"]
        envelope_validator(DOC, name).validate(example["payload"])
        model = public_events()[message["title"]]
        assert model.model_validate(example["payload"]["data"]).subject == message["title"]
        assert example["headers"]["Nats-Msg-Id"] == example["payload"]["id"]


@pytest.mark.parametrize("data", [
    BadcaseCreated(badcase_id="0b1f0c55-07d7-4b55-9f4e-5b7d10b3a6a1", function="digits", source="serving"),
    DatasetGrouped(dataset_id="7f2d8c3e-1f5e-4a57-8a38-8c3f1d2b9e10", version=1, purpose="test",
                   manifest_key="dam/manifests/7f2d8c3e/1.jsonl", item_count=12, function="digits"),
], ids=["badcase.created", "dataset.grouped"])
def test_a_real_envelope_validates_and_a_wrong_one_does_not(data: Any) -> None:
    """The envelope the outbox writes (not a closed empty `data` object, as the old snapshot had)."""
    envelope = json.loads(new_envelope(data).model_dump_json())
    validator = envelope_validator(DOC, type(data).__name__)
    validator.validate(envelope)
    wrong = {**envelope, "data": {**envelope["data"], "unexpected": 1}}
    assert list(validator.iter_errors(wrong)), "an unknown payload field passed"
    del wrong["data"]["unexpected"]
    del wrong["id"]
    assert list(validator.iter_errors(wrong)), "an envelope without id passed"


def test_the_guarantees_it_states_are_the_platforms() -> None:
    description = DOC["info"]["description"]
    assert f"{DUPLICATE_WINDOW_SECONDS // 60} minutes" in description
    reader = platform_users()["reader"]
    assert reader.publish, "the reader has no permissions at all"
    published = [(p, s) for p in reader.publish for s in public_events() if subject_matches(p, s)]
    assert not published, f"the read-only user may publish events: {published}"
    assert subject_matches("badcase.>", "badcase.created") and not subject_matches("badcase.*", "badcase.created.x")


def test_the_examples_are_stable() -> None:
    """Generated twice, the same document: a diff in review shows a real contract change only."""
    assert document("nats://nats.example.internal:4222") == DOC
    assert example_of(BadcaseCreated) == example_of(BadcaseCreated)


def test_docs_events_md_is_the_document_rendered() -> None:
    """docs/events.md is generated; regenerate it with `python -m mlife_shared.events.asyncapi --markdown`."""
    assert (HERE.parents[1] / "docs" / "events.md").read_text() == markdown(document()), (
        "docs/events.md is stale: run `.venv/bin/python -m mlife_shared.events.asyncapi --markdown > docs/events.md`")
    rendered = markdown(document())
    assert all(f"### `{subject}`" in rendered for subject in public_events())
