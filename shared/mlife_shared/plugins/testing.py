"""The conformance kit: a plugin package's own tests call these to prove MLife will load and use its plugins.

    from mlife_shared.plugins.testing import check_installed, check_plugin

    def test_my_converter_conforms() -> None:
        check_plugin("converters", MyConverter())          # the object itself
        check_installed("converters", "my-format")          # and as installed (its entry point)

Each raises AssertionError saying what is wrong: a missing member, an API range that excludes this MLife, or a
seam's behavioural check (`mlife_shared.plugins.seams.<seam>.conformance`)."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from mlife_shared.plugins import SEAMS
from mlife_shared.plugins.registry import check, load_entry_point


def check_plugin(seam: str, plugin: Any) -> None:
    assert seam in SEAMS, f"unknown seam {seam!r}; the seams are {sorted(SEAMS)}"
    state, error = check(seam, plugin)
    assert state == "active", f"the {seam} plugin {getattr(plugin, 'name', plugin)!r} is {state}: {error}"
    importlib.import_module(f"mlife_shared.plugins.seams.{seam}").conformance(plugin)


def check_installed(seam: str, name: str) -> Any:
    """The installed entry point `name` of the seam's group loads, is active and conforms; returns the plugin."""
    found = [ep for ep in entry_points(group=SEAMS[seam].group) if ep.name == name]
    assert found, f"no entry point {name!r} in the group {SEAMS[seam].group!r}: is the package installed?"
    state = load_entry_point(seam, found[0])
    assert state.state == "active", f"the {seam} plugin {name!r} is {state.state}: {state.error}"
    check_plugin(seam, state.plugin)
    return state.plugin
