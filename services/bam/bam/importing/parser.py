"""Reading an import body as rows, streamed: the body comes as an async iterator of byte chunks and the rows
leave one at a time, so memory holds a chunk and a row, never the file.

Both formats are UTF-8 (a leading BOM is skipped) and use the fields of `POST /badcases`:
- JSON lines (`application/x-ndjson`): each non-blank line is one JSON object. A line that is not UTF-8,
  not JSON, not an object, or longer than MAX_ROW_BYTES is a row error, and the next line is read normally.
- CSV (`text/csv`, RFC 4180: commas, double quotes, a quoted field may span lines): the first row is the
  header, naming any of CSV_COLUMNS (case and surrounding spaces ignored); `function` is required. An unknown,
  empty or repeated column name fails the whole file (400, `UnknownColumns` / `InvalidImport`): a typo in the
  header would otherwise fail every row the same way. Cells: empty = not given; `data` = `kind:value`
  entries (`md5:<hex>`, `key:<object key>`, `url:<http(s) URL>`) separated by `;`; `tags` separated by `;`;
  a `prediction` or `ground_truth` cell that starts with `{` or `[` must be a JSON object or array, any other
  cell is a string label (so the label `7` stays "7", the same badcase as `"ground_truth": "7"` sent to
  `POST /badcases`); a `features` cell is a JSON object (a tabular badcase's row: column → value); `task_id`,
  `deployment_id` and `model_version_id` are UUIDs; `segment_start`, `segment_end`, `duration` (seconds) and
  `frame_start`, `frame_end` are numbers (an audio/video badcase's segment: rows with one are recorded one at a
  time, merged with a stored badcase whose segment overlaps). Cells other than `description` lose their surrounding
  spaces. Blank rows are skipped.
  A row with the wrong number of cells, a quote error or bytes that are not UTF-8 is a row error. A row
  longer than MAX_ROW_BYTES, or a field longer than the csv module's limit (128 KiB; no valid report has
  one), fails the whole file (400, `RowTooLong`): a quote that is never closed swallows the rows after it
  and cannot be told from a long row, so nothing after it can be trusted.
Everywhere: NaN/Infinity and NUL characters are row errors (PostgreSQL rejects them). Limits: the body
(`max_import_bytes`, also checked against Content-Length) and MAX_ROWS rows → 413 `ImportTooLarge`.
"""

from __future__ import annotations

import csv
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from bam.badcase.schemas import check_text
from bam.importing.exceptions import (
    ImportTooLarge,
    InvalidImport,
    RowTooLong,
    UnknownColumns,
    UnsupportedImportFormat,
)
from bam.importing.schemas import ImportFormat

CSV_COLUMNS = ("function", "system_version", "model_name", "model_version", "data", "prediction", "ground_truth",
               "description", "tags", "severity", "client_id", "device_id", "features", "task_id", "deployment_id",
               "model_version_id", "segment_start", "segment_end", "frame_start", "frame_end", "duration")
MAX_ROW_BYTES = 1 << 20
MAX_ROWS = 1_000_000
CONTENT_TYPES: dict[str, ImportFormat] = {
    "text/csv": "csv", "application/csv": "csv", "application/x-ndjson": "jsonl", "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl", "application/jsonlines": "jsonl"}
BOM = b"\xef\xbb\xbf"
# Only these escapes can put a NUL or a lone surrogate into a parsed JSON value: walk the value when seen.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_rows: int = MAX_ROWS
    max_row_bytes: int = MAX_ROW_BYTES


@dataclass
class RawRow:
    """One row as read: `fields` shaped like the body of `POST /badcases`, or the `error` that makes it unreadable."""

    row: int
    line: int
    fields: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class _Line:
    number: int
    data: bytes | None  # None: longer than the row limit; its bytes were dropped


def format_of(content_type: str | None, requested: ImportFormat | None) -> ImportFormat:
    """The format asked for with `?format=`, else the one the Content-Type names (which must be UTF-8)."""
    if requested is not None:
        return requested
    media, _, params = (content_type or "").partition(";")
    found = CONTENT_TYPES.get(media.strip().lower())
    if found is None:
        raise UnsupportedImportFormat(f"cannot import {media.strip() or 'a body without Content-Type'}: send "
                                      "text/csv or application/x-ndjson (JSON lines), or add ?format=csv|jsonl")
    charset = re.search(r"charset\s*=\s*\"?([\w.:-]+)", params, re.IGNORECASE)
    if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
        raise UnsupportedImportFormat(f"the body must be UTF-8, not {charset.group(1)}")
    return found


def check_declared_size(content_length: str | None, limits: Limits) -> None:
    if content_length and content_length.strip().isdigit() and int(content_length) > limits.max_bytes:
        _too_large(limits)


def _too_large(limits: Limits) -> NoReturn:
    raise ImportTooLarge(f"the body is larger than {limits.max_bytes} bytes; split the file into several imports")


