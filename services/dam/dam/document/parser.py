"""Documents in and out of CSV, JSON (an array, `{"rows": [...]}` or JSON lines) and XML. XML is parsed
with defusedxml: DTDs, entity declarations and external references are refused, not expanded."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from dam.document.exceptions import InvalidDocument

FORMATS = ("csv", "json", "xml")
RESERVED = ("md5", "path", "annotation")
COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def detect_format(content_type: str | None, data: bytes) -> str:
    ct = (content_type or "").lower()
    if "csv" in ct:
        return "csv"
    if "json" in ct:
        return "json"
    if "xml" in ct:
        return "xml"
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"{", b"[")):
        return "json"
    if head.startswith(b"<"):
        return "xml"
    return "csv"


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDocument(f"the document is not UTF-8 (byte {exc.start})") from exc


def maybe_json(value: str | None) -> Any:
    """A cell that holds a structured annotation (`{...}`, `[...]`) is JSON; anything else is a string."""
    if value is None:
        return None
    s = value.strip()
    if s == "":
        return None
    if s[0] in "{[":
        try:
            return json.loads(s)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"the annotation looks like JSON but is not valid JSON: {exc}") from exc
    return value


def parse(data: bytes, fmt: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns in order, rows as dicts); the annotation of CSV and XML rows is decoded by the service."""
    if fmt == "csv":
        return _csv(data)
    if fmt == "json":
        return _json(data)
    if fmt == "xml":
        return _xml(data)
    raise InvalidDocument(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _csv(data: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    text = _text(data)
    if "\x00" in text:
        raise InvalidDocument("the CSV contains a NUL byte")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise InvalidDocument("the CSV is empty: the first line must name the columns")
        header = [h.strip() for h in header]
        twice = sorted(h for h, n in Counter(header).items() if n > 1)
        if twice:
            raise InvalidDocument(f"the CSV names the columns {twice[:10]} more than once: each column once")
        rows = []
        for n, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise InvalidDocument({"row": n, "message": f"{len(values)} values for {len(header)} columns"})
            rows.append(dict(zip(header, values, strict=True)))
    except csv.Error as exc:
        raise InvalidDocument(f"the CSV is malformed: {exc}") from exc
    return header, rows


def _json(data: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    text = _text(data)
    try:
        parsed = json.loads(text)
    except RecursionError as exc:
        raise InvalidDocument("the JSON is nested too deeply") from exc
    except ValueError:
        parsed = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    parsed.append(json.loads(line))
                except (ValueError, RecursionError) as exc:
                    raise InvalidDocument({"row": n, "message": f"not JSON: {exc}"}) from exc
    if isinstance(parsed, dict) and isinstance(parsed.get("rows"), list):
        parsed = parsed["rows"]
    elif isinstance(parsed, dict) and "rows" not in parsed:
        parsed = [parsed]  # JSON lines of one line
    if not isinstance(parsed, list):
        raise InvalidDocument('the JSON must be an array of rows, {"rows": [...]}, or JSON lines')
    columns: dict[str, None] = {}
    for n, row in enumerate(parsed, start=1):
        if not isinstance(row, dict):
            raise InvalidDocument({"row": n, "message": "a row must be a JSON object"})
        columns.update(dict.fromkeys(row))
    return list(columns), parsed


def _xml(data: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise InvalidDocument(f"the XML is refused: {type(exc).__name__} (DTDs, entities and external "
                              "references are not allowed)") from exc
    except SafeET.ParseError as exc:
        raise InvalidDocument(f"the XML is malformed: {exc}") from exc
    columns: dict[str, None] = {}
    rows = []
    for n, el in enumerate(list(root), start=1):
        row: dict[str, Any] = {}
        for child in el:
            if len(child):
                raise InvalidDocument({"row": n, "message": f"<{child.tag}> must hold text, not elements"})
            row[child.tag] = child.text or ""
        columns.update(dict.fromkeys(row))
        rows.append(row)
    return list(columns), rows
