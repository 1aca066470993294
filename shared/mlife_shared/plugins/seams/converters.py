"""The converters seam: the annotation formats a DAM document is imported from and exported to.

A converter reads a body (a file, or a zip of files) into rows and writes a document version into a body. It
works on plain values only: it never sees DAM's database. DAM does the rest around it:

- import: `detect` scores how sure a converter is that a body is its format (DAM takes the highest score when
  the request names no format); `read` returns the rows (`Imported`). A row names its file by `md5` or by
  `path`; with `match="stem"` a path is also matched by its name without extension ("img7" or "img7.jpg" finds
  the upload "images/train/img7.png"). Boxes are `{"label", "x", "y", "width", "height"}` in pixels of the
  image, or with `"unit": "percent"` / `"unit": "normalized"` (0..1, as YOLO) which DAM turns into pixels from
  the file's size it measured at upload. DAM then checks every row (file known, values storable) and writes the
  version whole or not at all.
- export: `write` gets an `ExportDocument` (rows with each file's facts: md5, path, media type, width, height)
  and returns the body; DAM serves it as `media_type` with the file extension `extension`.
- bad input: raise `ConversionError(message, row=n)`; DAM answers 422 with the message (and the row) and writes
  nothing. `imports` / `exports` say which directions the converter does (the other method may just raise).

Example (a plugin of one method each way)::

    from mlife_shared.plugins.seams.converters import ConversionError, ExportDocument, Imported

    class Lines:
        name, api, description = "lines", ">=1,<2", "one 'md5 label' pair a line"
        media_type, extension, imports, exports = "text/plain", "txt", True, True

        def detect(self, data: bytes, content_type: str | None) -> int:
            return 0                                   # only when named: format=lines

        def read(self, data: bytes, options: dict[str, str]) -> Imported:
            rows = []
            for n, line in enumerate(data.decode().splitlines(), start=1):
                md5, _, label = line.partition(" ")
                if not label:
                    raise ConversionError("each line is 'md5 label'", row=n)
                rows.append({"md5": md5, "annotation": label})
            return Imported(columns=["md5", "annotation"], rows=rows)

        def write(self, document: ExportDocument) -> bytes:
            return "".join(f"{r.md5} {r.label}\\n" for r in document.rows).encode()

registered in its package's pyproject.toml as `[project.entry-points."mlife.converters"] lines = "pkg.mod:Lines"`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Unit = Literal["pixel", "percent", "normalized"]


class ConversionError(Exception):
    """The body is not valid in this format: DAM answers 422 with `message` (and `row`, 1-based, when given)."""

    def __init__(self, message: str, *, row: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.row = row


@dataclass(frozen=True)
class FileInfo:
    """What DAM measured of a stored file."""

    md5: str
    media_type: str = "image"
    size: int = 0
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    sample_rate: int | None = None
    fps: float | None = None


@dataclass(frozen=True)
class Row:
    """A document row: the file it names (md5, path, facts) or, in a plain table, its features; its annotation
    (a label, `{"boxes": [...]}`, or any JSON) and `label` (the row's class as DAM reads it); its extra columns;
    `id`: DAM's id of the row (on export)."""

    md5: str | None = None
    path: str | None = None
    annotation: Any = None
    label: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    features: Mapping[str, Any] | None = None
    file: FileInfo | None = None
    id: str | None = None


@dataclass(frozen=True)
class ExportDocument:
    """A document version to write. `kind` is "standard" (rows name files) or "table" (rows of `features` and
    `label_column`, no files); `columns` are the extra columns; `base_url` is where DAM serves a file
    (`{base_url}/api/dam/files/{md5}/content`)."""

    name: str
    version: int
    kind: str
    columns: list[str]
    rows: list[Row]
    features: list[str] = field(default_factory=list)
    label_column: str | None = None
    base_url: str = ""


@dataclass
class Imported:
    """What `read` found: the columns in order and one dict a row. Reserved keys: `md5`, `path`, `annotation`;
    every other key is an extra column (or, in a plain table, a feature or the label column). `text_cells`: the
    values are text as in a spreadsheet (DAM decodes an annotation written as JSON and reads numbers in a table);
    `match`: "path" (a row's path is an uploaded path) or "stem" (also matched by file name without extension)."""

    columns: list[str]
    rows: list[dict[str, Any]]
    text_cells: bool = False
    match: Literal["path", "stem"] = "path"


@runtime_checkable
class Converter(Protocol):
    name: str
    api: str
    description: str
    media_type: str
    extension: str
    imports: bool
    exports: bool

    def detect(self, data: bytes, content_type: str | None) -> int:
        """0 (not this format) .. 100 (certainly this format)."""
        ...

    def read(self, data: bytes, options: dict[str, str]) -> Imported: ...

    def write(self, document: ExportDocument) -> bytes: ...


PROTOCOL = Converter

_SAMPLE = ExportDocument(name="conformance", version=1, kind="standard", columns=["split"], rows=[
    Row(md5="0" * 32, path="images/a.png", annotation={"boxes": [{"label": "cat", "x": 2, "y": 4, "width": 6,
                                                                  "height": 8}]}, label="cat",
        extra={"split": "train"}, file=FileInfo(md5="0" * 32, size=100, width=20, height=40)),
    Row(md5="1" * 32, path="images/b.png", annotation="dog", label="dog", extra={"split": "test"},
        file=FileInfo(md5="1" * 32, size=120, width=30, height=30)),
])


def conformance(plugin: Any) -> None:
    """Behavioural checks beyond the protocol's members (raise AssertionError with what is wrong)."""
    for attr in ("media_type", "extension"):
        assert isinstance(getattr(plugin, attr), str) and getattr(plugin, attr), f"{attr} must be a non-empty string"
    assert plugin.imports or plugin.exports, "a converter imports, exports or both (imports/exports are both False)"
    for body in (b"", b"\x00\xff not any format", json.dumps({"x": 1}).encode()):
        score = plugin.detect(body, None)
        assert isinstance(score, int) and 0 <= score <= 100, f"detect must return an int 0..100, not {score!r}"
    if plugin.exports:
        out = plugin.write(_SAMPLE)
        assert isinstance(out, bytes) and out, "write must return the body as non-empty bytes"
    if plugin.imports:
        try:
            got = plugin.read(b"\x00\xff\xfe garbage", {})
        except ConversionError as exc:
            assert exc.message, "a ConversionError needs a message saying what to fix"
        else:
            _check_imported(got)
        if plugin.exports:
            _check_imported(plugin.read(plugin.write(_SAMPLE), {"classes": "cat,dog"}))


def _check_imported(got: Any) -> None:
    assert isinstance(got, Imported), f"read must return an Imported, not {type(got).__name__}"
    assert isinstance(got.columns, list) and all(isinstance(c, str) for c in got.columns), "columns: a list of str"
    assert isinstance(got.rows, list) and all(isinstance(r, dict) for r in got.rows), "rows: a list of dicts"
    assert got.match in ("path", "stem"), f"match is 'path' or 'stem', not {got.match!r}"