async def read_rows(body: AsyncIterator[bytes], fmt: ImportFormat, limits: Limits) -> AsyncIterator[RawRow]:
    """The rows of the body in order, numbered from 1."""
    reader = _csv_rows if fmt == "csv" else _jsonl_rows
    async for row in reader(_line_batches(body, limits), limits):
        if row.row > limits.max_rows:
            raise ImportTooLarge(f"the file has more than {limits.max_rows} rows; split it into several imports")
        yield row


async def _line_batches(body: AsyncIterator[bytes], limits: Limits) -> AsyncIterator[list[_Line]]:
    """The physical lines of each body chunk, b"\\n" included. Splitting bytes at b"\\n" is safe before
    decoding: in UTF-8 that byte is never part of another character."""
    total = number = pending_size = 0
    pending: list[bytes] = []
    dropping = False
    async for chunk in body:
        total += len(chunk)
        if total > limits.max_bytes:
            _too_large(limits)
        batch: list[_Line] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start:end + 1]
            number += 1
            if dropping or pending_size + len(piece) > limits.max_row_bytes:
                batch.append(_Line(number, None))
            else:
                batch.append(_Line(number, b"".join((*pending, piece)) if pending else piece))
            pending, pending_size, dropping = [], 0, False
            start = end + 1
        if start < len(chunk) and not dropping:
            pending_size += len(chunk) - start
            if pending_size > limits.max_row_bytes:
                pending, dropping = [], True
            else:
                pending.append(chunk[start:])
        if batch:
            yield batch
    if total == 0:
        raise InvalidImport("the body is empty: send CSV with a header row, or JSON lines")
    if pending or dropping:
        yield [_Line(number + 1, None if dropping else b"".join(pending))]


def _decode(line: _Line) -> tuple[str, str | None]:
    """The line's text, and what is wrong with it if it is not valid UTF-8."""
    data = line.data or b""
    if line.number == 1 and data.startswith(BOM):
        data = data[len(BOM):]
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return data.decode("utf-8", "replace"), (f"line {line.number} is not valid UTF-8 "
                                                 f"(byte {exc.start + 1} of the line is 0x{data[exc.start]:02x})")


# ---- JSON lines ---------------------------------------------------------------------------------------------

async def _jsonl_rows(batches: AsyncIterator[list[_Line]], limits: Limits) -> AsyncIterator[RawRow]:
    row = 0
    async for batch in batches:
        for line in batch:
            if line.data is None:
                row += 1
                yield RawRow(row, line.number, error=f"the line is longer than {limits.max_row_bytes} bytes")
                continue
            text, error = _decode(line)
            if not text.strip():
                continue
            row += 1
            yield RawRow(row, line.number, error=error) if error else _json_row(row, line.number, text)


def _json_row(row: int, line: int, text: str) -> RawRow:
    try:
        value = _loads(text)
    except ValueError as exc:
        return RawRow(row, line, error=str(exc))
    if not isinstance(value, dict):
        return RawRow(row, line, error=f"a row must be a JSON object, not {_json_kind(value)}")
    return RawRow(row, line, fields=value)


def _loads(text: str) -> Any:
    """JSON as PostgreSQL can store it: no NaN/Infinity, no NUL, no lone surrogates (ValueError otherwise)."""
    try:  # orjson for the common row (about 3x faster); anything it refuses is read again below, for the message
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = _strict_loads(text)
    if _SUSPECT_ESCAPE.search(text):
        check_text(value)
    return value


def _strict_loads(text: str) -> Any:
    """The standard library's reading: integers over 64 bits are JSON too, and its errors say where the row breaks."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise ValueError("malformed JSON: nested too deeply") from None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number; use null or a string")


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


# ---- CSV ----------------------------------------------------------------------------------------------------

@dataclass
class _Record:
    first: int
    last: int
    cells: list[str] | None
    error: str | None


class _Feed:
    """The lines the csv reader has not read yet. The csv module reads a sync iterator and cannot wait for the
    async body, so when the lines run out in the middle of a row (a quoted field spanning lines) and more may
    come, the row's lines are put back and parsed again once the buffer has doubled (linear overall)."""

    def __init__(self) -> None:
        self.lines: deque[tuple[_Line, str, str | None]] = deque()
        self.taken: list[tuple[_Line, str, str | None]] = []
        self.buffered = 0
        self.wait_for = 0
        self.ran_out = False
        self.reader = csv.reader(self, strict=True)

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if not self.lines:
            self.ran_out = True
            raise StopIteration
        item = self.lines.popleft()
        self.buffered -= len(item[0].data or b"")
        self.taken.append(item)
        return item[1]

    def push(self, line: _Line, max_row_bytes: int) -> None:
        if line.data is None:
            raise RowTooLong(f"line {line.number} is longer than {max_row_bytes} bytes")
        text, error = _decode(line)
        if error is None and "\x00" in text:
            error = f"line {line.number} contains a NUL character"
        self.lines.append((line, text, error))
        self.buffered += len(line.data)

    def records(self, *, final: bool, max_row_bytes: int) -> Iterator[_Record]:
        if not final and self.buffered < self.wait_for:
            return
        while self.lines:
            self.taken, self.ran_out = [], False
            try:
                cells, error = next(self.reader), None
            except csv.Error as exc:
                cells, error = None, str(exc)
            except StopIteration:  # the input ended inside a row without the csv module calling it an error
                cells, error = None, "unexpected end of data"
            size = sum(len(t[0].data or b"") for t in self.taken)
            first, last = self.taken[0][0].number, self.taken[-1][0].number
            if error and error.startswith("field larger than field limit"):
                # No valid report has such a field; the csv module resumes at the next line, which may be
                # inside the runaway field, so the rows after it cannot be trusted either.
                raise RowTooLong(f"the row starting on line {first} has a field longer than "
                                 f"{csv.field_size_limit()} characters; is a quoted field not closed?")
            if size > max_row_bytes:
                raise RowTooLong(f"the row starting on line {first} is longer than {max_row_bytes} bytes; "
                                 "is a quoted field not closed?")
            if self.ran_out and not final:
                self.lines.extendleft(reversed(self.taken))
                self.buffered += size
                self.wait_for = 2 * size
                return
            self.wait_for = 0
            if error and self.ran_out:
                error = (f"a quoted field is not closed: lines {first}-{last} (the end of the file) were read as "
                         "this one row")
            elif error:
                error = f"malformed CSV: {error}"
            error = next((e for _, _, e in self.taken if e), None) or error
            yield _Record(first, last, cells, error)


