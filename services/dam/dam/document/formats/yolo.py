"""YOLO detection labels: a zip of `classes.txt` (one class a line; its line number is the class index) and
`labels/<image stem>.txt`, one box a line: `class cx cy w h`, centre and size as fractions (0..1) of the image.
Import takes the class list from `classes.txt` in the zip, or the `classes` option (`a,b,c`), and gives boxes in
fractions that DAM turns into pixels from each image's measured size; a label file is matched to the upload of
the same name (its path under `labels/`, without extension; a file named by its MD5 is that file). Export needs
every image's size (DAM measures it at upload)."""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath
from typing import Any

from dam.document.formats import archive, boxes
from mlife_shared.plugins.seams.converters import ConversionError, ExportDocument, Imported

MD5 = re.compile(r"^[0-9a-f]{32}$")
CLASS_FILES = ("classes.txt", "obj.names")


def _classes(files: dict[str, bytes], options: dict[str, str]) -> list[str]:
    if options.get("classes"):
        return [c.strip() for c in options["classes"].split(",") if c.strip()]
    for name, data in files.items():
        if PurePosixPath(name).name in CLASS_FILES:
            return [c.strip() for c in archive.text(name, data).splitlines() if c.strip()]
    raise ConversionError("YOLO labels need their class list: put classes.txt (one class a line) in the zip, or "
                          "pass classes=a,b,c")


def _where(name: str) -> str:
    """The file a label file is about: its path under labels/ without extension (or its MD5)."""
    p = PurePosixPath(name)
    parts = p.parts[p.parts.index("labels") + 1:] if "labels" in p.parts[:-1] else (p.name,)
    return str(PurePosixPath(*parts).with_suffix(""))


def _box(line: str, classes: list[str], where: str) -> dict[str, Any]:
    fields = line.split()
    if len(fields) != 5:
        raise ConversionError(f"{where}: a line is 'class cx cy w h' (5 values), not {len(fields)} values "
                              "(segments and keypoints are not boxes)")
    try:
        index = int(fields[0])
        cx, cy, w, h = (float(v) for v in fields[1:])
    except ValueError as exc:
        raise ConversionError(f"{where}: {line.strip()!r} is not 'class cx cy w h' numbers") from exc
    if not 0 <= index < len(classes):
        raise ConversionError(f"{where}: the class index {index} is not in the class list (0..{len(classes) - 1}: "
                              f"{', '.join(classes[:20])})")
    if not all(math.isfinite(v) and -0.001 <= v <= 1.001 for v in (cx, cy, w, h)):
        raise ConversionError(f"{where}: {line.strip()!r}: coordinates are fractions of the image, 0..1")
    return {"label": classes[index], "x": cx - w / 2, "y": cy - h / 2, "width": w, "height": h, "unit": "normalized"}


class Yolo:
    name = "yolo"
    api = ">=1,<2"
    description = "YOLO detection labels: a zip of classes.txt and labels/<image>.txt (class cx cy w h, fractions)"
    media_type = "application/zip"
    extension = "zip"
    imports = exports = True

    def detect(self, data: bytes, content_type: str | None) -> int:
        found = [n for n in archive.names(data) if n.lower().endswith(".txt")]
        return 80 if found and any(PurePosixPath(n).name in CLASS_FILES or "labels/" in n for n in found) else 0

    def read(self, data: bytes, options: dict[str, str]) -> Imported:
        if not archive.is_zip(data):
            raise ConversionError("YOLO labels are imported as a zip of classes.txt and labels/<image>.txt")
        files = archive.read(data, (".txt", ".names"))
        classes = _classes(files, options)
        rows = []
        for n, name in enumerate(sorted(k for k in files if PurePosixPath(k).name not in CLASS_FILES), start=1):
            where = _where(name)
            try:
                found = [_box(line, classes, name) for line in archive.text(name, files[name]).splitlines()
                         if line.strip()]
            except ConversionError as exc:
                raise ConversionError(exc.message, row=n) from exc
            md5 = where if MD5.match(PurePosixPath(where).name) else None
            rows.append({"md5": PurePosixPath(where).name if md5 else None, "path": None if md5 else where,
                         "annotation": {"boxes": found}})
        if not rows:
            raise ConversionError("the zip holds no label file (labels/<image>.txt)")
        return Imported(columns=["md5", "path", "annotation"], rows=rows, match="stem")

    def write(self, document: ExportDocument) -> bytes:
        if document.kind == "table":
            raise ConversionError("a plain table has no images to export as YOLO labels; use csv, tsv, json or xml")
        classes = sorted({str(b["label"]) for r in document.rows for b in boxes.boxes(r.annotation)})
        index = {c: i for i, c in enumerate(classes)}
        stems = archive.stems([r.path for r in document.rows], [r.md5 for r in document.rows])
        entries = {"classes.txt": "".join(f"{c}\n" for c in classes).encode()}
        for n, (stem, r) in enumerate(zip(stems, document.rows, strict=True), start=1):
            lines = []
            for b in boxes.boxes(r.annotation):
                x, y, w, h = boxes.in_fractions(r, b, n)
                lines.append(f"{index[str(b['label'])]} {x + w / 2:.6f} {y + h / 2:.6f} {w:.6f} {h:.6f}\n")
            entries[f"labels/{stem}.txt"] = "".join(lines).encode()
        return archive.write(entries)
