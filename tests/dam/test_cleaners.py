"""The built-in cleaners on real images (Pillow), each through its entry point, and on upload: the findings come
with the answer and stay on the file record; a bad file is flagged, never refused."""

from __future__ import annotations

import io
import random

import httpx
import pytest
from PIL import Image, ImageFilter

from dam.quality.cleaners import dhash
from mlife_shared.plugins.seams.cleaners import Context, Item
from mlife_shared.plugins.testing import check_installed
from tests.dam.helpers import md5, zip_bytes

BUILTINS = ["unreadable", "blank", "tiny_file", "label_outside_classes", "near_duplicates"]


def picture(seed: int, size: tuple[int, int] = (96, 64), fmt: str = "PNG", **save: object) -> bytes:
    """A noisy, blurred picture: structure a perceptual hash sees, different for every seed."""
    rnd = random.Random(seed)
    img = Image.new("RGB", (12, 8))
    img.putdata([(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)) for _ in range(96)])
    img = img.resize(size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(1))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def flat(value: int = 200, size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (value, value, value)).save(buf, format="PNG")
    return buf.getvalue()


def item(data: bytes, *, labels: tuple[str, ...] = (), position: int | None = None) -> Item:
    with Image.open(io.BytesIO(data)) as img:
        w, h = img.size
    return Item(md5=md5(data), path=f"p{position}.png", media_type="image", size=len(data), width=w, height=h,
                data=data, labels=labels, position=position)


@pytest.mark.parametrize("name", BUILTINS)
def test_each_builtin_is_installed_and_conforms(name: str) -> None:
    check_installed("cleaners", name)


def codes(name: str, items: list[Item], context: Context | None = None) -> dict[str | None, list[str]]:
    out: dict[str | None, list[str]] = {}
    for f in check_installed("cleaners", name).check(items, context or Context()):
        out.setdefault(f.md5, []).append(f.code)
    return out


def test_unreadable_blank_and_tiny() -> None:
    good, blank = picture(1), flat()
    truncated = good[: len(good) // 2]
    items = [item(good), item(blank), Item(md5=md5(truncated), media_type="image", size=len(truncated), data=truncated)]
    assert codes("unreadable", items) == {md5(truncated): ["unreadable_image"]}
    assert codes("blank", items) == {md5(blank): ["blank_image"]}
    tiny_img = flat(size=(4, 4))
    tiny = [Item(md5="a" * 32, media_type="text", size=0), Item(md5="b" * 32, media_type="text", size=10),
            item(tiny_img), item(good)]
    assert codes("tiny_file", tiny) == {"a" * 32: ["empty_file"], "b" * 32: ["tiny_file"],
                                        md5(tiny_img): ["tiny_image"] if len(tiny_img) >= 64 else ["tiny_file"]}


def test_label_outside_the_class_list_only_with_a_list() -> None:
    rows = [item(picture(2), labels=("cat",), position=0), item(picture(3), labels=("cat", "zebra"), position=1)]
    assert codes("label_outside_classes", rows) == {}
    found = check_installed("cleaners", "label_outside_classes").check(rows, Context("document", ("cat", "dog")))
    assert [(f.position, f.code) for f in found] == [(1, "label_outside_classes")]
    assert "'zebra'" in found[0].message and "cat, dog" in found[0].message


def test_near_duplicates_by_perceptual_hash() -> None:
    original = picture(7)
    as_jpeg = picture(7, fmt="JPEG", quality=70)          # same picture, other bytes
    smaller = picture(7, size=(72, 48))                    # same picture, resized
    other, another = picture(8), picture(9)
    assert (dhash(Image.open(io.BytesIO(original))) ^ dhash(Image.open(io.BytesIO(other)))).bit_count() > 4
    items = [item(original, position=0), item(as_jpeg, position=1), item(smaller, position=2), item(other, position=3),
             item(another, position=4)]
    found = {f.md5: f for f in check_installed("cleaners", "near_duplicates").check(items, Context())}
    assert set(found) == {md5(original), md5(as_jpeg), md5(smaller)}
    assert set(found[md5(original)].related) == {md5(as_jpeg), md5(smaller)}
    assert codes("near_duplicates", [item(original)]) == {}  # one image alone has no twin


async def test_upload_carries_the_findings_and_keeps_the_file(dam: httpx.AsyncClient) -> None:
    blank = flat(17)
    r = await dam.post("/files", content=blank, params={"name": "cam/blank.png"})
    assert r.status_code == 201, r.text
    assert [(f["cleaner"], f["code"], f["severity"]) for f in r.json()["findings"]] == [("blank", "blank_image",
                                                                                         "warning")]
    broken = picture(3)[:300]
    r = await dam.post("/files", content=broken)
    assert r.status_code == 201 and r.json()["media_type"] == "image"  # flagged, not refused
    assert [f["code"] for f in r.json()["findings"]] == ["unreadable_image"]
    stored = (await dam.get(f"/files/{md5(broken)}")).json()
    assert [f["code"] for f in stored["findings"]] == ["unreadable_image"]
    assert (await dam.get(f"/files/{md5(broken)}/content")).content == broken
    good = picture(4)
    r = await dam.post("/files", content=good)
    assert r.status_code == 201 and r.json()["findings"] == []
    again = await dam.post("/files", content=blank)
    assert again.status_code == 200 and [f["code"] for f in again.json()["findings"]] == ["blank_image"]


async def test_an_archive_upload_finds_near_duplicates_among_its_files(dam: httpx.AsyncClient) -> None:
    a, b, c = picture(11), picture(11, fmt="JPEG", quality=80), picture(12)
    r = await dam.post("/files/archive", content=zip_bytes({"x/a.png": a, "x/b.jpg": b, "x/c.png": c}))
    assert r.status_code == 201, r.text
    by_name = {f["path"]: f["findings"] for f in r.json()["files"]}
    assert [(f["code"], f["related"]) for f in by_name["x/a.png"]] == [("near_duplicate", [md5(b)])]
    assert [(f["code"], f["related"]) for f in by_name["x/b.jpg"]] == [("near_duplicate", [md5(a)])]
    assert by_name["x/c.png"] == []
    listed = {f["md5"]: f["findings"] for f in (await dam.get("/files")).json()}
    assert [f["code"] for f in listed[md5(a)]] == ["near_duplicate"]
