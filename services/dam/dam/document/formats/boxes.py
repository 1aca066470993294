"""Boxes of an annotation (`{"boxes": [{"label", "x", "y", "width", "height", "unit"?}]}`) in the units a format
needs: pixels (COCO, VOC) or fractions of the image (YOLO). A box in percent or fractions needs the image size for
pixels; a box in pixels needs it for fractions."""

from __future__ import annotations

import math
from typing import Any

from mlife_shared.plugins.seams.converters import ConversionError, Row

SCALE = {"percent": 100.0, "normalized": 1.0}


def boxes(annotation: Any) -> list[dict[str, Any]]:
    found = annotation.get("boxes") if isinstance(annotation, dict) else None
    return [b for b in found if isinstance(b, dict) and b.get("label") is not None] if isinstance(found, list) else []


def _numbers(b: dict[str, Any], row: int) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(b.get(k, 0)) for k in ("x", "y", "width", "height"))
    except (TypeError, ValueError) as exc:
        raise ConversionError(f"a box of label {b.get('label')!r} has a coordinate that is no number", row=row) from exc
    if not all(math.isfinite(v) for v in values):
        raise ConversionError(f"a box of label {b.get('label')!r} has a coordinate that is not finite", row=row)
    x, y, w, h = values
    return x, y, w, h


def _size(r: Row, row: int, why: str) -> tuple[int, int]:
    if r.file is None or not r.file.width or not r.file.height:
        raise ConversionError(f"{why} needs the image size, which DAM does not know for {r.path or r.md5}", row=row)
    return r.file.width, r.file.height


def in_pixels(r: Row, b: dict[str, Any], row: int) -> tuple[float, float, float, float]:
    x, y, w, h = _numbers(b, row)
    scale = SCALE.get(str(b.get("unit")))
    if scale is None:
        return x, y, w, h
    iw, ih = _size(r, row, f"a box in {b.get('unit')}")
    return x * iw / scale, y * ih / scale, w * iw / scale, h * ih / scale


def in_fractions(r: Row, b: dict[str, Any], row: int) -> tuple[float, float, float, float]:
    x, y, w, h = _numbers(b, row)
    scale = SCALE.get(str(b.get("unit")))
    if scale is not None:
        return x / scale, y / scale, w / scale, h / scale
    iw, ih = _size(r, row, "a box in pixels written as fractions of the image")
    return x / iw, y / ih, w / iw, h / ih


def number(v: float) -> int | float:
    """A coordinate as written: an integer when it is one, else rounded to 1/1000 of a pixel."""
    return int(v) if float(v).is_integer() else round(v, 3)
