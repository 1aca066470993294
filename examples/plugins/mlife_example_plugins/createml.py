"""Apple Create ML's object-detection annotations: one JSON list, an entry per image with its boxes given by their
centre, width and height in pixels::

    [{"image": "img7.jpg", "annotations": [{"label": "cat", "coordinates": {"x": 60, "y": 40, "width": 40, "height": 30}}]}]

Import makes a DAM row per image (its file found by the image's name without extension, wherever it was uploaded)
with the boxes as DAM keeps them (top-left corner, pixels); export writes the same list back. A row without boxes
is written with no annotations (Create ML has no image-level label in this format)."""

from __future__ import annotations

import json
from typing import Any

from mlife_shared.plugins.seams.converters import ConversionError, ExportDocument, Imported


def _number(value: Any, what: str, row: int, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConversionError(f"{what} must be a number, not {json.dumps(value)}", row=row)
    if value < 0 or (positive and value == 0):
        raise ConversionError(f"{what} must be {'above' if positive else 'at least'} 0, not {value}", row=row)
    return float(value)


def _box(annotation: Any, row: int) -> dict[str, Any]:
    if not isinstance(annotation, dict) or not isinstance(annotation.get("coordinates"), dict):
        raise ConversionError("an annotation is {\"label\": …, \"coordinates\": {\"x\", \"y\", \"width\", \"height\"}}",
                              row=row)
    label, c = annotation.get("label"), annotation["coordinates"]
    if not isinstance(label, str) or not label.strip():
        raise ConversionError("an annotation needs a label (a non-empty string)", row=row)
    cx, cy = _number(c.get("x"), "coordinates.x", row), _number(c.get("y"), "coordinates.y", row)
    w = _number(c.get("width"), "coordinates.width", row, positive=True)
    h = _number(c.get("height"), "coordinates.height", row, positive=True)
    return {"label": label, "x": max(cx - w / 2, 0.0), "y": max(cy - h / 2, 0.0), "width": w, "height": h}


def _entries(data: bytes) -> list[Any] | None:
    """The body's top-level list, or None when it is no JSON list."""
    if data.lstrip()[:1] != b"[":
        return None
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return parsed if isinstance(parsed, list) else None


class CreateML:
    name = "createml"
    api = ">=1,<2"
    description = "Apple Create ML object-detection JSON (boxes by centre, width and height in pixels)"
    media_type = "application/json"
    extension = "json"
    imports = True
    exports = True

    def detect(self, data: bytes, content_type: str | None) -> int:
        entries = _entries(data)
        if not entries or not all(isinstance(e, dict) for e in entries[:20]):
            return 0
        return 95 if all({"image", "annotations"} <= e.keys() for e in entries[:20]) else 0

    def read(self, data: bytes, options: dict[str, str]) -> Imported:
        entries = _entries(data)
        if entries is None:
            raise ConversionError("a Create ML document is a JSON list of {\"image\": …, \"annotations\": […]}")
        rows = []
        for n, entry in enumerate(entries, start=1):
            if not isinstance(entry, dict) or not isinstance(entry.get("image"), str) or not entry["image"]:
                raise ConversionError("each entry needs \"image\": the image's file name", row=n)
            annotations = entry.get("annotations", [])
            if not isinstance(annotations, list):
                raise ConversionError("\"annotations\" must be a list", row=n)
            rows.append({"path": entry["image"], "annotation": {"boxes": [_box(a, n) for a in annotations]}})
        return Imported(columns=["path", "annotation"], rows=rows, match="stem")

    def write(self, document: ExportDocument) -> bytes:
        out = []
        for row in document.rows:
            boxes = row.annotation.get("boxes") if isinstance(row.annotation, dict) else None
            out.append({"image": row.path or row.md5 or "", "annotations": [
                {"label": b["label"], "coordinates": {"x": b["x"] + b["width"] / 2, "y": b["y"] + b["height"] / 2,
                                                      "width": b["width"], "height": b["height"]}}
                for b in boxes or [] if isinstance(b, dict) and {"label", "x", "y", "width", "height"} <= b.keys()]})
        return json.dumps(out, indent=1).encode()
