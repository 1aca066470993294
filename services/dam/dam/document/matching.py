"""What an import's rows need from DAM's files beyond an exact MD5 or path: a file found by its name without
extension (`Imported.match == "stem"`: VOC's filename, a YOLO label file, a COCO file_name), and boxes given in
fractions of the image (`"unit": "normalized"`, YOLO) turned into pixels from the size DAM measured."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import PurePosixPath
from typing import Any

from dam.file.models import File


def _without_suffix(path: str) -> str:
    p = PurePosixPath(path)
    return str(p.with_suffix("")) if p.suffix else path


def _matches(hint: str, upload: str) -> bool:
    """The upload `a/b/img7.png` is named by `img7`, `img7.jpg`, `b/img7` or `a/b/img7.png`."""
    stem = _without_suffix(upload)
    return any(stem == h or stem.endswith("/" + h) for h in {hint, _without_suffix(hint)})


def needle(hint: str) -> str:
    """The text every upload a hint may name contains (its file name without extension)."""
    return PurePosixPath(_without_suffix(hint)).name or hint


def by_stem(hints: Collection[str], candidates: Iterable[tuple[str, str]]
            ) -> tuple[dict[str, tuple[str, str]], dict[str, list[str]]]:
    """({hint: (md5, path)} of the hints naming exactly one file, {hint: the paths} of those naming several)."""
    found: dict[str, dict[str, str]] = {h: {} for h in hints}
    for path, md5 in candidates:
        for h in hints:
            if _matches(h, path):
                found[h].setdefault(md5, path)
    unique = {h: next(iter(m.items())) for h, m in found.items() if len(m) == 1}
    several = {h: sorted(m.values())[:5] for h, m in found.items() if len(m) > 1}
    return unique, several


def pixel_boxes(annotation: Any, f: File | None) -> Any:
    """The annotation with its boxes in fractions of the image put in pixels (in percent when DAM does not know
    the image's size, which the rest of DAM reads too)."""
    found = annotation.get("boxes") if isinstance(annotation, dict) else None
    if not isinstance(found, list) or not any(isinstance(b, dict) and b.get("unit") == "normalized" for b in found):
        return annotation
    out = []
    for b in found:
        if not isinstance(b, dict) or b.get("unit") != "normalized":
            out.append(b)
            continue
        w, h = (f.width, f.height) if f is not None and f.width and f.height else (None, None)
        box = {k: v for k, v in b.items() if k != "unit"}
        sx, sy = (w, h) if w and h else (100.0, 100.0)
        box.update(x=b.get("x", 0) * sx, y=b.get("y", 0) * sy, width=b.get("width", 0) * sx,
                   height=b.get("height", 0) * sy)
        if not (w and h):
            box["unit"] = "percent"
        out.append(box)
    return {**annotation, "boxes": out}
