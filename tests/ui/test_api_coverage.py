"""Every capability of the API has a place in the UI: each operation (method + path) of the merged OpenAPI the UI
loads is called, uploaded to, linked or downloaded by the UI's code (static/*.js), unless it is listed below with
the reason it is not for a person. And the UI calls no route the API does not have."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

import gateway
from tests.support.stack import Stack

STATIC = Path(gateway.__file__).parent / "static"
METHODS = ("get", "post", "put", "patch", "delete")

# Not user-facing, each for a reason; everything else must be reachable from a page.
PROBES = {(m, f"/api/{s}/{p}") for s in ("bam", "dam", "mtt", "msm", "gateway") for m, p in
          (("GET", "healthz"), ("GET", "readyz"), ("GET", "metrics"))}  # liveness/readiness probes and Prometheus
EXCLUDED = {
    **{op: "a probe for the orchestrator or Prometheus' scrape, not a page" for op in PROBES},
    ("POST", "/api/dam/webhooks/{connector}"): "a labelling tool's own callback, verified by its connector (Label "
                                               "Studio's: a shared secret header)",
    ("POST", "/api/dam/documents/{document_id}/import"): "the same handler as POST …/versions (the UI uses that one)",
}

# How the UI reaches a route: an API call, an upload with progress, or a link/image/download (GET).
CALL = re.compile(r"""\bapi\(\s*"(GET|POST|PUT|PATCH|DELETE)"\s*,\s*(`[^`]*`|"[^"]*")""")
UPLOAD = re.compile(r"""\bupload\(\s*(`[^`]*`|"[^"]*")""")
LINK = re.compile(r"""\b(?:href|src):\s*(`/api/[^`]*`|"/api/[^"]*")""")
PARAM = re.compile(r"\$\{[^}]*\}|\{[^}/]*\}")


def ui_sources(root: Path = STATIC) -> dict[str, str]:
    return {str(f.relative_to(root)): f.read_text() for f in sorted(root.rglob("*.js")) if "vendor" not in f.parts}


def ui_routes(sources: dict[str, str]) -> set[tuple[str, str]]:
    """(method, path) of every route the UI code reaches; a path parameter (`${id}`) is written `{}`."""
    found: set[tuple[str, str]] = set()
    for text in sources.values():
        found |= {(m, r[1:-1]) for m, r in CALL.findall(text)}
        found |= {("POST", r[1:-1]) for r in UPLOAD.findall(text)}
        found |= {("GET", r[1:-1]) for r in LINK.findall(text)}
    # `/openapi.json` is the merged document itself, the one route outside `/api/`
    return {(m, PARAM.sub("{}", p.split("?")[0])) for m, p in found if p.startswith("/api/")}


def reaches(route: tuple[str, str], operation: tuple[str, str]) -> bool:
    """Whether a UI route is this operation: same method, same segments; a UI parameter stands for an operation's
    parameter, or (`/api/${svc}/…`) for the service's name."""
    (method, path), (op_method, op_path) = route, operation
    ui, op = path.strip("/").split("/"), PARAM.sub("{}", op_path).strip("/").split("/")
    if method != op_method or len(ui) != len(op):
        return False
    return all(u == o or (u == "{}" and (o == "{}" or i == 1)) for i, (u, o) in enumerate(zip(ui, op, strict=True)))


def operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops if m in METHODS}


def unreached(spec: dict[str, Any], sources: dict[str, str]) -> list[tuple[str, str]]:
    routes = ui_routes(sources)
    return sorted(op for op in operations(spec) - EXCLUDED.keys() if not any(reaches(r, op) for r in routes))


def unknown(spec: dict[str, Any], sources: dict[str, str]) -> list[tuple[str, str]]:
    ops = operations(spec)
    return sorted(r for r in ui_routes(sources) if not any(reaches(r, op) for op in ops))


async def openapi(stack: Stack) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.url) as c:
        spec = (await c.get("/openapi.json")).json()
    # a service that is down is missing from the document: its operations would go unchecked
    assert "x-mlife-unavailable" not in spec["info"], f"every service must be up: {stack.down}"
    return dict(spec)


async def test_every_operation_has_a_place_in_the_ui(stack: Stack) -> None:
    spec = await openapi(stack)
    assert len(operations(spec)) > 100, "the merged OpenAPI of the gateway and the four services"
    missing = unreached(spec, ui_sources())
    assert missing == [], "operations no page reaches (add a control, or a reasoned exclusion):\n" + "\n".join(
        f"  {m} {p}" for m, p in missing)


async def test_the_ui_calls_only_routes_the_api_has(stack: Stack) -> None:
    spec = await openapi(stack)
    assert unknown(spec, ui_sources()) == []


async def test_every_exclusion_is_a_real_operation_the_ui_does_not_reach(stack: Stack) -> None:
    spec = await openapi(stack)
    ops, routes = operations(spec), ui_routes(ui_sources())
    assert set(EXCLUDED) <= ops, f"stale exclusions: {sorted(set(EXCLUDED) - ops)}"
    assert [op for op in EXCLUDED if any(reaches(r, op) for r in routes)] == [], "excluded yet reached"


async def test_an_operation_without_a_page_is_reported(stack: Stack) -> None:
    """The check can fail: a new operation, or a page's call removed, shows up as unreached."""
    spec = await openapi(stack)
    sources = ui_sources()
    spec["paths"]["/api/msm/models/{name}/archive"] = {"post": {}}
    assert unreached(spec, sources) == [("POST", "/api/msm/models/{name}/archive")]
    without_revert = {f: s.replace("/revert`", "`") for f, s in sources.items()}
    assert ("POST", "/api/msm/models/{name}/aliases/{alias}/revert") in unreached(spec, without_revert)
    assert unknown(spec, {"x.js": 'api("GET", "/api/bam/no-such-route")'}) == [("GET", "/api/bam/no-such-route")]