async def _csv_rows(batches: AsyncIterator[list[_Line]], limits: Limits) -> AsyncIterator[RawRow]:
    feed = _Feed()
    columns: list[str] | None = None
    row = 0
    final = False
    batch_iter = aiter(batches)
    while not final:
        batch = await anext(batch_iter, None)
        final = batch is None
        for line in batch or ():
            feed.push(line, limits.max_row_bytes)
        for record in feed.records(final=final, max_row_bytes=limits.max_row_bytes):
            if record.cells is not None and not any(c.strip() for c in record.cells):
                continue  # blank
            if columns is None:
                columns = _header(record)
                continue
            row += 1
            yield _csv_row(row, record, columns)
    if columns is None:
        raise InvalidImport("the CSV has no header row: the first line must name the columns, e.g. "
                            "function,data,prediction,ground_truth")


def _header(record: _Record) -> list[str]:
    if record.error or record.cells is None:
        raise InvalidImport(f"the header (line {record.first}) cannot be read: {record.error}")
    columns = [c.strip().lower() for c in record.cells]
    unnamed = [str(i + 1) for i, c in enumerate(columns) if not c]
    if unnamed:
        raise InvalidImport(f"header column {', '.join(unnamed)} has no name")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise InvalidImport(f"the header repeats {', '.join(repeated)}")
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if unknown:
        raise UnknownColumns(f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(repr(c) for c in unknown)}"
                             f"; the columns are: {', '.join(CSV_COLUMNS)}")
    if "function" not in columns:
        raise InvalidImport("the header has no 'function' column; every badcase needs one")
    return columns


def _csv_row(row: int, record: _Record, columns: list[str]) -> RawRow:
    if record.error or record.cells is None:
        return RawRow(row, record.first, error=record.error)
    if len(record.cells) != len(columns):
        return RawRow(row, record.first, error=f"the row has {len(record.cells)} cells; the header has "
                                               f"{len(columns)}")
    try:
        return RawRow(row, record.first, fields=_csv_fields(columns, record.cells))
    except ValueError as exc:
        return RawRow(row, record.first, error=str(exc))


def _csv_fields(columns: list[str], cells: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, cell in zip(columns, cells, strict=True):
        value = cell.strip()
        if not value:
            continue
        if name == "data":
            fields["data"] = [_data_ref(part.strip()) for part in value.split(";") if part.strip()]
        elif name == "tags":
            fields["tags"] = [t.strip() for t in value.split(";") if t.strip()]
        elif name in ("prediction", "ground_truth"):
            fields[name] = _json_or_label(name, value)
        elif name == "features":
            fields[name] = _json_object(name, value)
        else:
            fields[name] = cell if name == "description" else value
    return fields


def _data_ref(part: str) -> dict[str, str]:
    kind, sep, value = part.partition(":")
    if not sep:
        raise ValueError(f"data: {part[:60]!r} is not kind:value (md5:<hex>, key:<object key> or url:<URL>)")
    return {"kind": kind.strip().lower(), "value": value.strip()}


def _json_object(name: str, value: str) -> Any:
    try:
        parsed = _loads(value)
    except ValueError as exc:
        raise ValueError(f"{name}: must be a JSON object, e.g. {{\"alcohol\": 13.2}} ({exc})") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{name}: must be a JSON object of column → value, not {_json_kind(parsed)}")
    return parsed


def _json_or_label(name: str, value: str) -> Any:
    if value[0] not in "{[":
        return value
    try:
        return _loads(value)
    except ValueError as exc:
        raise ValueError(f"{name}: starts with {value[0]} but is not valid JSON ({exc})") from None
