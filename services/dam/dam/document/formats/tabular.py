"""CSV, TSV, JSON (an array, `{"rows": [...]}` or JSON lines) and XML (`<document><row><col>…`): a document's rows
as a table. XML is parsed with defusedxml: DTDs, entity declarations and external references are refused, not
expanded. On export a plain table is its features and its label column (it imports back as a table); any other
document is md5, path, annotation, its extra columns, then the features its rows have. In CSV and TSV a text cell
a spreadsheet would run as a formula is quoted (csvsafe)."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from mlife_shared import csvsafe
from mlife_shared.plugins.seams.converters import ConversionError, ExportDocument, Imported, Row

API = ">=1,<2"


def text(data: bytes, what: str = "the document") -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConversionError(f"{what} is not UTF-8 (byte {exc.start})") from exc


def head(data: bytes) -> bytes:
    return data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")


def cell(v: Any) -> str:
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v)


@dataclass(frozen=True)
class Shape:
    columns: list[str]
    features: list[str]
    label_column: str | None = None

    @classmethod
    def of(cls, doc: ExportDocument) -> Shape:
        return cls(doc.columns, doc.features, doc.label_column if doc.kind == "table" else None)

    def header(self) -> list[str]:
        if self.label_column is not None:
            return [*self.features, self.label_column]
        return ["md5", "path", "annotation", *self.columns, *[f for f in self.features if f not in self.columns]]

    def values(self, r: Row) -> list[tuple[str, Any]]:
        features = r.features or {}
        if self.label_column is not None:
            return [*[(c, features.get(c)) for c in self.features], (self.label_column, r.annotation)]
        return [("md5", r.md5), ("path", r.path), ("annotation", r.annotation),
                *[(c, r.extra.get(c)) for c in self.columns],
                *[(c, features.get(c)) for c in self.features if c not in self.columns]]


class Csv:
    name = "csv"
    api = API
    description = "CSV: a header naming the columns (md5 or path, annotation, extra columns; or a table's features)"
    media_type = "text/csv"
    extension = "csv"
    imports = exports = True
    delimiter = ","

    def detect(self, data: bytes, content_type: str | None) -> int:
        if self.extension in (content_type or "").lower() or "comma-separated" in (content_type or "").lower():
            return 90
        start = head(data)
        if b"\x00" in start or start.startswith(b"PK\x03\x04"):  # binary, a zip
            return 0
        return 10 if start[:1] not in (b"", b"{", b"[", b"<") else 0

    def read(self, data: bytes, options: dict[str, str]) -> Imported:
        body = text(data)
        if "\x00" in body:
            raise ConversionError(f"the {self.name.upper()} contains a NUL byte")
        reader = csv.reader(io.StringIO(body, newline=""), delimiter=self.delimiter)
        try:
            header = next(reader, None)
            if not header:
                raise ConversionError(f"the {self.name.upper()} is empty: the first line must name the columns")
            header = [h.strip() for h in header]
            twice = sorted(h for h, n in Counter(header).items() if n > 1)
            if twice:
                raise ConversionError(f"the {self.name.upper()} names the columns {twice[:10]} more than once: "
                                      "each column once")
            rows = []
            for n, values in enumerate(reader, start=2):
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    raise ConversionError(f"{len(values)} values for {len(header)} columns", row=n)
                rows.append(dict(zip(header, values, strict=True)))
        except csv.Error as exc:
            raise ConversionError(f"the {self.name.upper()} is malformed: {exc}") from exc
        return Imported(columns=header, rows=rows, text_cells=True)

    def write(self, document: ExportDocument) -> bytes:
        shape = Shape.of(document)
        return csvsafe.write(shape.header(), ([cell(v) for _, v in shape.values(r)] for r in document.rows),
                             delimiter=self.delimiter)


class Tsv(Csv):
    name = "tsv"
    description = "TSV: as CSV, with tabs between the values"
    media_type = "text/tab-separated-values"
    extension = "tsv"
    delimiter = "\t"

    def detect(self, data: bytes, content_type: str | None) -> int:
        if "tab-separated" in (content_type or "").lower():
            return 95
        first = head(data).split(b"\n", 1)[0]
        return 20 if b"\t" in first and b"," not in first and first[:1] not in (b"{", b"[", b"<") else 0


class Json:
    name = "json"
    api = API
    description = "JSON: an array of row objects, an object with a rows array, or JSON lines"
    media_type = "application/json"
    extension = "json"
    imports = exports = True

    def detect(self, data: bytes, content_type: str | None) -> int:
        if "json" in (content_type or "").lower():
            return 60
        return 50 if head(data)[:1] in (b"{", b"[") else 0

    def read(self, data: bytes, options: dict[str, str]) -> Imported:
        body = text(data)
        try:
            parsed = json.loads(body)
        except RecursionError as exc:
            raise ConversionError("the JSON is nested too deeply") from exc
        except ValueError:
            parsed = []
            for n, line in enumerate(body.splitlines(), start=1):
                if line.strip():
                    try:
                        parsed.append(json.loads(line))
                    except (ValueError, RecursionError) as exc:
                        raise ConversionError(f"not JSON: {exc}", row=n) from exc
        if isinstance(parsed, dict) and isinstance(parsed.get("rows"), list):
            parsed = parsed["rows"]
        elif isinstance(parsed, dict) and "rows" not in parsed:
            parsed = [parsed]  # JSON lines of one line
        if not isinstance(parsed, list):
            raise ConversionError('the JSON must be an array of rows, {"rows": [...]}, or JSON lines')
        columns: dict[str, None] = {}
        for n, row in enumerate(parsed, start=1):
            if not isinstance(row, dict):
                raise ConversionError("a row must be a JSON object", row=n)
            columns.update(dict.fromkeys(row))
        return Imported(columns=list(columns), rows=parsed)

    def write(self, document: ExportDocument) -> bytes:
        shape = Shape.of(document)
        return json.dumps([dict(shape.values(r)) for r in document.rows], ensure_ascii=False).encode()


def parse_xml(data: bytes) -> ET.Element:
    """The root of an XML body, parsed safely (defusedxml: no DTD, no entity, no external reference)."""
    try:
        root: ET.Element = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ConversionError(f"the XML is refused: {type(exc).__name__} (DTDs, entities and external "
                              "references are not allowed)") from exc
    except SafeET.ParseError as exc:
        raise ConversionError(f"the XML is malformed: {exc}") from exc
    return root


class Xml:
    name = "xml"
    api = API
    description = "XML: <document><row><md5>…</md5><annotation>…</annotation>…</row></document>"
    media_type = "application/xml"
    extension = "xml"
    imports = exports = True

    def detect(self, data: bytes, content_type: str | None) -> int:
        if "xml" in (content_type or "").lower():
            return 60
        return 50 if head(data)[:1] == b"<" else 0

    def read(self, data: bytes, options: dict[str, str]) -> Imported:
        root = parse_xml(data)
        columns: dict[str, None] = {}
        rows = []
        for n, el in enumerate(list(root), start=1):
            row: dict[str, Any] = {}
            for child in el:
                if len(child):
                    raise ConversionError(f"<{child.tag}> must hold text, not elements", row=n)
                row[child.tag] = child.text or ""
            columns.update(dict.fromkeys(row))
            rows.append(row)
        return Imported(columns=list(columns), rows=rows, text_cells=True)

    def write(self, document: ExportDocument) -> bytes:
        shape = Shape.of(document)
        root = ET.Element("document", {"name": document.name, "version": str(document.version)})
        for r in document.rows:
            el = ET.SubElement(root, "row")
            for tag, value in shape.values(r):
                if value is not None:
                    ET.SubElement(el, tag).text = cell(value)
        body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        return body
