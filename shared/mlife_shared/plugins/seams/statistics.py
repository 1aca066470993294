"""The statistics seam: the distribution analyses of a document version, a selection of its rows or a dataset.

DAM runs every active statistic over the same rows (`Sample`) and puts each named result it returns into the
analysis response (`GET /documents/{id}/stats`, `GET /datasets/{id}/stats`) at the top level, beside those of the
built-ins (`by_class`, `by_size`, ...); the response's `statistics` lists which statistic gave which names, and a
statistic that fails is listed in `statistics_errors` with its message (the others still answer). A name an
earlier statistic (built-ins first) already gave is not overwritten: it is reported in `statistics_errors`.

A result is JSON. A **distribution** — `{bucket: count}`, counts as numbers — is drawn as a bar chart by the UI;
any other value (a summary such as `{"min": .., "max": ..}`, a number) is shown as it is. Keep names snake_case
and buckets few (the UI draws the first 50).

Example::

    from collections import Counter
    from mlife_shared.plugins.seams.statistics import Sample

    class BoxesPerImage:
        name, api, description = "boxes-per-image", ">=1,<2", "how many boxes each image has"

        def analyse(self, sample: Sample) -> dict[str, object]:
            counts = Counter(str(len(r.annotation.get("boxes") or [])) for r in sample.rows
                             if isinstance(r.annotation, dict))
            return {"by_boxes_per_image": dict(sorted(counts.items(), key=lambda kv: int(kv[0])))}

registered as `[project.entry-points."mlife.statistics"] boxes-per-image = "pkg.mod:BoxesPerImage"`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from mlife_shared.plugins.seams.converters import FileInfo, Row

__all__ = ["PROTOCOL", "FileInfo", "Row", "Sample", "Statistic", "conformance", "is_distribution"]


@dataclass(frozen=True)
class Sample:
    """The rows analysed (`Row.file` holds the file's facts; None for a table row or an unknown file), the extra
    `columns` and table `features` they have, and what they are a sample of."""

    rows: Sequence[Row]
    columns: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    source: Literal["document", "dataset"] = "document"


@runtime_checkable
class Statistic(Protocol):
    name: str
    api: str
    description: str

    def analyse(self, sample: Sample) -> dict[str, Any]:
        """Named results (JSON values); a `{bucket: count}` dict is a distribution."""
        ...


PROTOCOL = Statistic


def is_distribution(value: Any) -> bool:
    """A `{bucket: count}` mapping of text to numbers (what the UI draws as a chart)."""
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in value.items())


_SAMPLE = Sample(columns=["split"], rows=[
    Row(md5="0" * 32, path="a.png", annotation={"boxes": [{"label": "cat", "x": 1, "y": 1, "width": 5, "height": 5}]},
        label="cat", extra={"split": "train"}, file=FileInfo(md5="0" * 32, size=2048, width=20, height=40)),
    Row(md5="1" * 32, path="b.wav", annotation="dog", label="dog", extra={"split": "test"},
        file=FileInfo(md5="1" * 32, media_type="audio", size=4096, duration=1.5, sample_rate=16000)),
    Row(annotation=None, label=None, features={"x": 1.5}),
])


def conformance(plugin: Any) -> None:
    """Behavioural checks beyond the protocol's members (raise AssertionError with what is wrong)."""
    for sample in (_SAMPLE, Sample(rows=[]), Sample(rows=_SAMPLE.rows, source="dataset")):
        out = plugin.analyse(sample)
        assert isinstance(out, dict), f"analyse must return a dict of named results, not {type(out).__name__}"
        for key, value in out.items():
            assert isinstance(key, str) and key, f"a result's name must be a non-empty string, not {key!r}"
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise AssertionError(f"the result {key!r} is not JSON: {exc}") from exc
