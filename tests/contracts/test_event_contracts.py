"""Every event of ARCHITECTURE §2 is a registered pydantic contract; any change to one shows here.
Regenerate the snapshot on purpose with `UPDATE_SNAPSHOTS=1 make test`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mlife_shared.events import EVENTS, Envelope, streams
from mlife_shared.events.contracts import TestingOutcomeLine as OutcomeLine

SNAPSHOT = Path(__file__).with_name("events.schema.json")
PRODUCERS = {"bam", "dam", "mtt", "msm", "gateway"}
ARCHITECTURE_SUBJECTS = {
    "badcase.created": "bam", "badcase.merged": "bam", "badcase.updated": "bam",
    "badcase.test_data_requested": "bam", "document.created": "dam", "labelling.requested": "dam",
    "labelling.completed": "dam", "dataset.grouped": "dam", "task.created": "mtt", "task.finished": "mtt",
    "task.failed": "mtt", "testing.completed": "mtt", "model.uploaded": "mtt", "model.registered": "msm",
    "deployment.requested": "msm", "deployment.succeeded": "msm", "deployment.failed": "msm",
    "deployment.rolled_back": "msm", "serving.feedback": "msm",
    # the function as the unit of the loop (issue 12): the gate asks for the evidence it lacks, MTT says when a
    # test cannot give any, and BAM's statuses follow production
    "testing.requested": "msm", "testing.failed": "mtt", "model.promoted": "msm",
    # the public event API (issue 14): what was webhook-only in MSM is on the bus, and the gateway's alerts
    "deployment.blocked": "msm", "model.alias_moved": "msm", "alert.firing": "gateway", "alert.resolved": "gateway",
}


def current() -> dict[str, object]:
    out: dict[str, object] = {"envelope": Envelope.model_json_schema(),
                              "testing.completed/outcomes-line": OutcomeLine.model_json_schema()}
    for subject, model in sorted(EVENTS.items()):
        if model.producer in PRODUCERS:
            out[subject] = {"producer": model.producer, "schema_version": model.schema_version,
                            "schema": model.model_json_schema()}
    return out


def test_every_architecture_event_has_a_contract_with_its_producer() -> None:
    registered = {s: m.producer for s, m in EVENTS.items() if m.producer in PRODUCERS}
    assert registered == ARCHITECTURE_SUBJECTS


def test_every_contract_says_when_it_is_sent() -> None:
    for subject, model in EVENTS.items():
        assert (model.__doc__ or "").strip().startswith("Sent when"), subject


def test_streams_are_one_per_producer_and_never_overlap() -> None:
    seen: set[str] = set()
    for name, subjects in streams().items():
        assert len({EVENTS[s].producer for s in subjects}) == 1, name
        assert not seen & set(subjects)
        seen |= set(subjects)


def test_contracts_match_the_snapshot() -> None:
    schemas = current()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(schemas, indent=2, sort_keys=True) + "\n")
    assert SNAPSHOT.exists(), "no snapshot yet: run with UPDATE_SNAPSHOTS=1 once and review the file"
    expected = json.loads(SNAPSHOT.read_text())
    changed = sorted(k for k in set(expected) | set(schemas) if expected.get(k) != schemas.get(k))
    assert not changed, f"event contracts changed: {changed}; if intended, UPDATE_SNAPSHOTS=1 and review the diff"
