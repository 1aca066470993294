"""Distributions of a set of rows (a document version, a selection, a dataset): by class, file type,
size, image dimensions and every extra column; and the comparison of two versions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from dam.document.models import DocumentRow
from dam.file.models import File

SIZE_BUCKETS = [(10 * 1024, "<10KB"), (100 * 1024, "10KB-100KB"), (1024 ** 2, "100KB-1MB"),
                (10 * 1024 ** 2, "1MB-10MB"), (100 * 1024 ** 2, "10MB-100MB")]
TOP = 50


def size_bucket(size: int) -> str:
    for limit, name in SIZE_BUCKETS:
        if size < limit:
            return name
    return ">=100MB"


def distribution(rows: Iterable[tuple[DocumentRow, File | None]], columns: list[str]) -> dict[str, Any]:
    from dam.document.service import box_labels

    by_class: Counter[str] = Counter()
    boxes: Counter[str] = Counter()
    types: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    dims: Counter[str] = Counter()
    extra: dict[str, Counter[str]] = {c: Counter() for c in columns}
    count = total_bytes = annotated = 0
    files: set[str] = set()
    for r, f in rows:
        count += 1
        by_class[r.label if r.label is not None else "(none)"] += 1
        annotated += r.annotation is not None
        boxes.update(box_labels(r.annotation))
        if f is not None:
            types[f.media_type] += 1
            sizes[size_bucket(f.size)] += 1
            if f.md5 not in files:
                files.add(f.md5)
                total_bytes += f.size
            if f.width and f.height:
                dims[f"{f.width}x{f.height}"] += 1
        for c in columns:
            v = r.extra.get(c)
            extra[c]["(none)" if v is None or v == "" else str(v)] += 1
    return {
        "row_count": count, "annotated": annotated, "distinct_files": len(files), "total_bytes": total_bytes,
        "by_class": dict(by_class.most_common()), "by_box_label": dict(boxes.most_common()),
        "by_media_type": dict(types.most_common()),
        "by_size": {name: sizes[name] for _, name in SIZE_BUCKETS if sizes[name]} | (
            {">=100MB": sizes[">=100MB"]} if sizes[">=100MB"] else {}),
        "by_dimensions": dict(dims.most_common(TOP)),
        "by_column": {c: dict(cnt.most_common(TOP)) for c, cnt in extra.items()},
    }


def compare(a: list[tuple[DocumentRow, File | None]], b: list[tuple[DocumentRow, File | None]]) -> dict[str, Any]:
    ca = Counter(r.label or "(none)" for r, _ in a)
    cb = Counter(r.label or "(none)" for r, _ in b)
    classes = [{"label": k, "a": ca[k], "b": cb[k], "delta": cb[k] - ca[k]} for k in sorted(set(ca) | set(cb))]
    ann_a = {r.md5: r.annotation for r, _ in a if r.md5}
    ann_b = {r.md5: r.annotation for r, _ in b if r.md5}
    added = sorted(set(ann_b) - set(ann_a))
    removed = sorted(set(ann_a) - set(ann_b))
    changed = sorted(m for m in set(ann_a) & set(ann_b) if ann_a[m] != ann_b[m])
    return {"classes": classes, "added_count": len(added), "removed_count": len(removed),
            "changed_count": len(changed), "added": added[:1000], "removed": removed[:1000], "changed": changed[:1000]}
