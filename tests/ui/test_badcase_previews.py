"""Every badcase seen (issue 15), in Chromium against the real platform: media made in the test (a PNG with objects
where the boxes are, a short WAV, a short H.264 MP4) reported with their segments; the list shows a loaded thumbnail
for each (a DAM-held image by MD5 too: the case that was a grey box); the image's page draws the boxes coloured by
match (checked on the screenshot's pixels), the audio page its waveform (and spectrogram) and a player at the
segment, the video page a poster, a strip of frames and a player at the segment; a text badcase its spans."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

from PIL import Image

from tests.support.media_samples import (
    IMAGE_SIZE,
    PREDICTED_BOXES,
    TRUE_BOXES,
    boxes_png,
    colour_mp4,
    report_on_dam_file,
    report_with_file,
    stack_client,
    tone_wav,
)
from tests.support.stack import Stack
from tests.support.ui import Page, open_as, require

MATCHED, WRONG, MISSED = (30, 158, 60), (224, 36, 27), (242, 157, 12)
SEGMENT = (1.0, 2.0)


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 70) -> bool:
    return sum(abs(int(a) - b) for a, b in zip(pixel[:3], colour, strict=True)) <= tolerance


def colour_around(img: Image.Image, x: float, y: float, colour: tuple[int, int, int], radius: int = 6) -> bool:
    """Whether a pixel of `colour` is within `radius` of (x, y) (a dashed line has gaps, an edge is antialiased)."""
    cx, cy = round(x), round(y)
    return any(near(img.getpixel((i, j)), colour)
               for i in range(max(0, cx - radius), min(img.width, cx + radius + 1))
               for j in range(max(0, cy - radius), min(img.height, cy + radius + 1)))


async def seed(stack: Stack, function: str) -> dict[str, Any]:
    """Badcases of `function` on real media: an image stored in BAM (detection), an image held by DAM
    (classification), a WAV and an MP4 with segments, a text with spans."""
    async with stack_client(stack) as c:
        image = await report_with_file(c, {"function": function, "description": "boxes", "prediction": PREDICTED_BOXES,
                                           "ground_truth": TRUE_BOXES}, "street.png", boxes_png(), "image/png")
        dam_image, md5 = await report_on_dam_file(c, {"function": function, "description": "held by DAM",
                                                      "prediction": "cat", "ground_truth": "dog"},
                                                  f"dam-{uuid.uuid4().hex[:6]}.png", boxes_png(seed=uuid.uuid4().int % 9999),
                                                  "image/png", "image")
        segment = {"segment_start": SEGMENT[0], "segment_end": SEGMENT[1]}
        audio = await report_with_file(c, {"function": function, "description": "a missed word", "prediction": "yes",
                                           "ground_truth": "no", **segment}, "voice.wav", tone_wav(), "audio/wav")
        video = await report_with_file(c, {"function": function, "description": "a missed gesture", **segment},
                                       "clip.mp4", colour_mp4(), "video/mp4")
        text = await report_with_file(c, {"function": function, "description": "names",
                                          "prediction": {"spans": [{"start": 0, "end": 5, "label": "PER"},
                                                                   {"start": 17, "end": 22, "label": "PER"}]},
                                          "ground_truth": {"spans": [{"start": 0, "end": 5, "label": "PER"},
                                                                     {"start": 10, "end": 13, "label": "PER"}]}},
                                      "names.txt", f"Alice met Bob in Paris. {uuid.uuid4()}".encode(), "text/plain")
    assert dam_image["preview"] == {"source": "dam", "md5": md5, "media_type": "image"}, dam_image["preview"]
    assert image["preview"]["source"] == audio["preview"]["source"] == video["preview"]["source"] == "bam"
    return {"image": image, "dam_image": dam_image, "audio": audio, "video": video, "text": text}


async def open_badcase(page: Page, stack: Stack, badcase_id: str) -> Any:
    p = await open_as(page, stack, "viewer", f"#/badcases/{badcase_id}")
    await p.wait_for_selector("main h1:text('Badcase: ')")
    return p


async def test_the_list_shows_a_loaded_thumbnail_for_every_badcase(page: Page, stack: Stack) -> None:
    require(stack, "bam", "dam")
    function = f"previews-{uuid.uuid4().hex[:6]}"
    seeded = await seed(stack, function)
    p = await open_as(page, stack, "viewer", f"#/badcases?function={function}")
    await p.wait_for_function("() => document.querySelectorAll('main table tbody tr').length === 5")
    # every visual badcase (BAM image, DAM image, audio waveform, video poster) has its thumbnail loaded at a fixed size
    await p.wait_for_function("""() => { const imgs = [...document.querySelectorAll('main table tbody tr img.thumb')];
        return imgs.length === 4 && imgs.every((i) => i.complete && i.naturalWidth > 0); }""")
    thumbs = await p.eval_on_selector_all("main table tbody tr img.thumb", """imgs => imgs.map((i) => ({
        src: i.getAttribute('src'), source: i.dataset.source, lazy: i.loading, w: i.getBoundingClientRect().width,
        h: i.getBoundingClientRect().height }))""")
    by_src = {t["src"].split("?")[0]: t for t in thumbs}
    dam = by_src[f"/api/dam/files/{seeded['dam_image']['preview']['md5']}/preview"]
    assert dam["source"] == "dam" and "size=96" in dam["src"]
    for kind in ("image", "audio", "video"):
        assert f"/api/bam/badcases/{seeded[kind]['id']}/preview" in by_src, (kind, thumbs)
    assert "view=waveform" in by_src[f"/api/bam/badcases/{seeded['audio']['id']}/preview"]["src"]
    assert "view=poster" in by_src[f"/api/bam/badcases/{seeded['video']['id']}/preview"]["src"]
    assert all(t["lazy"] == "lazy" and (t["w"], t["h"]) == (48, 48) for t in thumbs), thumbs
    # the text badcase has an icon by its media type, not a broken image
    text_row = f"main table tbody tr:has(a[href='#/badcases/{seeded['text']['id']}'])"
    assert await p.get_attribute(f"{text_row} .thumb.icon", "aria-label") == "text data"
    assert page.console_errors() == []


async def test_an_image_badcase_draws_its_boxes_coloured_by_match(page: Page, stack: Stack) -> None:
    require(stack, "bam", "dam")
    seeded = await seed(stack, f"boxes-{uuid.uuid4().hex[:6]}")
    p = await open_badcase(page, stack, seeded["image"]["id"])
    figure = await p.wait_for_selector("figure.overlaid[data-loaded=true] svg.overlay")
    assert (await figure.get_attribute("data-matched"), await figure.get_attribute("data-wrong"),
            await figure.get_attribute("data-missed")) == ("1", "1", "1")
    labels = await p.eval_on_selector_all("svg.overlay g", "gs => gs.map((g) => [g.dataset.role, g.dataset.kind, "
                                          "g.querySelector('text').textContent])")
    assert sorted(labels) == sorted([["truth", "matched", "truth: cat"], ["truth", "missed", "truth: bird"],
                                     ["prediction", "matched", "pred: cat 0.91"], ["prediction", "wrong", "pred: dog 0.66"]])
    await p.wait_for_function("() => document.querySelector('figure.overlaid img').naturalWidth === %d" % IMAGE_SIZE[0])
    shot = Image.open(io.BytesIO(await (await p.query_selector("figure.overlaid")).screenshot())).convert("RGB")
    scale = shot.width / IMAGE_SIZE[0]
    assert abs(shot.height / IMAGE_SIZE[1] - scale) < 0.05, (shot.size, "the overlay keeps the image's aspect")

    def at(x: float, y: float, colour: tuple[int, int, int]) -> bool:
        return colour_around(shot, x * scale, y * scale, colour)

    # the left edges' middles: the matched cat green, the wrong dog red, the missed bird amber; the picture itself
    # (light grey) has none of these colours, so a box not drawn where it belongs fails
    assert at(20, 55, MATCHED) and at(140, 70, WRONG) and at(30, 130, MISSED)
    assert not at(140, 70, MATCHED) and not at(20, 55, WRONG) and not at(30, 130, WRONG)
    assert not colour_around(shot, 180 * scale, 70 * scale, WRONG, radius=10), "inside the dog's box: the picture"
    assert page.console_errors() == []


async def test_a_dam_image_shows_its_classification_on_the_image(page: Page, stack: Stack) -> None:
    require(stack, "bam", "dam")
    seeded = await seed(stack, f"labels-{uuid.uuid4().hex[:6]}")
    p = await open_badcase(page, stack, seeded["dam_image"]["id"])
    await p.wait_for_selector("figure.overlaid[data-loaded=true] .overlay.labels")
    assert await p.text_content("figure.overlaid .tag.wrong[data-role=prediction]") == "pred: cat"
    assert await p.text_content("figure.overlaid .tag.truth[data-role=truth]") == "truth: dog"
    assert await p.evaluate("() => document.querySelector('figure.overlaid img').naturalWidth") == IMAGE_SIZE[0]
    # the original is DAM's file (BAM holds no copy)
    md5 = seeded["dam_image"]["preview"]["md5"]
    assert await p.get_attribute("section:has(h2:text('Preview')) a[download]", "href") == f"/api/dam/files/{md5}/content"
    assert await p.get_attribute("section:has(h2:text('Preview')) a:text('the file in DAM')", "href") == f"#/data/files/{md5}"
    assert page.console_errors() == []


async def test_an_audio_badcase_shows_its_waveform_and_plays_from_the_segment(page: Page, stack: Stack) -> None:
    require(stack, "bam")
    seeded = await seed(stack, f"audio-{uuid.uuid4().hex[:6]}")
    p = await open_badcase(page, stack, seeded["audio"]["id"])
    assert "1.00 s – 2.00 s" in await p.text_content("[data-field=segment]")
    assert "1.00 s – 2.00 s" in await p.text_content("section:has(h2:text('Occurrences')) table")
    await p.wait_for_function("() => { const i = document.querySelector('[data-preview=audio] img.wave'); "
                              "return i && i.complete && i.naturalWidth > 0; }")
    assert "view=waveform" in await p.get_attribute("img.wave", "src")
    await p.wait_for_function("""() => { const a = document.querySelector('[data-preview=audio] audio');
        return a && a.readyState >= 1 && Math.abs(a.currentTime - 1.0) < 0.05; }""")
    assert await p.evaluate("() => document.querySelector('audio').duration") > 2.9
    await p.click("[data-preview=audio] button[data-view=spectrogram]")
    await p.wait_for_function("() => { const i = document.querySelector('img.wave'); return i.dataset.view === "
                              "'spectrogram' && i.src.includes('view=spectrogram') && i.complete && i.naturalWidth > 0; }")
    # playing starts at the segment
    await p.evaluate("() => { const a = document.querySelector('audio'); a.muted = true; return a.play(); }")
    await p.wait_for_function("() => document.querySelector('audio').currentTime > 1.05")
    assert page.console_errors() == []


async def test_a_video_badcase_shows_poster_strip_and_a_player_at_the_segment(page: Page, stack: Stack) -> None:
    require(stack, "bam")
    seeded = await seed(stack, f"video-{uuid.uuid4().hex[:6]}")
    p = await open_badcase(page, stack, seeded["video"]["id"])
    for img in ("img.poster", "img.strip"):
        await p.wait_for_function(f"() => {{ const i = document.querySelector('[data-preview=video] {img}'); "
                                  "return i && i.complete && i.naturalWidth > 0; }")
    assert "at=1" in await p.get_attribute("img.poster", "src")
    strip = await p.get_attribute("img.strip", "src")
    assert "view=strip" in strip and "start=1" in strip and "end=2" in strip
    # the poster is the frame at the segment's start: green (the second second), not the first second's red
    poster = Image.open(io.BytesIO(await (await p.query_selector("img.poster")).screenshot())).convert("RGB")
    middle = poster.getpixel((poster.width // 2, poster.height * 3 // 4))
    assert near(middle, (30, 200, 60), tolerance=90), middle
    await p.wait_for_function("""() => { const v = document.querySelector('[data-preview=video] video');
        return v && v.readyState >= 1 && Math.abs(v.currentTime - 1.0) < 0.05; }""")
    assert await p.evaluate("() => document.querySelector('video').videoWidth") == 96
    assert page.console_errors() == []


async def test_a_text_badcase_highlights_its_spans(page: Page, stack: Stack) -> None:
    require(stack, "bam")
    seeded = await seed(stack, f"spans-{uuid.uuid4().hex[:6]}")
    p = await open_badcase(page, stack, seeded["text"]["id"])
    await p.wait_for_selector("[data-preview=spans]")
    marks = await p.eval_on_selector_all("[data-preview=spans] p.spans mark", "ms => ms.map((m) => "
                                         "[m.closest('p').dataset.role, m.dataset.kind, m.firstChild.textContent])")
    assert marks == [["prediction", "matched", "Alice"], ["prediction", "wrong", "Paris"],
                     ["truth", "matched", "Alice"], ["truth", "missed", "Bob"]]
    assert (await p.text_content("p.spans[data-role=truth]")).startswith("AlicePER met BobPER in Paris.")
    assert page.console_errors() == []


async def test_a_tester_reports_an_audio_badcase_with_its_segment_in_the_form(page: Page, stack: Stack,
                                                                               tmp_path: Path) -> None:
    require(stack, "bam")
    function = f"form-audio-{uuid.uuid4().hex[:6]}"
    wav = tmp_path / "said.wav"
    wav.write_bytes(tone_wav(burst=(0.5, 1.25), freq=523.0))
    p = await open_as(page, stack, "tester", "#/badcases")
    form = "form[aria-label='Report a badcase']"
    await p.fill(f"{form} input[name=function]", function)
    await p.set_input_files(f"{form} input[name=file]", str(wav))
    await p.fill(f"{form} input[name=segment_start]", "0.5")
    await p.fill(f"{form} input[name=segment_end]", "1.25")
    await p.click(f"{form} button[type=submit]")
    await p.click(f"{form} p[role=status] a")
    await p.wait_for_selector(f"main h1:text('Badcase: {function}')")
    assert "0.50 s – 1.25 s, of 3.00 s" in await p.text_content("[data-field=segment]")
    await p.wait_for_function("""() => { const a = document.querySelector('[data-preview=audio] audio');
        return a && a.readyState >= 1 && Math.abs(a.currentTime - 0.5) < 0.05; }""")
    async with stack_client(stack, "viewer") as c:
        found = (await c.get("/api/bam/badcases", params={"function": function})).json()["items"]
    assert [(b["segment_start"], b["segment_end"], b["media_type"]) for b in found] == [(0.5, 1.25, "audio")]
    assert page.console_errors() == []


async def test_a_maintainer_sets_how_a_functions_segments_become_test_data(page: Page, stack: Stack) -> None:
    require(stack, "bam", "dam")
    function = f"convert-{uuid.uuid4().hex[:6]}"
    p = await open_as(page, stack, "maintainer", f"#/badcases?function={function}")
    form = "form[aria-label='Test data conversion']"
    await p.wait_for_selector(form)
    assert await p.get_attribute("[data-conversion]", "data-conversion") == "frames 1 "
    assert "(the defaults)" in await p.text_content("[data-conversion]")
    await p.select_option(f"{form} select[name=mode]", "clip")
    await p.fill(f"{form} input[name=sample_rate]", "16000")
    await p.click(f"{form} button[type=submit]")
    await p.wait_for_selector("[data-conversion='clip 1 16000']")
    assert "set by maintainer-user" in await p.text_content("[data-conversion]")
    async with stack_client(stack, "viewer") as c:
        got = (await c.get(f"/api/dam/test-data-conversions/{function}")).json()
    assert (got["video"]["mode"], got["audio"]["sample_rate"], got["is_default"]) == ("clip", 16000, False)
    # a viewer sees the setting, not the form
    await page.page.context.clear_cookies()
    p = await open_as(page, stack, "viewer", f"#/badcases?function={function}")
    await p.wait_for_selector("[data-conversion='clip 1 16000']")
    assert await p.query_selector(form) is None
    assert page.console_errors() == []


def npy(array: Any) -> bytes:
    import numpy as np

    out = io.BytesIO()
    np.save(out, np.asarray(array))
    return out.getvalue()


async def test_tensors_show_as_an_image_or_their_summary_and_a_csv_as_rows(page: Page, stack: Stack) -> None:
    require(stack, "bam", "dam")
    import numpy as np

    function = f"tensors-{uuid.uuid4().hex[:6]}"
    gradient = np.tile(np.linspace(0.0, 1.0, 16, dtype=np.float32), (16, 1))  # an image's shape: drawn
    async with stack_client(stack) as c:
        image = await report_with_file(c, {"function": function, "prediction": "3", "ground_truth": "3"}, "x.npy",
                                       npy(gradient), "application/octet-stream")
        vector = await report_with_file(c, {"function": function}, "v.npy", npy(np.arange(5, dtype=np.int64) - 2),
                                        "application/octet-stream")
        table, _ = await report_on_dam_file(c, {"function": function, "description": "a table"},
                                            f"rows-{uuid.uuid4().hex[:6]}.csv", b"name,score\nann,0.5\nbob,0.25\n",
                                            "text/csv", "text")
    assert image["preview"]["media_type"] == "tensor" and table["preview"]["source"] == "dam"
    p = await open_badcase(page, stack, image["id"])
    await p.wait_for_selector("figure.overlaid[data-loaded=true] .tag.right[data-role=prediction]")
    assert await p.evaluate("() => document.querySelector('figure.overlaid img').naturalWidth") >= 16
    await p.goto(f"{stack.url}/#/badcases/{vector['id']}")
    summary = await p.wait_for_selector("dl[data-preview=tensor]")
    assert "shape" in await summary.text_content() and "int64" in await summary.text_content()
    await p.goto(f"{stack.url}/#/badcases/{table['id']}")
    await p.wait_for_selector("[data-preview=table] table")
    cells = await p.eval_on_selector_all("[data-preview=table] tbody tr", "rs => rs.map((r) => [...r.cells].map((c) => "
                                         "c.textContent))")
    assert cells == [["ann", "0.5"], ["bob", "0.25"]]
    assert page.console_errors() == []
