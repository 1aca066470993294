"""The cleaners' findings in the UI: an upload's result names what the cleaners flagged (the file is stored all the
same), and a document's data quality card runs the cleaners and lists the findings. Driven in Chromium against the
real platform."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from PIL import Image

from tests.support.stack import Stack
from tests.support.ui import Page, open_as, require
from tests.ui.test_data_pages import image_document, stored_images


async def test_an_upload_shows_its_findings_and_a_document_is_checked(page: Page, stack: Stack, tmp_path: Path) -> None:
    require(stack, "dam")
    blank = tmp_path / f"blank-{uuid.uuid4().hex[:6]}.png"
    buf = io.BytesIO()
    Image.new("RGB", (48, 40), (uuid.uuid4().int % 256, 120, 30)).save(buf, format="PNG")
    blank.write_bytes(buf.getvalue())
    p = await open_as(page, stack, "engineer", "#/data")
    await p.set_input_files("input[name=files]", str(blank))
    await p.click("main button:text('Upload')")
    status = await p.wait_for_selector("main li span.warning")
    assert "blank image" in (await status.text_content() or "")

    md5s = await stored_images(stack, tmp_path / "imgs", 2)
    doc = await image_document(stack, f"quality-doc-{uuid.uuid4().hex[:6]}", md5s)
    await p.goto(f"{stack.url}/#/data/documents/{doc['id']}")
    card = "section:has(h2:text('Data quality (cleaners)'))"
    await p.wait_for_selector(f"{card} p:text('Not checked yet.')")
    await p.click(f"{card} button:text('Run the cleaners')")
    counted = await p.wait_for_selector(f"{card} [data-findings]")
    # the platform's test pictures are one colour with a faint line: near-constant, and alike in shape
    assert await counted.get_attribute("data-findings") == "4"
    summary = await counted.text_content() or ""
    assert "2 row(s) checked by" in summary and "2 blank image, 2 near duplicate" in summary
    cleaners = await p.eval_on_selector_all(f"{card} tbody tr td:nth-child(4)", "tds => tds.map(t => t.textContent)")
    assert sorted(cleaners) == ["blank", "blank", "near_duplicates", "near_duplicates"]
    assert page.console_errors() == []
