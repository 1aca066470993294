"""The plugin registry: each way a plugin can fail is a state with its message, never an exception; the built-in
wins a name; the services' own plugins are found through their entry points as outside ones would be."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from mlife_shared.plugins import API_VERSION, SEAMS, seams_of
from mlife_shared.plugins.registry import Plugins, PluginUnavailable, compatible

SAMPLES = "tests.shared.plugin_samples"


def ep(name: str, value: str, seam: str = "cleaners") -> EntryPoint:
    return EntryPoint(name=name, value=value, group=SEAMS[seam].group)


def registry(*eps: EntryPoint) -> Plugins:
    return Plugins(["cleaners"], {"cleaners": list(eps)})


def test_each_failure_is_a_state_with_its_message() -> None:
    r = registry(ep("good", f"{SAMPLES}:Good"), ep("future", f"{SAMPLES}:FutureApi"),
                 ep("raises", f"{SAMPLES}:Raises"), ep("lacking", f"{SAMPLES}:Lacking"),
                 ep("needy", f"{SAMPLES}.needs_missing:Plugin"), ep("gone", f"{SAMPLES}:NoSuchThing"))
    states = {s.name: s for s in r.states}
    assert states["good"].state == "active" and states["good"].api == ">=1,<2"
    assert states["future"].state == "incompatible" and API_VERSION in (states["future"].error or "")
    assert states["raises"].state == "load_error" and "the plugin's own bug" in (states["raises"].error or "")
    assert states["lacking"].state == "load_error" and "missing api" in (states["lacking"].error or "")
    assert states["needy"].state == "missing_dependency" and "mlife_no_such_module" in (states["needy"].error or "")
    assert states["gone"].state == "load_error" and "NoSuchThing" in (states["gone"].error or "")
    assert list(r.active("cleaners")) == ["good"]


def test_an_object_or_a_class_and_its_name_must_match_its_entry_point() -> None:
    r = registry(ep("good", f"{SAMPLES}:GOOD_OBJECT"), ep("other", f"{SAMPLES}:Good"))
    states = {s.name: s for s in r.states}
    assert states["good"].state == "active"
    assert states["other"].state == "load_error" and "differs from its entry point" in (states["other"].error or "")


def test_a_name_is_taken_once_and_asking_for_an_inactive_one_says_why() -> None:
    r = registry(ep("good", f"{SAMPLES}:Good"), ep("good", f"{SAMPLES}:GOOD_OBJECT"),
                 ep("future", f"{SAMPLES}:FutureApi"))
    assert [s.state for s in r.states if s.name == "good"] == ["active", "load_error"]
    assert r.get("cleaners", "good") is not None
    with pytest.raises(PluginUnavailable, match="'future' is incompatible: supports plugin API >=2") as info:
        r.get("cleaners", "future")
    assert "active ones: good" in info.value.message
    with pytest.raises(PluginUnavailable, match="'nope' is not installed"):
        r.get("cleaners", "nope")


def test_versions_and_seams() -> None:
    assert compatible(">=1,<2") is None and compatible("~=1.0") is None
    assert "this MLife has" in (compatible(">=2") or "") and "no version specifier" in (compatible("one") or "")
    assert set(seams_of("dam")) == {"converters", "cleaners", "statistics", "labelling"}
    assert set(seams_of("mtt")) == {"evaluators", "runners"} and seams_of("msm") == ("deploy_targets",)
    assert seams_of("bam") == ()
    with pytest.raises(ValueError, match="unknown plugin seams"):
        Plugins(["widgets"], {})
