"""Every event of ARCHITECTURE §2 is a registered pydantic contract; any change to one shows here.
Regenerate the snapshot on purpose with `UPDATE_SNAPSHOTS=1 make test` — which refuses a breaking change to a
version (mlife_shared.events.compat): that needs a new `schema_version`, the old one kept until its sunset."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

from mlife_shared.events import EVENTS, PREVIOUS, Envelope, streams
from mlife_shared.events.compat import breaking_changes
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
    for (subject, version), previous in sorted(PREVIOUS.items()):
        if previous.model.producer in PRODUCERS:
            out[f"{subject}@v{version}"] = {"producer": previous.model.producer, "schema_version": version,
                                            "schema": previous.model.model_json_schema(),
                                            "sunset": previous.sunset.isoformat()}
    return out


def unversioned_breaks(expected: dict[str, object], schemas: dict[str, object], today: date) -> list[str]:
    """Breaking changes made without a new version, and versions dropped before their sunset."""
    out: list[str] = []
    for key, old in expected.items():
        assert isinstance(old, dict)
        new = schemas.get(key)
        if new is None:
            if "sunset" in old and date.fromisoformat(old["sunset"]) <= today:
                continue  # retired after its deprecation period
            out.append(f"{key}: removed; keep it (registry.register_previous) until its sunset")
            continue
        assert isinstance(new, dict)
        if "schema" not in old:  # the envelope and the outcomes line are schemas themselves
            out += [f"{key}: {c}" for c in breaking_changes(old, new)]
        elif old["schema_version"] == new["schema_version"]:
            out += [f"{key} v{old['schema_version']}: {c}" for c in breaking_changes(old["schema"], new["schema"])]
        elif f"{key}@v{old['schema_version']}" not in schemas:
            out.append(f"{key}: version {old['schema_version']} replaced by {new['schema_version']} without keeping "
                       f"it for its deprecation period (registry.register_previous)")
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
    expected = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else {}
    breaks = unversioned_breaks(expected, schemas, date.today())
    assert not breaks, ("breaking changes to published contracts (make a new schema_version and keep the old one "
                        f"through its deprecation period, see mlife_shared.events.registry.register_previous): {breaks}")
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(schemas, indent=2, sort_keys=True) + "\n")
    assert SNAPSHOT.exists(), "no snapshot yet: run with UPDATE_SNAPSHOTS=1 once and review the file"
    expected = json.loads(SNAPSHOT.read_text())
    changed = sorted(k for k in set(expected) | set(schemas) if expected.get(k) != schemas.get(k))
    assert not changed, f"event contracts changed: {changed}; if intended, UPDATE_SNAPSHOTS=1 and review the diff"
