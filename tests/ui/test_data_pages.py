"""The data capabilities a person reaches from the Data page: stored files (list, metadata, an MD5 check, a folder
as an archive, row search), a labelling task (items annotated in the page, Label Studio reconciled), a document's
new version; and a badcase's original data, downloaded. Driven in Chromium against the real platform."""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

from mlife.client import md5_of
from tests.support.stack import Stack
from tests.support.ui import Page, client, open_as, png, require, table_document


async def stored_images(stack: Stack, folder: Path, count: int) -> list[str]:
    """`count` distinct PNGs uploaded to DAM (as a tester would): their MD5s."""
    folder.mkdir(exist_ok=True)
    md5s = []
    async with client(stack, "tester") as c:
        for i in range(count):
            f = folder / f"{uuid.uuid4().hex[:6]}-{i}.png"
            f.write_bytes(png((30 * i, 200 - 20 * i, 90), size=40 + i))
            r = await c.post("/api/dam/files", params={"name": f.name}, content=f.read_bytes(),
                             headers={"content-type": "image/png"})
            assert r.status_code in (200, 201), r.text
            md5s.append(md5_of(f))
    return md5s


async def image_document(stack: Stack, name: str, md5s: list[str]) -> dict[str, Any]:
    rows = "md5,annotation\n" + "".join(f"{m},{'cat' if i % 2 else 'dog'}\n" for i, m in enumerate(md5s))
    return await table_document(stack, name, rows)


async def test_files_page_lists_describes_checks_and_searches(page: Page, stack: Stack, tmp_path: Path) -> None:
    require(stack, "dam")
    md5s = await stored_images(stack, tmp_path / "imgs", 2)
    doc = await image_document(stack, f"files-doc-{uuid.uuid4().hex[:6]}", md5s)
    p = await open_as(page, stack, "tester", "#/data")
    await p.click("main a[href='#/data/files']")
    await p.wait_for_selector("main h1:text('Files')")
    await p.fill("form[aria-label='Filter files'] input[name=media_type]", "image")
    await p.click("form[aria-label='Filter files'] button")
    await p.wait_for_selector(f"main a[href='#/data/files/{md5s[0]}']")

    check = "form[aria-label='Check MD5s']"
    await p.fill(f"{check} textarea", f"{md5s[0]}\n{'0' * 32}")
    await p.click(f"{check} button")
    answer = await p.wait_for_selector("[data-existing]")
    assert (await answer.get_attribute("data-existing"), await answer.get_attribute("data-missing")) == ("1", "1")

    search = "form[aria-label='Search rows']"
    await p.fill(f"{search} input[name=labels]", "cat")
    await p.click(f"{search} button")
    await p.wait_for_selector(f"section:has(h2:text('Search rows')) a[href='#/data/documents/{doc['id']}']")
    assert int(await p.get_attribute("[data-total]", "data-total")) >= 1

    archive = tmp_path / "folder.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a/one.txt", f"one {uuid.uuid4()}")
        z.writestr("a/two.txt", f"two {uuid.uuid4()}")
    await p.set_input_files("form[aria-label='Upload an archive'] input[name=archive]", str(archive))
    await p.click("form[aria-label='Upload an archive'] button")
    assert await (await p.wait_for_selector("[data-archive]")).get_attribute("data-archive") == "2"

    await p.click(f"main a[href='#/data/files/{md5s[0]}']")
    await p.wait_for_selector("main h1:text('File: ')")
    assert md5s[0] in await p.text_content("main dl.kv")
    await p.wait_for_function("() => { const i = document.querySelector('img.preview'); return i && i.naturalWidth > 0; }")
    assert page.console_errors() == []


async def test_annotate_a_labelling_task_in_the_page(page: Page, stack: Stack, tmp_path: Path) -> None:
    require(stack, "dam")
    marker = uuid.uuid4().hex[:6]
    md5s = await stored_images(stack, tmp_path / "imgs", 3)
    doc = await image_document(stack, f"label-doc-{marker}", md5s)
    p = await open_as(page, stack, "engineer", "#/data")
    form = "form[aria-label='Create a labelling task']"
    await p.wait_for_selector(form)
    await p.select_option(f"{form} select[name=document_id]", doc["id"])
    await p.fill(f"{form} input[name=labels]", "cat, dog")
    await p.click(f"{form} button")
    await p.wait_for_selector("main h1:text('Labelling task')")
    assert await p.get_attribute("[data-annotated]", "data-annotated") == "0"
    # not pushed to Label Studio (none is configured): reconciling pulls nothing and says so
    await p.click("main button:text('Pull annotations from Label Studio')")
    await p.wait_for_selector("#toast div:text('Not in Label Studio: nothing to pull')")

    annotate = "form[aria-label='Annotate items']"
    await p.wait_for_selector(annotate)
    selects = await p.query_selector_all(f"{annotate} select")
    assert len(selects) == 3
    for s in selects[:2]:
        await s.select_option("dog")
    await p.click(f"{annotate} button[type=submit]")
    await p.wait_for_selector("[data-annotated='2']")
    await p.select_option(f"{annotate} select >> nth=2", "cat")
    await p.click(f"{annotate} button[type=submit]")
    await p.wait_for_selector("[data-annotated='3']")
    task_id = p.url.rsplit("/", 1)[-1]
    async with client(stack, "viewer") as c:
        items = (await c.get(f"/api/dam/labelling-tasks/{task_id}/items")).json()
    assert sorted(i["annotation"] for i in items) == ["cat", "dog", "dog"]
    assert page.console_errors() == []


async def test_import_a_new_version_of_a_document(page: Page, stack: Stack, tmp_path: Path) -> None:
    require(stack, "dam")
    doc = await table_document(stack, f"version-doc-{uuid.uuid4().hex[:6]}")
    more = tmp_path / "more.csv"
    more.write_text("f0,f1,label\n100,1,cat\n101,2,dog\n")
    p = await open_as(page, stack, "engineer", f"#/data/documents/{doc['id']}")
    form = "form[aria-label='Import a new version']"
    await p.wait_for_selector(form)
    await p.set_input_files(f"{form} input[name=file]", str(more))
    await p.select_option(f"{form} select[name=mode]", "append")
    await p.click(f"{form} button")
    await p.wait_for_selector("#toast div:text('Version 2: 14 rows')")
    await p.wait_for_selector("section:has(h2:text('Versions')) tbody tr:nth-child(2)")
    async with client(stack, "viewer") as c:
        assert (await c.get(f"/api/dam/documents/{doc['id']}")).json()["current_version"] == 2
    assert page.console_errors() == []


async def test_download_a_badcase_s_data_and_see_who_is_signed_in(page: Page, stack: Stack, tmp_path: Path) -> None:
    require(stack, "bam")
    image = png((5, 60, 200))
    report = json.dumps({"function": f"download-{uuid.uuid4().hex[:6]}"})
    async with client(stack, "tester") as c:
        r = await c.post("/api/bam/badcases/with-data", data={"report": report},
                         files={"file": ("face.png", image, "image/png")})
        assert r.status_code == 201, r.text
        badcase = r.json()
    p = await open_as(page, stack, "viewer", f"#/badcases/{badcase['id']}")
    async with p.expect_download() as info:
        await p.click("main a:text('Download the original data')")
    saved = tmp_path / "saved"
    await (await info.value).save_as(str(saved))
    assert saved.read_bytes() == image
    await p.click("nav a[href='#/account']")
    who = await p.wait_for_selector("dl[aria-label='signed in as']")
    assert "viewer-user" in await who.inner_text() and "viewer" in await who.inner_text()
    assert page.console_errors() == []
