"""Distributions of a set of rows (a document version, a selection, a dataset) through the `statistics` plugins,
and the comparison of two versions. Built in: `classes` (by class, by box label), `files` (type, size,
dimensions), `media` (audio/video duration, sample rate, frame rate, video resolution), `columns` (every extra
column and every feature of a table) and `boxes` (boxes per image, box sizes). Every statistic's named results go
into one response; a failing one is reported in `statistics_errors`, never fails the others."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from dam.document.models import DocumentRow
from dam.document.service import box_labels
from dam.file.models import File
from mlife_shared.plugins.registry import Plugins
from mlife_shared.plugins.seams.statistics import Row, Sample, Statistic

SEAM = "statistics"
API = ">=1,<2"
SIZE_BUCKETS = [(10 * 1024, "<10KB"), (100 * 1024, "10KB-100KB"), (1024 ** 2, "100KB-1MB"),
                (10 * 1024 ** 2, "1MB-10MB"), (100 * 1024 ** 2, "10MB-100MB")]
TOP = 50
DURATION_BUCKETS = [(1.0, "<1s"), (5.0, "1s-5s"), (30.0, "5s-30s"), (120.0, "30s-2min"), (600.0, "2min-10min")]
LONGEST = ">=10min"
# COCO's small / medium / large, by a box's area in pixels
BOX_AREAS = [(32 ** 2, "small (<32²px)"), (96 ** 2, "medium (32²-96²px)")]


def duration_bucket(seconds: float) -> str:
    for limit, name in DURATION_BUCKETS:
        if seconds < limit:
            return name
    return LONGEST


def frame_rate(fps: float) -> str:
    """25.0 → "25", 29.97002997 → "29.97"."""
    return f"{fps:.2f}".rstrip("0").rstrip(".")


def size_bucket(size: int) -> str:
    for limit, name in SIZE_BUCKETS:
        if size < limit:
            return name
    return ">=100MB"


def feature_summary(values: list[Any]) -> dict[str, Any]:
    """A numeric feature: count, missing, min, max, mean; any other: count, missing and its top values."""
    present = [v for v in values if v is not None and v != ""]
    out: dict[str, Any] = {"count": len(present), "missing": len(values) - len(present)}
    numbers = [v for v in present if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if present and len(numbers) == len(present):
        out.update(kind="number", min=min(numbers), max=max(numbers), mean=sum(numbers) / len(numbers))
    else:
        out.update(kind="text", top=dict(Counter(str(v) for v in present).most_common(TOP)))
    return out


def _seconds(seconds: list[float]) -> dict[str, Any] | None:
    """Count, min, max, mean and total of the durations, to the millisecond (the same in any row order)."""
    if not seconds:
        return None
    total = sum(sorted(seconds))
    return {"count": len(seconds), "min": round(min(seconds), 3), "max": round(max(seconds), 3),
            "mean": round(total / len(seconds), 3), "total": round(total, 3)}


class Classes:
    name = "classes"
    api = API
    description = "rows, annotated rows, rows by class and boxes by label"

    def analyse(self, sample: Sample) -> dict[str, Any]:
        rows = sample.rows
        return {"row_count": len(rows), "table_rows": sum(r.features is not None for r in rows),
                "annotated": sum(r.annotation is not None for r in rows),
                "by_class": dict(Counter(r.label if r.label is not None else "(none)" for r in rows).most_common()),
                "by_box_label": dict(Counter(b for r in rows for b in box_labels(r.annotation)).most_common())}


class Files:
    name = "files"
    api = API
    description = "distinct files and bytes, rows by file type, size and image dimensions"

    def analyse(self, sample: Sample) -> dict[str, Any]:
        files = [r.file for r in sample.rows if r.file is not None]
        sizes = Counter(size_bucket(f.size) for f in files)
        distinct = {f.md5: f.size for f in files}
        return {"distinct_files": len(distinct), "total_bytes": sum(distinct.values()),
                "by_media_type": dict(Counter(f.media_type for f in files).most_common()),
                "by_size": {name: sizes[name] for name in [*(n for _, n in SIZE_BUCKETS), ">=100MB"] if sizes[name]},
                "by_dimensions": dict(Counter(f"{f.width}x{f.height}" for f in files
                                              if f.width and f.height).most_common(TOP))}


class Media:
    name = "media"
    api = API
    description = "audio and video: duration, sample rate, frame rate, video resolution"

    def analyse(self, sample: Sample) -> dict[str, Any]:
        files = [r.file for r in sample.rows if r.file is not None]
        seconds = [f.duration for f in files if f.duration is not None]
        durations = Counter(duration_bucket(s) for s in seconds)
        return {"by_duration": {n: durations[n] for n in [*(n for _, n in DURATION_BUCKETS), LONGEST] if durations[n]},
                "duration": _seconds(seconds),
                "by_sample_rate": dict(Counter(str(f.sample_rate) for f in files if f.sample_rate).most_common(TOP)),
                "by_frame_rate": dict(Counter(frame_rate(f.fps) for f in files if f.fps).most_common(TOP)),
                "by_resolution": dict(Counter(f"{f.width}x{f.height}" for f in files
                                              if f.media_type == "video" and f.width and f.height).most_common(TOP))}


class Columns:
    name = "columns"
    api = API
    description = "every extra column's values, every table feature's summary"

    def analyse(self, sample: Sample) -> dict[str, Any]:
        by_column = {c: dict(Counter("(none)" if (v := r.extra.get(c)) is None or v == "" else str(v)
                                     for r in sample.rows).most_common(TOP)) for c in sample.columns}
        return {"by_column": by_column,
                "by_feature": {c: feature_summary([(r.features or {}).get(c) for r in sample.rows])
                               for c in sample.features}}


def _box_area(b: dict[str, Any], r: Row) -> float | None:
    """A box's area in pixels (None when it is relative and the image size is unknown)."""
    try:
        w, h = float(b.get("width", 0)), float(b.get("height", 0))
    except (TypeError, ValueError):
        return None
    scale = {"percent": 100.0, "normalized": 1.0}.get(str(b.get("unit")))
    if scale is None:
        return w * h
    if r.file is None or not r.file.width or not r.file.height:
        return None
    return w * r.file.width / scale * h * r.file.height / scale


