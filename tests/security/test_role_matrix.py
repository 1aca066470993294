"""Security of the whole API, through the gateway, with every service that has an API running as its
own process: every route of the merged OpenAPI refuses a caller without a valid token; every route of
every service, reached at its own port, refuses a missing, forged, expired, unsigned or misaddressed
identity; each role reaches exactly the routes ARCHITECTURE §5 gives it (the role matrix, every
state-changing route tried by every role); schemathesis with all its checks finds no 5xx and no schema
violation."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.stack import ROLES, SECRET, Stack, start_stack, stop_stack

# Public: the probes, login, and the event API's description (like /openapi.json, which is not in the schema)
PUBLIC = re.compile(r"^/api/\w+/(healthz|readyz)$|^/api/gateway/(login|session)$|^/api/gateway/events/asyncapi\.json$")
ARTIFACTS = Path(os.environ.get("MLIFE_TEST_ARTIFACTS", "test-artifacts")).resolve()


def expected_role(method: str, path: str) -> str:
    """ARCHITECTURE §5: viewer reads; tester files and triages badcases and uploads data; engineer
    documents, datasets, labelling, tasks, models; maintainer deploys, overrides gates, manages users."""
    service = path.split("/")[2]
    if path.startswith("/api/gateway/webhooks"):  # who sees which events where (targets, deliveries): engineers
        return "engineer" if method == "GET" else "maintainer"  # targets, secrets, tests and replays: maintainers
    if path.startswith("/api/gateway/users"):
        return "maintainer"  # managing users
    if path.startswith("/api/gateway/subscribers"):
        return "maintainer"  # outside systems' NATS logins and durables, read or changed (issue 14)
    if method == "POST" and "/dead-letters/" in path:
        return "maintainer"  # re-driving dead letters: operating the bus, after a fix (issue 14)
    if method == "POST" and re.match(r"^/api/gateway/alerts/[^/]+/resolve$", path):
        return "maintainer"  # closing an alert by hand (issue 14)
    if method != "GET" and path.startswith(("/api/gateway/alert-rules", "/api/gateway/alerts")):
        return "engineer"  # alert rules and acknowledging an alert (issue 14)
    if method == "GET":
        return "viewer"
    if service == "gateway":
        return "viewer"  # logout, own password, own tokens
    if service == "bam":
        return "tester"
    if service == "dam":
        if path in ("/api/dam/files/check", "/api/dam/search"):
            return "viewer"  # reads sent as POST
        if path.startswith("/api/dam/files"):
            return "tester"
        return "engineer"
    if service == "mtt":
        return "engineer"
    # msm
    if re.match(r"^/api/msm/serve/[^/]+/predict$", path):
        return "viewer"
    if re.match(r"^/api/msm/serve/[^/]+/feedback$", path):
        return "tester"
    if path == "/api/msm/deployments" or re.search(r"/(override|rollback|docker-build)$", path):
        return "maintainer"
    return "engineer"


# Where a service differs from §5 today: reported to its owner, kept here so the matrix stays exact
# (a change either way makes this test fail and the entry is revisited).
DEVIATIONS: dict[tuple[str, str], str] = {
    # MSM lets an engineer request a deployment (the gate still decides; only the override needs a
    # maintainer). §5 says maintainers deploy.
    ("POST", "/api/msm/deployments"): "engineer",
    # DAM lets testers submit annotations (labellers); §5 gives labelling to engineers.
    ("POST", "/api/dam/labelling-tasks/{task_id}/annotations"): "tester",
    # MSM asks a maintainer to revert an alias (stricter than §5's "engineer: models"; it can move production).
    ("POST", "/api/msm/models/{name}/aliases/{alias}/revert"): "maintainer",
    # A function's default gate thresholds decide what ships, as an override does: a maintainer's (issue 12).
    ("PUT", "/api/msm/functions/{function}/thresholds"): "maintainer",
    # How a function's audio/video badcases become test data decides what its models are tested on: a
    # maintainer's, like the thresholds (issue 15).
    ("PUT", "/api/dam/test-data-conversions/{function}"): "maintainer",
}


# Called by another system with a shared secret on top of an MLife token: no role opens them alone.
# (a labelling tool's webhook is verified by its connector: the built-in Label Studio's is the one filled in)
SHARED_SECRET_ROUTES = {("POST", "/api/dam/webhooks/{connector}"): "WebhookRejected"}


def _concrete(path: str) -> str:
    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.endswith("id"):
            return str(uuid.uuid4())
        return {"md5": "0" * 32, "alias": "production", "connector": "labelstudio"}.get(name, "no-such-" + name.replace("_", "-"))

    return re.sub(r"\{([^}]+)\}", fill, path)


def _operations(doc: dict) -> list[tuple[str, str]]:
    return sorted((m.upper(), p) for p, ops in doc["paths"].items() for m in ops
                  if m in ("get", "post", "put", "patch", "delete") and not p.endswith("/metrics"))


async def _doc(stack: Stack) -> dict:
    async with httpx.AsyncClient(base_url=stack.url, headers=stack.auth("admin")) as c:
        return (await c.get("/openapi.json")).json()


async def test_every_service_with_an_api_is_in_the_merged_openapi(stack: Stack) -> None:
    doc = await _doc(stack)
    assert "bam" in stack.up, stack.down
    for service in stack.up:
        assert any(p.startswith(f"/api/{service}/") for p in doc["paths"]), service
    assert set(doc["info"].get("x-mlife-unavailable", [])) == set(stack.down)


async def test_every_route_without_a_valid_token_is_401(stack: Stack) -> None:
    doc = await _doc(stack)
    ops = _operations(doc)
    assert len(ops) > 40
    wrong: list[str] = []
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as c:
        for method, path in ops:
            url = _concrete(path)
            for headers in ({}, {"Authorization": "Bearer mlf_not_a_token"}, {"Authorization": "Basic YTpi"},
                            {"Cookie": "mlife_session=forged"}):
                r = await c.request(method, url, headers=headers, json={} if method != "GET" else None)
                public = bool(PUBLIC.match(path))
                if public != (r.status_code != 401):
                    wrong.append(f"{method} {path} {headers} -> {r.status_code}")
    assert not wrong, "\n".join(wrong)


def _identity_claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {"sub": str(uuid.uuid4()), "name": "mallory", "role": "maintainer",
                                 "iss": "mlife-gateway", "aud": "mlife-services", "iat": now, "exp": now + 60}
    claims.update(over)
    return claims


def _unsigned(claims: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


FORGED_IDENTITIES = {
    "garbage": "not-a-jwt",
    "signed with another key": jwt.encode(_identity_claims(), "not-the-platform-key-" + "x" * 32, algorithm="HS256"),
    "alg none": _unsigned(_identity_claims()),
    "expired a minute ago": jwt.encode(_identity_claims(iat=int(time.time()) - 120, exp=int(time.time()) - 60),
                                       SECRET, algorithm="HS256"),
    "another audience": jwt.encode(_identity_claims(aud="someone-else"), SECRET, algorithm="HS256"),
    "another issuer": jwt.encode(_identity_claims(iss="a-task"), SECRET, algorithm="HS256"),
    "unknown role": jwt.encode(_identity_claims(role="root"), SECRET, algorithm="HS256"),
    "no expiry": jwt.encode({k: v for k, v in _identity_claims().items() if k != "exp"}, SECRET, algorithm="HS256"),
}


async def test_every_service_port_refuses_a_missing_or_forged_identity(stack: Stack) -> None:
    """A caller that reaches a service's port directly (a task's code, a pre-label endpoint, another
    container) and has no identity, or one the gateway did not sign now for these services, gets 401 on
    every route but the health probes; a freshly signed maintainer identity is let through (the control)."""
    assert stack.up, stack.down
    wrong: list[str] = []
    tried = 0
    for service, base in stack.up.items():
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            doc = (await c.get("/openapi.json")).json()
            ops = [(m, p) for m, p in _operations(doc) if not p.endswith(("/healthz", "/readyz"))]
            assert len(ops) > 5, service
            for method, path in ops:
                url = _concrete(path)
                for what, token in [("no identity", None), *FORGED_IDENTITIES.items()]:
                    headers = {} if token is None else {"X-MLife-Identity": token}
                    r = await c.request(method, url, headers=headers, json={} if method != "GET" else None)
                    tried += 1
                    if r.status_code != 401:
                        wrong.append(f"{service}: {method} {path} with {what} -> {r.status_code} {r.text[:120]}")
            good = jwt.encode(_identity_claims(), SECRET, algorithm="HS256")
            r = await c.get(_concrete(next(p for m, p in ops if m == "GET" and "{" not in p)),
                            headers={"X-MLife-Identity": good})
            assert r.status_code != 401, (service, r.text)
    assert tried > 500
    assert not wrong, "\n".join(wrong)


async def test_role_matrix(stack: Stack) -> None:
    doc = await _doc(stack)
    actual: dict[tuple[str, str], str] = {}
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as c:
        for method, path in _operations(doc):
            if PUBLIC.match(path):
                continue
            url = _concrete(path)
            allowed = []
            for role in ROLES:
                r = await c.request(method, url, headers=stack.auth(role), json={} if method != "GET" else None)
                if (method, path) in SHARED_SECRET_ROUTES:
                    assert r.status_code == 401 and r.json()["error"] == SHARED_SECRET_ROUTES[(method, path)]
                    continue
                assert r.status_code != 401, f"{method} {path} as {role}: {r.status_code} {r.text}"
                allowed.append(r.status_code != 403)
            if (method, path) in SHARED_SECRET_ROUTES:
                continue
            assert allowed == sorted(allowed), f"{method} {path}: roles are not ordered: {allowed}"
            actual[(method, path)] = ROLES[allowed.index(True)] if True in allowed else "nobody"
    expected = {op: DEVIATIONS.get(op, expected_role(*op)) for op in actual}
    diff = {f"{m} {p}": f"needs {actual[(m, p)]}, §5 says {expected[(m, p)]}"
            for (m, p) in actual if actual[(m, p)] != expected[(m, p)]}
    assert not diff, "role mismatches:\n" + "\n".join(f"  {k}: {v}" for k, v in sorted(diff.items()))


# Operational probes (a readiness 503 is their job), and bodies schemathesis cannot serialise
# (BAM's bulk import takes a streamed CSV / JSON-lines file; tested in tests/bam).
# (The two BAM 5xx this test found — a non-finite report echoed in an error, a NUL in a filter — are fixed.)
_EXCLUDED = r"/(healthz|readyz|metrics)$|^/api/bam/badcases/import$"
SCHEMATHESIS_SERVICES = os.environ.get("MLIFE_SCHEMATHESIS_SERVICES", "gateway,bam,dam,mtt,msm").split(",")


@pytest.fixture
async def own_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """A platform of its own: the fuzzer changes users (passwords, roles, disabled) with the admin token."""
    s = await start_stack(tmp_path / "fuzzed")
    try:
        yield s
    finally:
        await stop_stack(s)


@pytest.mark.timeout(900)
async def test_schemathesis_finds_no_5xx_and_no_schema_violation(own_stack: Stack) -> None:
    """All checks, the examples, coverage and fuzzing phases, against the gateway and every service
    (MLIFE_SCHEMATHESIS_SERVICES narrows it while working on one)."""
    stack = own_stack
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    services = [s for s in SCHEMATHESIS_SERVICES if s == "gateway" or s in stack.up]
    include = "^/api/(" + "|".join(services) + ")/"
    st = Path(sys.executable).with_name("st")
    config = Path(__file__).with_name("schemathesis.toml")
    cmd = [str(st), "--config-file", str(config), "run", f"{stack.url}/openapi.json",
           "-H", f"Authorization: Bearer {stack.admin_token}",
           "--include-path-regex", include, "--exclude-path-regex", _EXCLUDED,
           "--phases", "examples,coverage,fuzzing", "--max-examples", "20", "--workers", "2",
           "--seed", "20261128"]
    # Run inside the (git-ignored) artifacts folder: schemathesis keeps a cache in its working directory.
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=850, cwd=ARTIFACTS)
    out = result.stdout + result.stderr
    (ARTIFACTS / "schemathesis.txt").write_text(out)
    summary = out.rsplit("SUMMARY", 1)[-1]
    assert "Failures:" not in summary, out[-8000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert generated and int(generated.group(2)) > 500, summary
    # The only tolerated errors are schemathesis' own (its coverage generator sometimes trips on a
    # schema: "Inconsistent results" from Hypothesis), never a request that could not be made.
    errors = re.findall(r"🚫 (.+?): \d+", summary.split("Errors:", 1)[1].split("\n\n", 1)[0]) if "Errors:" in summary else []
    assert set(errors) <= {"Runtime Error"}, summary
    if errors:
        assert "Inconsistent results" in out or "schemathesis/specs/openapi/coverage" in out, out[-8000:]
    assert result.returncode in (0, 1), out[-4000:]
