"""Converters (the `mlife.converters` plugins): every built-in conforms as installed; Pascal VOC and YOLO import
(detected or named, files found by name without extension, YOLO's fractions put in pixels of the measured image)
and export round trip; Label Studio and COCO import what they export; bad input is a 422 that writes nothing; an
outside converter is found and used as a built-in is. DAM on PostgreSQL and NATS."""

from __future__ import annotations

import io
import json
import zipfile
from importlib.metadata import EntryPoint
from typing import Any

import httpx
import pytest

from mlife_shared.plugins import SEAMS, seams_of
from mlife_shared.plugins.registry import Plugins
from mlife_shared.plugins.seams.converters import ConversionError, ExportDocument, Imported
from mlife_shared.plugins.testing import check_installed
from tests.dam.helpers import png, zip_bytes
from tests.dam.test_documents import upload

BUILTINS = ["csv", "tsv", "json", "xml", "labelstudio", "coco", "voc", "yolo"]
BOX = {"label": "cat", "x": 2.0, "y": 1.0, "width": 4.0, "height": 3.0}


class Lines:
    """An outside converter: one `md5 label` pair a line."""

    name, api, description = "lines", ">=1,<2", "one 'md5 label' pair a line"
    media_type, extension, imports, exports = "text/plain", "txt", True, True

    def detect(self, data: bytes, content_type: str | None) -> int:
        return 0

    def read(self, data: bytes, options: dict[str, str]) -> Imported:
        rows = []
        for n, line in enumerate(data.decode().splitlines(), start=1):
            md5, _, label = line.partition(" ")
            if not label:
                raise ConversionError("each line is 'md5 label'", row=n)
            rows.append({"md5": md5, "annotation": label})
        return Imported(columns=["md5", "annotation"], rows=rows)

    def write(self, document: ExportDocument) -> bytes:
        return "".join(f"{r.md5} {r.label}\n" for r in document.rows).encode()


class Crashes(Lines):
    name = "crashes"

    def read(self, data: bytes, options: dict[str, str]) -> Imported:
        raise KeyError("the plugin's own bug")


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_converter_conforms_as_installed(name: str) -> None:
    check_installed("converters", name)


def with_outside(dam: httpx.AsyncClient) -> None:
    """DAM's registry as when a package adds these converters (entry points of mlife.converters)."""
    group = SEAMS["converters"].group
    found = {s: [] for s in seams_of("dam")}
    found["converters"] = [EntryPoint(n, v, group) for n, v in [*((n, f"dam.document.formats.{m}") for n, m in [
        ("csv", "tabular:Csv"), ("json", "tabular:Json"), ("yolo", "yolo:Yolo")]),
        ("lines", f"{__name__}:Lines"), ("crashes", f"{__name__}:Crashes")]]
    dam.app.state.plugins = Plugins(seams_of("dam"), found)  # type: ignore[attr-defined]


async def images(dam: httpx.AsyncClient) -> dict[str, str]:
    """Two images uploaded under folders: a 20x10 and a 40x30."""
    return {"a": await upload(dam, png(20, 10, seed=1), "images/train/a.png"),
            "b": await upload(dam, png(40, 30, seed=2), "images/val/b.jpg")}


def voc(filename: str, boxes: list[tuple[str, int, int, int, int]]) -> bytes:
    objects = "".join(f"<object><name>{n}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
                      f"<ymax>{y1}</ymax></bndbox></object>" for n, x0, y0, x1, y1 in boxes)
    return (f"<annotation><folder>images</folder><filename>{filename}</filename><size><width>20</width>"
            f"<height>10</height><depth>3</depth></size>{objects}</annotation>").encode()


async def rows(dam: httpx.AsyncClient, doc_id: str) -> dict[str, Any]:
    r = await dam.get(f"/documents/{doc_id}/rows")
    assert r.status_code == 200, r.text
    return {x["md5"]: x for x in r.json()["items"]}