class Boxes:
    name = "boxes"
    api = API
    description = "detection: images by their number of boxes, boxes by size (COCO's small, medium, large)"

    def analyse(self, sample: Sample) -> dict[str, Any]:
        found = [(r, r.annotation["boxes"]) for r in sample.rows
                 if isinstance(r.annotation, dict) and isinstance(r.annotation.get("boxes"), list)]
        if not found:
            return {}
        per_image = Counter(len(bs) for _, bs in found)
        areas = Counter(_area_bucket(_box_area(b, r)) for r, bs in found for b in bs if isinstance(b, dict))
        return {"by_boxes_per_image": {str(k): per_image[k] for k in sorted(per_image)},
                "by_box_size": dict(areas.most_common())}


def _area_bucket(area: float | None) -> str:
    if area is None:
        return "(unknown size)"
    return next((name for limit, name in BOX_AREAS if area < limit), "large (>=96²px)")


def rows_of(rows: Iterable[tuple[DocumentRow, File | None]]) -> list[Row]:
    from dam.document.export import row_of

    return [row_of(r, f) for r, f in rows]


def analyse(plugins: Plugins, sample: Sample, only: Sequence[str] | None = None,
            reserved: Iterable[str] = ()) -> dict[str, Any]:
    """Every active statistic's results (or those named in `only`: 422 for one not active), `statistics` naming
    which gave what, and `statistics_errors` for a failure or a name given twice."""
    chosen: dict[str, Statistic] = ({n: plugins.get(SEAM, n) for n in dict.fromkeys(only)} if only
                                    else plugins.active(SEAM))
    out: dict[str, Any] = {}
    given: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    taken = set(reserved) | {"statistics", "statistics_errors"}
    for name, stat in chosen.items():
        try:
            results = stat.analyse(sample)
            if not isinstance(results, dict):
                raise TypeError(f"analyse returned {type(results).__name__}, not a dict")
        except Exception as exc:  # noqa: BLE001 - one statistic's failure is reported, the others still answer
            errors[name] = f"{type(exc).__name__}: {exc}"[:500]
            continue
        clash = sorted(k for k in results if k in taken or k in out)
        if clash:
            errors[name] = f"gave names already given by another statistic: {', '.join(clash)}"
        given[name] = [k for k in results if k not in clash]
        out.update({k: v for k, v in results.items() if k not in clash})
    return {**out, "statistics": given, "statistics_errors": errors}


def compare(a: list[tuple[DocumentRow, File | None]], b: list[tuple[DocumentRow, File | None]]) -> dict[str, Any]:
    ca = Counter(r.label or "(none)" for r, _ in a)
    cb = Counter(r.label or "(none)" for r, _ in b)
    classes = [{"label": k, "a": ca[k], "b": cb[k], "delta": cb[k] - ca[k]} for k in sorted(set(ca) | set(cb))]
    from dam.document.table import row_id

    # a file by its MD5, a table row by its features (so a new label shows as relabelled, not added + removed)
    def key(r: DocumentRow) -> str | None:
        return r.md5 or (row_id(r.features, None) if r.features is not None else None)

    ann_a = {k: r.annotation for r, _ in a if (k := key(r))}
    ann_b = {k: r.annotation for r, _ in b if (k := key(r))}
    added = sorted(set(ann_b) - set(ann_a))
    removed = sorted(set(ann_a) - set(ann_b))
    changed = sorted(m for m in set(ann_a) & set(ann_b) if ann_a[m] != ann_b[m])
    return {"classes": classes, "added_count": len(added), "removed_count": len(removed),
            "changed_count": len(changed), "added": added[:1000], "removed": removed[:1000], "changed": changed[:1000]}
