"""Distributions of a set of rows (a document version, a selection, a dataset): by class, file type,
size, image dimensions, audio/video duration, sample rate, frame rate and video resolution, every extra
column and every feature column of a table; and the comparison of two versions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Protocol

from dam.document.models import DocumentRow
from dam.document.service import box_labels
from dam.file.models import File


class RowFacts(Protocol):
    """What a distribution reads of a row: a document's row, or a dataset manifest's line."""

    @property
    def label(self) -> str | None: ...
    @property
    def annotation(self) -> Any: ...
    @property
    def extra(self) -> dict[str, Any]: ...
    @property
    def features(self) -> dict[str, Any] | None: ...


class FileFacts(Protocol):
    """What a distribution reads of a row's file."""

    @property
    def md5(self) -> str: ...
    @property
    def media_type(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def width(self) -> int | None: ...
    @property
    def height(self) -> int | None: ...
    @property
    def duration(self) -> float | None: ...
    @property
    def sample_rate(self) -> int | None: ...
    @property
    def fps(self) -> float | None: ...

SIZE_BUCKETS = [(10 * 1024, "<10KB"), (100 * 1024, "10KB-100KB"), (1024 ** 2, "100KB-1MB"),
                (10 * 1024 ** 2, "1MB-10MB"), (100 * 1024 ** 2, "10MB-100MB")]
TOP = 50
DURATION_BUCKETS = [(1.0, "<1s"), (5.0, "1s-5s"), (30.0, "5s-30s"), (120.0, "30s-2min"), (600.0, "2min-10min")]
LONGEST = ">=10min"


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


def distribution(rows: Iterable[tuple[RowFacts, FileFacts | None]], columns: list[str],
                 features: list[str] | None = None) -> dict[str, Any]:
    tally = _Tally(columns, features or [])
    for r, f in rows:
        tally.add_row(r)
        if f is not None:
            tally.add_file(f)
    return tally.summary()


class _Tally:
    """The counters of a distribution, filled one row at a time."""

    def __init__(self, columns: list[str], features: list[str]) -> None:
        self.columns = columns
        self.by_class: Counter[str] = Counter()
        self.boxes: Counter[str] = Counter()
        self.types: Counter[str] = Counter()
        self.sizes: Counter[str] = Counter()
        self.dims: Counter[str] = Counter()
        self.durations: Counter[str] = Counter()
        self.rates: Counter[str] = Counter()
        self.frame_rates: Counter[str] = Counter()
        self.resolutions: Counter[str] = Counter()
        self.seconds: list[float] = []
        self.extra: dict[str, Counter[str]] = {c: Counter() for c in columns}
        self.count = self.total_bytes = self.annotated = self.table_rows = 0
        self.files: set[str] = set()
        self.feature_values: dict[str, list[Any]] = {c: [] for c in features}

    def add_row(self, r: RowFacts) -> None:
        self.count += 1
        if r.features is not None:
            self.table_rows += 1
        for c, vs in self.feature_values.items():
            vs.append((r.features or {}).get(c))
        self.by_class[r.label if r.label is not None else "(none)"] += 1
        self.annotated += r.annotation is not None
        self.boxes.update(box_labels(r.annotation))
        for c in self.columns:
            v = r.extra.get(c)
            self.extra[c]["(none)" if v is None or v == "" else str(v)] += 1

    def add_file(self, f: FileFacts) -> None:
        self.types[f.media_type] += 1
        self.sizes[size_bucket(f.size)] += 1
        if f.md5 not in self.files:
            self.files.add(f.md5)
            self.total_bytes += f.size
        if f.width and f.height:
            self.dims[f"{f.width}x{f.height}"] += 1
            if f.media_type == "video":
                self.resolutions[f"{f.width}x{f.height}"] += 1
        if f.duration is not None:
            self.durations[duration_bucket(f.duration)] += 1
            self.seconds.append(f.duration)
        if f.sample_rate:
            self.rates[str(f.sample_rate)] += 1
        if f.fps:
            self.frame_rates[frame_rate(f.fps)] += 1

    def _seconds(self) -> dict[str, Any] | None:
        """Count, min, max, mean and total of the durations, to the millisecond (the same in any row order)."""
        if not self.seconds:
            return None
        total = sum(sorted(self.seconds))
        return {"count": len(self.seconds), "min": round(min(self.seconds), 3), "max": round(max(self.seconds), 3),
                "mean": round(total / len(self.seconds), 3), "total": round(total, 3)}

    def summary(self) -> dict[str, Any]:
        sizes = self.sizes
        return {
            "row_count": self.count, "table_rows": self.table_rows, "annotated": self.annotated,
            "distinct_files": len(self.files), "total_bytes": self.total_bytes,
            "by_class": dict(self.by_class.most_common()), "by_box_label": dict(self.boxes.most_common()),
            "by_media_type": dict(self.types.most_common()),
            "by_size": {name: sizes[name] for _, name in SIZE_BUCKETS if sizes[name]} | (
                {">=100MB": sizes[">=100MB"]} if sizes[">=100MB"] else {}),
            "by_dimensions": dict(self.dims.most_common(TOP)),
            "by_duration": {name: self.durations[name] for name in [*(n for _, n in DURATION_BUCKETS), LONGEST]
                            if self.durations[name]},
            "duration": self._seconds(),
            "by_sample_rate": dict(self.rates.most_common(TOP)),
            "by_frame_rate": dict(self.frame_rates.most_common(TOP)),
            "by_resolution": dict(self.resolutions.most_common(TOP)),
            "by_column": {c: dict(cnt.most_common(TOP)) for c, cnt in self.extra.items()},
            "by_feature": {c: feature_summary(vs) for c, vs in self.feature_values.items()},
        }


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
