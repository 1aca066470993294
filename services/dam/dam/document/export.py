"""Export a document version as CSV, JSON, XML, Label Studio task JSON or COCO (detection)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

from dam.document.exceptions import InvalidDocument
from dam.document.models import DocumentRow
from dam.file.models import File
from mlife_shared import csvsafe

MEDIA_TYPES = {"csv": "text/csv", "tsv": "text/tab-separated-values", "json": "application/json", "xml": "application/xml",
               "labelstudio": "application/json", "coco": "application/json"}


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v)


@dataclass(frozen=True)
class Shape:
    """The columns of an export: a plain table is its features and its label column (it imports back as a
    table); any other document is md5, path, annotation, its extra columns, then the features its rows have."""

    columns: list[str]
    features: list[str]
    label_column: str | None = None

    def header(self) -> list[str]:
        if self.label_column is not None:
            return [*self.features, self.label_column]
        return ["md5", "path", "annotation", *self.columns, *[f for f in self.features if f not in self.columns]]

    def values(self, r: DocumentRow) -> list[tuple[str, Any]]:
        features = r.features or {}
        if self.label_column is not None:
            return [*[(c, features.get(c)) for c in self.features], (self.label_column, r.annotation)]
        return [("md5", r.md5), ("path", r.path), ("annotation", r.annotation),
                *[(c, r.extra.get(c)) for c in self.columns],
                *[(c, features.get(c)) for c in self.features if c not in self.columns]]


def to_csv(shape: Shape, rows: list[tuple[DocumentRow, File | None]], *, delimiter: str = ",") -> bytes:
    """CSV (or TSV with a tab): text cells a spreadsheet would run as a formula are quoted (csvsafe)."""
    return csvsafe.write(shape.header(), ([_cell(v) for _, v in shape.values(r)] for r, _ in rows),
                         delimiter=delimiter)


def to_json(shape: Shape, rows: list[tuple[DocumentRow, File | None]]) -> bytes:
    out = [dict(shape.values(r)) for r, _ in rows]
    return json.dumps(out, ensure_ascii=False).encode()


def to_xml(name: str, version: int, shape: Shape, rows: list[tuple[DocumentRow, File | None]]) -> bytes:
    root = ET.Element("document", {"name": name, "version": str(version)})
    for r, _ in rows:
        el = ET.SubElement(root, "row")
        for tag, value in shape.values(r):
            if value is not None:
                ET.SubElement(el, tag).text = _cell(value)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def data_field(f: File | None) -> str:
    kind = f.media_type if f is not None else "image"
    return {"image": "image", "audio": "audio", "video": "video", "text": "text", "json": "text"}.get(kind, "image")


def prediction(annotation: Any, f: File | None, kind: str) -> list[dict[str, Any]]:
    """Label Studio `result` items for an annotation: a choice, or rectangles in percent of the image."""
    field = data_field(f)
    if annotation is None:
        return []
    boxes = annotation.get("boxes") if isinstance(annotation, dict) else None
    if isinstance(boxes, list):
        w = (f.width if f and f.width else None)
        h = (f.height if f and f.height else None)
        out = []
        for i, b in enumerate(boxes):
            if not isinstance(b, dict):
                continue
            sx, sy = (100.0 / w, 100.0 / h) if w and h and b.get("unit") != "percent" else (1.0, 1.0)
            item: dict[str, Any] = {"id": f"b{i}", "from_name": "label", "to_name": field, "type": "rectanglelabels",
                    "value": {"x": float(b.get("x", 0)) * sx, "y": float(b.get("y", 0)) * sy,
                              "width": float(b.get("width", 0)) * sx, "height": float(b.get("height", 0)) * sy,
                              "rotation": 0, "rectanglelabels": [str(b.get("label"))]}}
            if w and h:
                item.update(original_width=w, original_height=h)
            out.append(item)
        return out
    from dam.document.service import label_of

    label = label_of(annotation)
    if label is None:
        return []
    return [{"from_name": "label", "to_name": field, "type": "choices", "value": {"choices": [label]}}]


def file_url(base: str, md5: str | None) -> str:
    return f"{base.rstrip('/')}/api/dam/files/{md5}/content"


def to_labelstudio(columns: list[str], rows: list[tuple[DocumentRow, File | None]], base_url: str,
                   model_version: str = "document") -> bytes:
    tasks = []
    for r, f in rows:
        data = {data_field(f): file_url(base_url, r.md5), "md5": r.md5, "path": r.path, "row_id": str(r.id),
                **{c: r.extra.get(c) for c in columns}}
        task: dict[str, Any] = {"data": data}
        result = prediction(r.annotation, f, "")
        if result:
            task["predictions"] = [{"model_version": model_version, "result": result}]
        tasks.append(task)
    return json.dumps(tasks, ensure_ascii=False).encode()


def to_coco(name: str, rows: list[tuple[DocumentRow, File | None]]) -> bytes:
    categories: dict[str, int] = {}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, (r, f) in enumerate(rows, start=1):
        images.append({"id": image_id, "file_name": r.path or r.md5, "md5": r.md5,
                       "width": f.width if f else None, "height": f.height if f else None})
        boxes = r.annotation.get("boxes") if isinstance(r.annotation, dict) else None
        for b in boxes or []:
            if not isinstance(b, dict) or b.get("label") is None:
                continue
            if b.get("unit") == "percent":
                if not (f and f.width and f.height):
                    raise InvalidDocument(f"row {r.position}: a box in percent needs the image size")
                x, y = b.get("x", 0) * f.width / 100, b.get("y", 0) * f.height / 100
                w, h = b.get("width", 0) * f.width / 100, b.get("height", 0) * f.height / 100
            else:
                x, y, w, h = (float(b.get(k, 0)) for k in ("x", "y", "width", "height"))
            cat = categories.setdefault(str(b["label"]), len(categories) + 1)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    doc = {"info": {"description": name}, "images": images, "annotations": annotations,
           "categories": [{"id": i, "name": n} for n, i in categories.items()]}
    return json.dumps(doc).encode()
