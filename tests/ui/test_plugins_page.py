"""The Plugins page in the browser: every service's plugins with their state, message, package, version and plugin-API
range, as its GET /api/<svc>/plugins lists them; BAM has no seams; a plugin DAM once had and no longer finds is
shown `absent` with when it was last active (seeded as a row of DAM's plugin_seen, as an earlier start with the
package installed would have left it). Text from a plugin (its description) stays text."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.postgres import pg_url
from tests.support.stack import Stack
from tests.support.ui import Page, client, open_as, require


async def seed_absent(stack: Stack, name: str) -> None:
    """A cleaner DAM saw active once (its database has the documents); its package is not installed."""
    for db in stack.databases:
        engine = create_async_engine(pg_url(db))
        try:
            async with engine.begin() as conn:
                if not await conn.scalar(sa.text("SELECT to_regclass('document') IS NOT NULL")):
                    continue
                await conn.execute(sa.text(
                    "INSERT INTO plugin_seen (seam, name, entry_point, distribution, version, api, description,"
                    " last_seen_at) VALUES ('cleaners', :name, 'gone_pkg.cleaners:Gone', 'gone-pkg', '0.3', '>=1,<2',"
                    " '<b>flags</b> blurry photos', now() - interval '1 day')"), {"name": name})
                return
        finally:
            await engine.dispose()
    raise AssertionError("the stack has no DAM database")


async def test_plugins_page_lists_every_service_with_states(page: Page, stack: Stack) -> None:
    require(stack, "bam", "dam", "mtt", "msm")
    name = f"gone-{uuid.uuid4().hex[:6]}"
    await seed_absent(stack, name)
    listings = {}
    async with client(stack, "viewer") as c:
        for svc in ("bam", "dam", "mtt", "msm"):
            r = await c.get(f"/api/{svc}/plugins")
            assert r.status_code == 200, r.text
            listings[svc] = r.json()
    assert listings["bam"]["plugins"] == [] and listings["bam"]["seams"] == []
    [gone] = [p for p in listings["dam"]["plugins"] if p["name"] == name]
    assert gone["state"] == "absent" and gone["distribution"] == "gone-pkg"

    p = await open_as(page, stack, "viewer", "#/plugins")
    await p.wait_for_selector("main h1:text('Plugins')")
    assert await p.get_attribute("nav a[href='#/plugins']", "aria-current") == "page"
    await p.wait_for_selector("section[data-service=bam] :text('No plugins: this service has no seams.')")
    for svc, listing in listings.items():
        section = f"section[data-service={svc}]"
        await p.wait_for_selector(f"{section} h2:text('{svc.upper()}: {len(listing['plugins'])} plugin(s)')")
        for seam in listing["seams"]:
            assert await p.query_selector(f"{section} li code:text-is('{seam['group']}')") is not None
        rows = await p.query_selector_all(f"{section} tbody tr")
        shown = {(await r.get_attribute("data-plugin"), await r.get_attribute("data-state")) for r in rows}
        assert shown == {(f"{x['seam']}/{x['name']}", x["state"]) for x in listing["plugins"]}
    row = f"section[data-service=dam] tr[data-plugin='cleaners/{name}']"
    text = await p.text_content(row) or ""
    for part in ("absent", "its package is no longer installed", "last active", "gone-pkg 0.3", "outside",
                 "gone_pkg.cleaners:Gone", ">=1,<2", "<b>flags</b> blurry photos"):
        assert part in text, f"{part!r} not in the row: {text}"
    assert await p.query_selector(f"{row} b") is None, "a plugin's description is text, never HTML"
    assert page.console_errors() == []