async def imported(dam: httpx.AsyncClient, name: str, body: bytes, **params: str) -> str:
    r = await dam.post("/documents", params={"name": name, **params}, content=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def unzip(body: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        return {n: zf.read(n).decode() for n in zf.namelist()}


async def test_pascal_voc_zip_is_detected_matched_by_file_name_and_exports_back(dam: httpx.AsyncClient) -> None:
    m = await images(dam)
    body = zip_bytes({"Annotations/a.xml": voc("a.png", [("cat", 2, 1, 6, 4), ("dog", 0, 0, 10, 10)]),
                      "Annotations/b.xml": voc("b.jpg", [])})
    doc_id = await imported(dam, "voc", body)
    got = await rows(dam, doc_id)
    assert got[m["a"]]["path"] == "images/train/a.png" and got[m["b"]]["path"] == "images/val/b.jpg"
    assert got[m["a"]]["annotation"]["boxes"] == [BOX, {"label": "dog", "x": 0.0, "y": 0.0, "width": 10.0,
                                                          "height": 10.0}]
    assert got[m["a"]]["label"] == "cat" and got[m["b"]]["annotation"] == {"boxes": []}

    r = await dam.get(f"/documents/{doc_id}/export", params={"format": "voc"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip", r.text
    assert 'filename="voc-v1.zip"' in r.headers["content-disposition"]
    files = unzip(r.content)
    assert sorted(files) == ["Annotations/a.xml", "Annotations/b.xml"]
    assert "<xmin>2</xmin>" in files["Annotations/a.xml"] and f"<md5>{m['a']}</md5>" in files["Annotations/a.xml"]
    again = await rows(dam, await imported(dam, "voc-again", r.content, format="voc"))
    assert {k: v["annotation"] for k, v in again.items()} == {k: v["annotation"] for k, v in got.items()}

    one = await imported(dam, "voc-one", voc("a.png", [("cat", 2, 1, 6, 4)]))  # one XML, detected as VOC
    assert (await rows(dam, one))[m["a"]]["annotation"] == {"boxes": [BOX]}


async def test_yolo_labels_become_pixel_boxes_and_export_as_classes_and_labels(dam: httpx.AsyncClient) -> None:
    m = await images(dam)
    body = zip_bytes({"classes.txt": b"cat\ndog\n", "labels/train/a.txt": b"0 0.2 0.25 0.2 0.3\n",
                      f"labels/{m['b']}.txt": b"1 0.5 0.5 0.5 1.0\n0 0.1 0.1 0.2 0.2\n"})
    doc_id = await imported(dam, "yolo", body)
    got = await rows(dam, doc_id)
    assert got[m["a"]]["annotation"]["boxes"] == [pytest.approx(BOX)]
    assert got[m["b"]]["annotation"]["boxes"][0] == {"label": "dog", "x": 10.0, "y": 0.0, "width": 20.0,
                                                     "height": 30.0}
    assert got[m["b"]]["label"] in ("cat", "dog") and got[m["a"]]["path"] == "images/train/a.png"

    r = await dam.get(f"/documents/{doc_id}/export", params={"format": "yolo"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip", r.text
    files = unzip(r.content)
    assert files["classes.txt"] == "cat\ndog\n"
    assert files["labels/a.txt"] == "0 0.200000 0.250000 0.200000 0.300000\n"
    # b was named by its MD5 (no path): its label file is too
    assert files[f"labels/{m['b']}.txt"].splitlines()[0] == "1 0.500000 0.500000 0.500000 1.000000"
    again = await rows(dam, await imported(dam, "yolo-again", r.content, format="yolo"))
    assert again[m["a"]]["annotation"]["boxes"][0]["width"] == pytest.approx(4.0)
    assert again[m["b"]]["annotation"] == got[m["b"]]["annotation"]

    named = zip_bytes({"labels/a.txt": b"1 0.5 0.5 1 1\n"})  # the class list as a parameter
    assert (await rows(dam, await imported(dam, "yolo-named", named, classes="cat,dog")))[m["a"]]["label"] == "dog"


async def document_names(dam: httpx.AsyncClient) -> list[str]:
    return [d["name"] for d in (await dam.get("/documents")).json()]


@pytest.mark.parametrize(("body", "params", "says"), [
    (zip_bytes({"labels/a.txt": b"0 0.5 0.5 0.1 0.1\n"}), {}, "classes.txt"),
    (zip_bytes({"classes.txt": b"cat\n", "labels/a.txt": b"3 0.5 0.5 0.1 0.1\n"}), {}, "class index 3"),
    (zip_bytes({"classes.txt": b"cat\n", "labels/a.txt": b"0 0.5 0.5 0.1\n"}), {}, "5 values"),
    (zip_bytes({"classes.txt": b"cat\n", "labels/a.txt": b"0 1.5 0.5 2 0.1\n"}), {}, "fractions of the image"),
    (zip_bytes({"classes.txt": b"cat\n", "labels/nobody.txt": b"0 0.5 0.5 0.1 0.1\n"}), {}, "no uploaded file"),
    (zip_bytes({"a.xml": voc("a.png", [("cat", 5, 1, 2, 4)])}), {}, "smaller than xmin"),
    (zip_bytes({"a.xml": b"<annotation><filename>a.png</filename><object><name>x</name><bndbox><xmin>nan"
                         b"</xmin><ymin>0</ymin><xmax>1</xmax><ymax>1</ymax></bndbox></object></annotation>"}),
     {}, "not finite"),
    (b'<!DOCTYPE a [<!ENTITY e "x">]><annotation><filename>&e;</filename></annotation>', {"format": "voc"},
     "DTDs, entities"),
    (b"not a zip", {"format": "yolo"}, "zip"),
    (json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [
        {"image_id": 1, "category_id": 9, "bbox": [0, 0, 1, 1]}], "categories": []}).encode(), {}, "category 9"),
    (b"x", {"format": "pdf"}, "'pdf' is not installed"),
])
async def test_bad_input_is_a_422_that_says_what_to_fix_and_writes_nothing(
        dam: httpx.AsyncClient, body: bytes, params: dict[str, str], says: str) -> None:
    await images(dam)
    r = await dam.post("/documents", params={"name": "bad", **params}, content=body)
    assert r.status_code == 422 and says in r.text, r.text
    assert "bad" not in await document_names(dam)


async def test_a_name_several_uploads_have_is_refused_with_them(dam: httpx.AsyncClient) -> None:
    await upload(dam, png(8, 8, seed=5), "x/cat.png")
    await upload(dam, png(8, 8, seed=6), "y/cat.png")
    r = await dam.post("/documents", params={"name": "twice"},
                       content=zip_bytes({"Annotations/cat.xml": voc("cat.png", [])}))
    assert r.status_code == 422 and "x/cat.png, y/cat.png" in r.text, r.text
    ok = await dam.post("/documents", params={"name": "once"},
                        content=zip_bytes({"Annotations/cat.xml": voc("y/cat.png", [])}))
    assert ok.status_code == 201, ok.text


async def test_label_studio_and_coco_import_what_they_export(dam: httpx.AsyncClient) -> None:
    m = await images(dam)
    doc = [{"md5": m["a"], "annotation": {"boxes": [BOX]}, "place": "Paris"},
           {"md5": m["b"], "annotation": "dog", "place": "Lyon"}]
    doc_id = await imported(dam, "pets", json.dumps(doc).encode())
    back = {}
    for fmt in ("labelstudio", "coco"):
        exported = await dam.get(f"/documents/{doc_id}/export", params={"format": fmt})
        assert exported.status_code == 200, exported.text
        back[fmt] = await rows(dam, await imported(dam, f"pets-{fmt}", exported.content))  # detected
        assert back[fmt][m["a"]]["annotation"]["boxes"] == [pytest.approx(BOX)], fmt
    assert back["labelstudio"][m["b"]]["annotation"] == "dog"
    assert back["labelstudio"][m["b"]]["extra"] == {"place": "Lyon"}
    # as Label Studio exports them: id and annotations before data
    annotated = [{"id": 7, "annotations": [{"id": 1, "result": [{"value": {"choices": ["bird"]}}]},
                                           {"id": 2, "was_cancelled": True, "result": [{"value": {"choices": ["cow"]}}]}],
                  "data": {"image": f"http://ls/api/dam/files/{m['b']}/content"},
                  "predictions": [{"result": [{"value": {"choices": ["dog"]}}]}]},
                 {"data": {"image": "/data/upload/1/a.png"}, "predictions": [{"result": [
                     {"original_width": 20, "original_height": 10, "value": {
                         "x": 10, "y": 10, "width": 20, "height": 30, "rectanglelabels": ["cat"]}}]}]}]
    got = await rows(dam, await imported(dam, "ls-annotated", json.dumps(annotated).encode()))
    assert got[m["b"]]["annotation"] == "bird"  # the latest annotation not cancelled, before any prediction
    assert got[m["a"]]["path"] == "images/train/a.png" and got[m["a"]]["annotation"] == {"boxes": [BOX]}


async def test_a_plain_table_has_no_per_image_export(dam: httpx.AsyncClient) -> None:
    doc_id = await imported(dam, "wine", b"alcohol,label\n11.5,1\n", kind="table")
    for fmt in ("voc", "yolo", "coco", "labelstudio"):
        r = await dam.get(f"/documents/{doc_id}/export", params={"format": fmt})
        assert r.status_code == 422 and "plain table" in r.text, (fmt, r.text)
    tsv = await dam.get(f"/documents/{doc_id}/export", params={"format": "tsv"})
    assert tsv.text.splitlines() == ["alcohol\tlabel", "11.5\t1"]
    again = await imported(dam, "wine-again", tsv.content, kind="table")  # TSV imports too (detected)
    assert (await dam.get(f"/documents/{again}/rows")).json()["items"][0]["features"] == {"alcohol": 11.5}


async def test_an_outside_converter_is_used_as_a_builtin_and_its_failures_are_422(dam: httpx.AsyncClient) -> None:
    m = await images(dam)
    with_outside(dam)
    body = f"{m['a']} cat\n{m['b']} dog\n".encode()
    doc_id = await imported(dam, "lines", body, format="lines")
    assert {k: v["annotation"] for k, v in (await rows(dam, doc_id)).items()} == {m["a"]: "cat", m["b"]: "dog"}
    r = await dam.get(f"/documents/{doc_id}/export", params={"format": "lines"})
    assert r.status_code == 200 and r.text == body.decode() and r.headers["content-type"].startswith("text/plain")
    assert 'filename="lines-v1.txt"' in r.headers["content-disposition"]

    bad = await dam.post("/documents", params={"name": "x", "format": "lines"}, content=b"only-one-field\n")
    assert bad.status_code == 422 and bad.json()["detail"] == {"row": 1, "message": "each line is 'md5 label'"}
    crash = await dam.post("/documents", params={"name": "x", "format": "crashes"}, content=body)
    assert crash.status_code == 422 and "the plugin's own bug" in crash.text, crash.text
    gone = await dam.get(f"/documents/{doc_id}/export", params={"format": "voc"})  # not installed here
    assert gone.status_code == 422 and "active ones: crashes, csv, json, lines, yolo" in gone.text, gone.text
    unknown = await dam.post("/documents", params={"name": "x"}, content=b"\x00\x01")
    assert unknown.status_code == 422 and "not recognised" in unknown.text
    assert "x" not in await document_names(dam)
