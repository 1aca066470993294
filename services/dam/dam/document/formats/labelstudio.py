"""Label Studio task JSON: export writes one task a row (the file's URL in DAM, md5, path and the extra columns as
`data`, the annotation as a prediction: a choice, or rectangles in percent of the image); import reads tasks of a
Label Studio export (the latest annotation, else the latest prediction) back into rows."""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from dam.document.formats.tabular import text
from mlife_shared.plugins.seams.converters import ConversionError, ExportDocument, FileInfo, Imported

FILE_URL = re.compile(r"/api/dam/files/([0-9a-f]{32})/content")
DATA_KEYS = ("md5", "path", "row_id")
MEDIA = {"image": "image", "audio": "audio", "video": "video", "text": "text", "json": "text"}


def data_field(f: Any) -> str:
    """The `data` key a file's task holds it under (`f`: a File or a FileInfo; None is an image)."""
    return MEDIA.get(f.media_type if f is not None else "image", "image")


def file_url(base: str, md5: str | None) -> str:
    return f"{base.rstrip('/')}/api/dam/files/{md5}/content"


def prediction(annotation: Any, f: Any, kind: str = "") -> list[dict[str, Any]]:
    """Label Studio `result` items for an annotation: a choice, or rectangles in percent of the image."""
    field = data_field(f)
    if annotation is None:
        return []
    found = annotation.get("boxes") if isinstance(annotation, dict) else None
    if isinstance(found, list):
        w = (f.width if f and f.width else None)
        h = (f.height if f and f.height else None)
        out = []
        for i, b in enumerate(found):
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


def _box(item: dict[str, Any], value: dict[str, Any], label: str) -> dict[str, Any]:
    coords = {k: float(value.get(k, 0)) for k in ("x", "y", "width", "height")}
    w, h = item.get("original_width"), item.get("original_height")
    if isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0:
        scale = {"x": w / 100, "y": h / 100, "width": w / 100, "height": h / 100}
        return {"label": label, **{k: v * scale[k] for k, v in coords.items()}}
    return {"label": label, **coords, "unit": "percent"}


def annotation_of(result: Any) -> Any:
    """DAM's annotation of a Label Studio result: `{"boxes": [...]}` when it has rectangles, else its choice
    (`{"labels": [...]}` for several), else None."""
    rects: list[dict[str, Any]] = []
    chosen: list[str] = []
    for item in result if isinstance(result, list) else []:
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, dict):
            continue
        if value.get("rectanglelabels"):
            rects.append(_box(item, value, str(value["rectanglelabels"][0])))
        chosen += [str(c) for c in value.get("choices") or []]
    if rects:
        return {"boxes": rects}
    return None if not chosen else chosen[0] if len(chosen) == 1 else {"labels": chosen}


def _latest(entries: Any) -> dict[str, Any] | None:
    kept = [a for a in entries if isinstance(a, dict) and not a.get("was_cancelled")] if isinstance(entries, list) else []
    if not kept:
        return None
    best: dict[str, Any] = max(kept, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""),
                                                   a.get("id") if isinstance(a.get("id"), int) else 0))
    return best


def _file_of(data: dict[str, Any]) -> tuple[str | None, str | None]:
    md5, path = data.get("md5"), data.get("path")
    for key in MEDIA:
        url = data.get(key)
        if isinstance(url, str) and md5 is None and path is None:
            m = FILE_URL.search(url)
            if m:
                md5 = m.group(1)
            elif "://" in url or url.startswith("/"):
                path = unquote(PurePosixPath(urlsplit(url).path).name) or None
            else:
                path = url
    return (str(md5) if md5 else None), (str(path) if path else None)


class LabelStudio:
    name = "labelstudio"
    api = ">=1,<2"
    description = "Label Studio tasks (JSON): import a Label Studio export, export tasks with pre-labels"
    media_type = "application/json"
    extension = "json"
    imports = exports = True

    def detect(self, data: bytes, content_type: str | None) -> int:
        # a Label Studio export: an array of task objects, each with a "data" object (its "annotations" often first)
        start = data[:65536].lstrip(b"\xef\xbb\xbf \t\r\n")
        return 80 if re.match(rb"\[\s*\{", start) and re.search(rb'"data"\s*:\s*\{', start) else 0

    def read(self, data: bytes, options: dict[str, str]) -> Imported:
        try:
            tasks = json.loads(text(data))
        except (ValueError, RecursionError) as exc:
            raise ConversionError(f"the Label Studio export is not JSON: {exc}") from exc
        if not isinstance(tasks, list):
            raise ConversionError("a Label Studio export is a JSON array of tasks")
        columns: dict[str, None] = dict.fromkeys(("md5", "path", "annotation"))
        rows = []
        for n, t in enumerate(tasks, start=1):
            data_ = t.get("data") if isinstance(t, dict) else None
            if not isinstance(data_, dict):
                raise ConversionError("a task must be an object with a 'data' object", row=n)
            md5, path = _file_of(data_)
            chosen = _latest(t.get("annotations")) or _latest(t.get("predictions"))
            extra = {k: v for k, v in data_.items() if k not in DATA_KEYS and k not in MEDIA
                     and (v is None or isinstance(v, (str, int, float, bool)))}
            columns.update(dict.fromkeys(extra))
            rows.append({"md5": md5, "path": path, "annotation": annotation_of(chosen.get("result"))
                         if chosen else None, **extra})
        return Imported(columns=list(columns), rows=rows, match="stem")

    def write(self, document: ExportDocument) -> bytes:
        if document.kind == "table":
            raise ConversionError("a plain table has no files to export as Label Studio tasks; use csv, tsv, json or "
                                  "xml")
        tasks = []
        for r in document.rows:
            f: FileInfo | None = r.file
            data = {data_field(f): file_url(document.base_url, r.md5), "md5": r.md5, "path": r.path, "row_id": r.id,
                    **{c: r.extra.get(c) for c in document.columns}}
            task: dict[str, Any] = {"data": data}
            result = prediction(r.annotation, f)
            if result:
                task["predictions"] = [{"model_version": "document", "result": result}]
            tasks.append(task)
        return json.dumps(tasks, ensure_ascii=False).encode()
