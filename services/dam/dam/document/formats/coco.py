"""COCO detection JSON: one image a row (file_name = the row's path, DAM adds the md5), a box an annotation
(`bbox` = [x, y, width, height] in pixels), the box labels as categories."""

from __future__ import annotations

import json
import math
from typing import Any

from dam.document.formats import boxes
from dam.document.formats.tabular import head, text
from mlife_shared.plugins.seams.converters import ConversionError, ExportDocument, Imported


def _bbox(a: dict[str, Any], n: int) -> list[float]:
    bbox = a.get("bbox")
    if (not isinstance(bbox, list) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)):
        raise ConversionError(f"annotation {a.get('id')!r}: bbox must be [x, y, width, height] numbers", row=n)
    return [float(v) for v in bbox]


class Coco:
    name = "coco"
    api = ">=1,<2"
    description = "COCO detection JSON (images, annotations with bbox in pixels, categories)"
    media_type = "application/json"
    extension = "json"
    imports = exports = True

    def detect(self, data: bytes, content_type: str | None) -> int:
        start = head(data)[:65536]
        return 85 if start[:1] == b"{" and b'"images"' in start and b'"annotations"' in data else 0

    def read(self, data: bytes, options: dict[str, str]) -> Imported:
        try:
            doc = json.loads(text(data))
        except (ValueError, RecursionError) as exc:
            raise ConversionError(f"the COCO file is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
            raise ConversionError('a COCO file is an object with an "images" array (and "annotations", '
                                  '"categories")')
        categories = {c.get("id"): str(c.get("name")) for c in doc.get("categories") or [] if isinstance(c, dict)}
        rows: dict[Any, dict[str, Any]] = {}
        for n, im in enumerate(doc["images"], start=1):
            if not isinstance(im, dict) or "id" not in im or not (im.get("file_name") or im.get("md5")):
                raise ConversionError("an image needs an id and a file_name", row=n)
            path = im.get("file_name") if im.get("file_name") != im.get("md5") else None
            rows[im["id"]] = {"md5": im.get("md5"), "path": path, "annotation": {"boxes": []}}
        for n, a in enumerate(doc.get("annotations") or [], start=1):
            if not isinstance(a, dict) or a.get("image_id") not in rows:
                raise ConversionError(f"annotation {n} names no image of the file (image_id "
                                      f"{a.get('image_id') if isinstance(a, dict) else None!r})")
            if a.get("category_id") not in categories:
                raise ConversionError(f"annotation {n} names the category {a.get('category_id')!r}, which "
                                      "\"categories\" does not list")
            x, y, w, h = _bbox(a, n)
            rows[a["image_id"]]["annotation"]["boxes"].append(
                {"label": categories[a["category_id"]], "x": x, "y": y, "width": w, "height": h})
        return Imported(columns=["md5", "path", "annotation"], rows=list(rows.values()), match="stem")

    def write(self, document: ExportDocument) -> bytes:
        if document.kind == "table":
            raise ConversionError("a plain table has no files to export as COCO; use csv, tsv, json or xml")
        categories: dict[str, int] = {}
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for image_id, r in enumerate(document.rows, start=1):
            f = r.file
            images.append({"id": image_id, "file_name": r.path or r.md5, "md5": r.md5,
                           "width": f.width if f else None, "height": f.height if f else None})
            for b in boxes.boxes(r.annotation):
                x, y, w, h = boxes.in_pixels(r, b, image_id)
                cat = categories.setdefault(str(b["label"]), len(categories) + 1)
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat,
                                    "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        return json.dumps({"info": {"description": document.name}, "images": images, "annotations": annotations,
                           "categories": [{"id": i, "name": n} for n, i in categories.items()]}).encode()
