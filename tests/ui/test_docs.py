"""The API docs page (/docs) needs no other host: Swagger UI is vendored and served by the gateway, so an install
without Internet access has its docs. In the browser every request to a host other than the gateway's is aborted,
and Swagger UI still renders the operations of the merged OpenAPI: every one of them, whatever their number (Swagger UI
virtualises a list of 150 rows or more, mounting only the rows in view, unless docs.js's plugin renders it whole)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from tests.support.stack import Stack
from tests.support.ui import Page

ASSET = re.compile(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", re.IGNORECASE)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")  # the ones Swagger UI lists
RENDERED = """bs => bs.map(b => [b.querySelector('.opblock-summary-method').textContent.trim().toLowerCase(),
                             b.querySelector('.opblock-summary-path').textContent.replace(/\\u200b/g, '').trim()])"""


def operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, path) once per tag the operation has (Swagger UI lists it under each; under "default" if none)."""
    return sorted((method, path) for path, item in spec["paths"].items() for method, op in item.items()
                  if method in METHODS for _ in (op.get("tags") or ["default"]))


def synthetic(paths: int) -> dict[str, Any]:
    """An OpenAPI of `paths` paths in 12 tags, every third with a POST beside its GET and some in two tags."""
    def op(i: int, verb: str) -> dict[str, Any]:
        tags = [f"area{i % 12}"] + ([f"area{(i + 5) % 12}"] if i % 10 == 0 else [])
        return {"tags": tags, "summary": f"{verb} thing {i}", "operationId": f"{verb}_thing_{i}",
                "responses": {"200": {"description": "OK", "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/Thing{i % 40}"}}}}}}
    spec_paths = {f"/api/synthetic/things{i}/{{thing_id}}": {"get": op(i, "get"), **({"post": op(i, "post")}
                                                                                      if i % 3 == 0 else {})}
                  for i in range(paths)}
    schemas = {f"Thing{n}": {"type": "object", "properties": {"id": {"type": "integer"}}} for n in range(40)}
    return {"openapi": "3.1.0", "info": {"title": "MLife synthetic", "version": "1"}, "paths": spec_paths,
            "components": {"schemas": schemas}}


async def rendered_operations(p: Any, expected: int) -> list[tuple[str, str]]:
    """The (method, path) of every operation block in the page, once Swagger UI has rendered `expected` of them
    (or stopped short: the caller's assertion then says which are missing)."""
    await p.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    await p.wait_for_load_state("networkidle")
    try:
        await p.wait_for_function(f"document.querySelectorAll('.swagger-ui .opblock').length >= {expected}",
                                  timeout=10_000)
    except Exception:  # noqa: BLE001 - a short count is reported by the assertion, with the missing operations
        pass
    return sorted(tuple(pair) for pair in await p.eval_on_selector_all(".swagger-ui .opblock", RENDERED))


async def test_docs_reference_only_the_gateway_and_every_asset_answers(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as c:  # no credentials: the docs page is public
        r = await c.get("/docs")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        html = r.text
        assets = ASSET.findall(html)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), assets
        for asset in assets:
            url = urljoin(stack.url + "/docs", asset)
            assert urlsplit(url).netloc == urlsplit(stack.url).netloc, f"/docs loads {asset} from another host"
            got = await c.get(url)
            assert got.status_code == 200 and got.content, f"{asset}: {got.status_code}"
        assert not re.search(r"https?://|//cdn", html.split("-->")[-1]), "no other host is named in the page"
        # scripts come from this origin only, even on this page
        assert "script-src 'self';" in r.headers["content-security-policy"]


async def test_docs_render_the_operations_with_the_network_cut_off(page: Page, stack: Stack) -> None:
    p = page.page
    gateway = urlsplit(stack.url).hostname
    blocked: list[str] = []

    async def only_the_gateway(route: object) -> None:
        if urlsplit(route.request.url).hostname != gateway:  # type: ignore[attr-defined]
            blocked.append(route.request.url)  # type: ignore[attr-defined]
            await route.abort()  # type: ignore[attr-defined]
        else:
            await route.continue_()  # type: ignore[attr-defined]

    await p.context.route("**/*", only_the_gateway)
    async with httpx.AsyncClient(base_url=stack.url) as c:
        merged = (await c.get("/openapi.json")).json()
    expected = operations(merged)
    await p.goto(stack.url + "/docs")
    rendered = await rendered_operations(p, len(expected))
    summaries = [path for _, path in rendered]
    assert "/api/bam/badcases" in summaries and "/api/gateway/login" in summaries, summaries[:20]
    missing = sorted(set(expected) - set(rendered))
    assert rendered == expected, f"{len(rendered)} of {len(expected)} operations rendered; missing: {missing[:10]}"
    title = await p.text_content(".swagger-ui .info .title")
    assert title and "MLife" in title
    assert blocked == [], f"the docs page asked other hosts: {blocked}"
    assert page.console_errors() == []


async def test_docs_render_every_operation_of_a_300_path_openapi(page: Page, stack: Stack) -> None:
    """The page does not depend on today's route count: a synthetic OpenAPI of 300 paths (400 operations, 440 blocks
    under 12 tags) served as /openapi.json renders all of them."""
    p: Any = page.page
    spec = synthetic(300)
    expected = operations(spec)
    assert len(expected) == 440

    async def serve_spec(route: Any) -> None:
        await route.fulfill(status=200, content_type="application/json", body=json.dumps(spec))

    await p.route("**/openapi.json", serve_spec)
    await p.goto(stack.url + "/docs")
    rendered = await rendered_operations(p, len(expected))
    missing = sorted(set(expected) - set(rendered))
    assert rendered == expected, f"{len(rendered)} of {len(expected)} operations rendered; missing: {missing[:10]}"
    assert "MLife synthetic" in (await p.text_content(".swagger-ui .info .title") or "")
    # the page is usable, not only long: the last operation opens and shows its response
    last = p.locator(".swagger-ui .opblock").last
    await last.locator(".opblock-summary-control").click()
    await last.locator(".responses-wrapper").wait_for(timeout=10_000)
    assert page.console_errors() == []
