"""Finding and checking plugins: every entry point of a seam's group is loaded once per process; what fails is
kept with its state and message (`PluginState`), never raised."""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from mlife_shared.errors import Unprocessable
from mlife_shared.plugins import API_VERSION, SEAMS

State = Literal["active", "incompatible", "missing_dependency", "load_error", "absent"]
BUILTIN_DISTRIBUTIONS = frozenset({"mlife-shared", "mlife-bam", "mlife-dam", "mlife-mtt", "mlife-msm", "mlife-gateway",
                                   "mlife"})
REQUIRED = ("name", "api", "description")


@dataclass
class PluginState:
    seam: str
    name: str
    entry_point: str
    distribution: str | None
    version: str | None
    api: str | None
    state: State
    description: str = ""
    error: str | None = None
    builtin: bool = False
    plugin: Any = field(default=None, repr=False, compare=False)

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "plugin"}


class PluginUnavailable(Unprocessable):
    """A request names a plugin this service does not have active (422: says which ones it has)."""


def protocol_of(seam: str) -> type:
    module = importlib.import_module(f"mlife_shared.plugins.seams.{seam}")
    protocol: type = module.PROTOCOL
    return protocol


def missing_members(obj: Any, protocol: type) -> list[str]:
    """The attributes and methods of `protocol` (and the common ones) that `obj` lacks."""
    attrs = getattr(protocol, "__protocol_attrs__", None)
    if attrs is None:  # Python 3.11 keeps a protocol's members only behind this private helper
        attrs = typing._get_protocol_attrs(protocol)  # type: ignore[attr-defined]
    wanted = [*REQUIRED, *(n for n in sorted(attrs) if n not in REQUIRED)]
    return sorted(n for n in wanted if not hasattr(obj, n))


def compatible(api: str) -> str | None:
    """None when the specifier admits this API_VERSION, else why not."""
    try:
        if Version(API_VERSION) in SpecifierSet(api):
            return None
    except InvalidSpecifier:
        return f"api {api!r} is no version specifier (e.g. '>=1,<2')"
    return f"supports plugin API {api}; this MLife has {API_VERSION}"


def _dist(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = ep.dist
    return (dist.name, dist.version) if dist is not None else (None, None)


def check(seam: str, obj: Any) -> tuple[State, str | None]:
    """The state of a loaded plugin object: active, incompatible (its API range) or load_error (what it lacks)."""
    if (missing := missing_members(obj, protocol_of(seam))):
        return "load_error", f"does not implement the {seam} protocol: missing {', '.join(missing)}"
    if (why := compatible(str(obj.api))) is not None:
        return "incompatible", why
    return "active", None


def load_entry_point(seam: str, ep: EntryPoint) -> PluginState:
    name, dist_version = _dist(ep)
    state = PluginState(seam=seam, name=ep.name, entry_point=ep.value, distribution=name, version=dist_version,
                        api=None, state="load_error", builtin=name in BUILTIN_DISTRIBUTIONS)
    try:
        loaded = ep.load()
        obj: Any = loaded() if inspect.isclass(loaded) else loaded
    except ModuleNotFoundError as exc:
        state.state, state.error = "missing_dependency", f"needs the module {exc.name!r}, which is not installed"
        return state
    except Exception as exc:  # noqa: BLE001 - any failure of outside code is the plugin's state, not ours
        state.error = f"{type(exc).__name__}: {exc}"[:500]
        return state
    state.api = str(getattr(obj, "api", "")) or None
    state.description = str(getattr(obj, "description", ""))
    state.state, state.error = check(seam, obj)
    if getattr(obj, "name", ep.name) != ep.name and state.state == "active":
        state.state, state.error = "load_error", f"its name {obj.name!r} differs from its entry point {ep.name!r}"
    if state.state == "active":
        state.plugin = obj
    return state


class Plugins:
    """The plugins of some seams, loaded at construction. Two active plugins of one seam with one name: the
    built-in one wins (the other is a load_error saying so); between two outside ones, the first found."""

    def __init__(self, seams: Iterable[str], eps: dict[str, list[EntryPoint]] | None = None) -> None:
        self.seams = tuple(seams)
        unknown = [s for s in self.seams if s not in SEAMS]
        if unknown:
            raise ValueError(f"unknown plugin seams {unknown}; the seams are {sorted(SEAMS)}")
        self.states: list[PluginState] = []
        for seam in self.seams:
            found = eps[seam] if eps is not None else list(entry_points(group=SEAMS[seam].group))
            loaded = sorted((load_entry_point(seam, ep) for ep in found), key=lambda s: (not s.builtin, s.name))
            taken: dict[str, PluginState] = {}
            for s in loaded:
                if s.state == "active" and s.name in taken:
                    s.state, s.plugin = "load_error", None
                    s.error = f"the name {s.name!r} is taken by {taken[s.name].distribution or taken[s.name].entry_point}"
                elif s.state == "active":
                    taken[s.name] = s
                self.states.append(s)

    def active(self, seam: str) -> dict[str, Any]:
        return {s.name: s.plugin for s in self.states if s.seam == seam and s.state == "active"}

    def get(self, seam: str, name: str) -> Any:
        """The active plugin, or a 422 that says what this service has (and why the named one is not active)."""
        if (plugin := self.active(seam).get(name)) is not None:
            return plugin
        have = sorted(self.active(seam))
        known = next((s for s in self.states if s.seam == seam and s.name == name), None)
        why = f"is {known.state.replace('_', ' ')}: {known.error}" if known else "is not installed"
        raise PluginUnavailable(f"the {seam} plugin {name!r} {why}; active ones: {', '.join(have) or 'none'}")


_cache: dict[tuple[str, ...], Plugins] = {}


def plugins(*seams: str) -> Plugins:
    """This process's plugins of these seams, loaded on first use."""
    if seams not in _cache:
        _cache[seams] = Plugins(seams)
    return _cache[seams]
