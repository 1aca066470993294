"""MLife's plugin API: what differs between teams is a plugin, found through a Python entry point group (one per
seam) and checked against the plugin-API version it declares. The built-ins are registered the same way, in the
services' own `pyproject.toml`, so an outside package is found exactly as they are (docs/plugins.md).

A plugin is an object (or a class made with no arguments) with `name`, `api` (a version specifier such as
">=1,<2" that must contain `API_VERSION`), `description`, and the methods of its seam's protocol
(`mlife_shared.plugins.seams.<seam>`). A plugin that fails to import, lacks a dependency, targets another API or
misses a method is listed with that state and its message; it never stops a service from starting."""

from __future__ import annotations

from dataclasses import dataclass

API_VERSION = "1.0"


@dataclass(frozen=True)
class Seam:
    name: str
    group: str
    service: str
    summary: str


SEAMS: dict[str, Seam] = {s.name: s for s in (
    Seam("converters", "mlife.converters", "dam", "annotation formats a document imports from and exports to"),
    Seam("cleaners", "mlife.cleaners", "dam", "data quality checks run on upload or on a document"),
    Seam("statistics", "mlife.statistics", "dam", "extra distribution analyses of a document or dataset"),
    Seam("labelling", "mlife.labelling", "dam", "labelling tools a labelling task is run in"),
    Seam("evaluators", "mlife.evaluators", "mtt", "metrics and per-sample outcomes of a testing task"),
    Seam("runners", "mlife.runners", "mtt", "where and how task code runs"),
    Seam("deploy_targets", "mlife.deploy_targets", "msm", "where a deployment is brought up"),
)}


def seams_of(service: str) -> tuple[str, ...]:
    return tuple(s.name for s in SEAMS.values() if s.service == service)
