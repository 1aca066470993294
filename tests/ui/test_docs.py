"""The API docs page (/docs) needs no other host: Swagger UI is vendored and served by the gateway, so an install
without Internet access has its docs. In the browser every request to a host other than the gateway's is aborted,
and Swagger UI still renders the operations of the merged OpenAPI."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx

from tests.support.stack import Stack
from tests.support.ui import Page

ASSET = re.compile(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", re.IGNORECASE)


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
    await p.goto(stack.url + "/docs")
    await p.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    await p.wait_for_load_state("networkidle")
    summaries = await p.eval_on_selector_all(".opblock-summary-path", "ps => ps.map(p => p.textContent.trim())")
    assert "/api/bam/badcases" in summaries and "/api/gateway/login" in summaries, summaries[:20]
    assert len(summaries) >= 40
    title = await p.text_content(".swagger-ui .info .title")
    assert title and "MLife" in title
    assert blocked == [], f"the docs page asked other hosts: {blocked}"
    assert page.console_errors() == []
