"""Pascal VOC: one XML a image (`<annotation>` with filename, size and an `<object>` a box: name and bndbox
xmin/ymin/xmax/ymax in pixels). Import reads one XML or a zip of them; export writes a zip of
`Annotations/<image stem>.xml` (with DAM's `<md5>` beside `<filename>`, so it imports back by MD5). A row's class
without boxes has no VOC form: its XML has no object."""

from __future__ import annotations

import math
from pathlib import PurePosixPath
from typing import Any
from xml.etree import ElementTree as ET

from dam.document.formats import archive, boxes
from dam.document.formats.tabular import head, parse_xml
from mlife_shared.plugins.seams.converters import ConversionError, ExportDocument, Imported, Row


def _number(el: ET.Element, tag: str, where: str) -> float:
    found = el.findtext(tag)
    try:
        value = float((found or "").strip())
    except ValueError as exc:
        raise ConversionError(f"{where}: <{tag}> must be a number, not {found!r}") from exc
    if not math.isfinite(value):
        raise ConversionError(f"{where}: <{tag}> is not finite")
    return value


def _row(name: str, data: bytes) -> dict[str, Any]:
    root = parse_xml(data)
    if root.tag != "annotation":
        raise ConversionError(f"{name}: a VOC file's root is <annotation>, not <{root.tag}>")
    filename = (root.findtext("filename") or "").strip()
    md5 = (root.findtext("md5") or "").strip() or None
    if not filename and not md5:
        raise ConversionError(f"{name}: <filename> names no image")
    found = []
    for i, obj in enumerate(root.iter("object"), start=1):
        label = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not label or box is None:
            raise ConversionError(f"{name}: object {i} needs a <name> and a <bndbox>")
        where = f"{name}, object {i}"
        x0, y0, x1, y1 = (_number(box, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
        if x1 < x0 or y1 < y0:
            raise ConversionError(f"{where}: xmax/ymax are smaller than xmin/ymin")
        found.append({"label": label, "x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0})
    return {"md5": md5, "path": filename or None, "annotation": {"boxes": found}}


def _xml(r: Row, n: int) -> bytes:
    root = ET.Element("annotation")
    path = PurePosixPath(r.path) if r.path else None
    ET.SubElement(root, "folder").text = str(path.parent) if path and str(path.parent) != "." else ""
    ET.SubElement(root, "filename").text = path.name if path else (r.md5 or "")
    if r.md5:
        ET.SubElement(root, "md5").text = r.md5
    size = ET.SubElement(root, "size")
    f = r.file
    for tag, dim in (("width", f.width if f else None), ("height", f.height if f else None), ("depth", 3)):
        ET.SubElement(size, tag).text = str(dim or 0)
    for b in boxes.boxes(r.annotation):
        x, y, w, h = boxes.in_pixels(r, b, n)
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = str(b["label"])
        for tag, value in (("pose", "Unspecified"), ("truncated", 0), ("difficult", 0)):
            ET.SubElement(obj, tag).text = str(value)
        bnd = ET.SubElement(obj, "bndbox")
        for tag, v in (("xmin", x), ("ymin", y), ("xmax", x + w), ("ymax", y + h)):
            ET.SubElement(bnd, tag).text = str(boxes.number(v))
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


class PascalVoc:
    name = "voc"
    api = ">=1,<2"
    description = "Pascal VOC XML, one file a image (import one XML or a zip of them; export a zip)"
    media_type = "application/zip"
    extension = "zip"
    imports = exports = True

    def detect(self, data: bytes, content_type: str | None) -> int:
        if archive.is_zip(data):
            found = archive.names(data)
            return 80 if found and any(n.lower().endswith(".xml") for n in found) else 0
        start = head(data)
        return 85 if start[:1] == b"<" and b"<annotation" in start and b"<bndbox" in data else 0

    def read(self, data: bytes, options: dict[str, str]) -> Imported:
        files = archive.read(data, (".xml",)) if archive.is_zip(data) else {"the XML": data}
        if not files:
            raise ConversionError("the zip holds no .xml file (one Pascal VOC XML a image)")
        rows = []
        for n, name in enumerate(sorted(files), start=1):
            try:
                rows.append(_row(name, files[name]))
            except ConversionError as exc:
                raise ConversionError(exc.message, row=n) from exc
        return Imported(columns=["md5", "path", "annotation"], rows=rows, match="stem")

    def write(self, document: ExportDocument) -> bytes:
        if document.kind == "table":
            raise ConversionError("a plain table has no images to export as Pascal VOC; use csv, tsv, json or xml")
        stems = archive.stems([r.path for r in document.rows], [r.md5 for r in document.rows])
        return archive.write({f"Annotations/{s}.xml": _xml(r, n)
                              for n, (s, r) in enumerate(zip(stems, document.rows, strict=True), start=1)})
