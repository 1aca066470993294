"""Documents: import (rows validated, each error reported with its row), versions (every change is a
new version; old ones stay readable), retrieval with filters. A document's rows name files, or, in a
plain table (`kind=table`), hold feature columns and a label."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dam.document import export, matching, parser, table, validation
from dam.document.exceptions import DocumentExists, DocumentNotFound, InvalidCell, InvalidDocument, UnknownColumn
from dam.document.models import BADCASE_TEST_SET, TABLE, Document, DocumentRow, DocumentVersion
from dam.document.repository import DocumentRepository
from dam.document.schemas import RowFilter, SearchRequest
from dam.file.models import File
from dam.file.repository import FileRepository
from dam.file.service import MD5_RE
from mlife_shared.db import utcnow
from mlife_shared.events.contracts import DocumentCreated
from mlife_shared.messaging import outbox
from mlife_shared.plugins import seams_of
from mlife_shared.plugins.registry import Plugins, plugins
from mlife_shared.plugins.seams.converters import Imported

MAX_ERRORS = validation.MAX_ERRORS


def unstorable(value: Any, depth: int = 0) -> str | None:
    """Why a value cannot be stored (PostgreSQL text and JSON refuse NUL, lone surrogates and NaN), or None."""
    if depth > 32:
        return "is nested too deeply"
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid Unicode)"
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return "is NaN or infinite"
    elif isinstance(value, dict):
        for k, v in value.items():
            why = unstorable(k, depth + 1) or unstorable(v, depth + 1)
            if why:
                return why
    elif isinstance(value, (list, tuple)):
        for v in value:
            why = unstorable(v, depth + 1)
            if why:
                return why
    return None


def require_storable(what: str, *values: Any) -> None:
    for v in values:
        why = unstorable(v)
        if why:
            raise InvalidDocument(f"{what} {why}")


def require_storable_rows(raw: list[dict[str, Any]]) -> None:
    """InvalidDocument listing every (row, column) whose name or value PostgreSQL cannot store."""
    errors = [{"row": n, "column": str(col)[:64].encode("utf-8", "replace").decode(), "message": f"the value {why}"}
              for n, r in enumerate(raw, start=1) for col, value in r.items()
              if (why := unstorable(col) or unstorable(value))]
    if errors:
        raise InvalidDocument({"message": f"{len(errors)} invalid values; nothing was imported",
                               "errors": errors[:MAX_ERRORS]})


def label_of(annotation: Any) -> str | None:
    """The class of a row: the annotation itself, its `label`, or the most frequent box label."""
    if annotation is None:
        return None
    if isinstance(annotation, (str, int, float, bool)):
        return str(annotation)[:200]
    if isinstance(annotation, dict):
        if isinstance(annotation.get("label"), (str, int)):
            return str(annotation["label"])[:200]
        boxes = annotation.get("boxes")
        if isinstance(boxes, list):
            labels = [str(b.get("label")) for b in boxes if isinstance(b, dict) and b.get("label") is not None]
            if labels:
                return max(sorted(set(labels)), key=labels.count)[:200]
    return None


def box_labels(annotation: Any) -> list[str]:
    if isinstance(annotation, dict) and isinstance(annotation.get("boxes"), list):
        return [str(b.get("label")) for b in annotation["boxes"] if isinstance(b, dict) and b.get("label") is not None]
    return []


def filter_columns(doc: Document) -> list[str]:
    """The columns a row filter may name: the extra columns and the feature columns."""
    return [*doc.columns, *(doc.feature_columns or [])]


def reserved_name(name: str) -> bool:
    n = name.strip().lower()
    return n == BADCASE_TEST_SET or n.startswith(BADCASE_TEST_SET + ":")


def search_text(path: str | None, annotation: Any, extra: dict[str, Any]) -> str:
    parts = [path or "", annotation if isinstance(annotation, str) else json.dumps(annotation, default=str)]
    parts += [str(v) for v in extra.values() if v is not None]
    return " ".join(parts).lower()[:4000]


@dataclass
class Version:
    document: Document
    version: DocumentVersion


class DocumentService:
    def __init__(self, session: AsyncSession, *, max_rows: int = 500_000, plugins_: Plugins | None = None) -> None:
        self.session = session
        self.plugins = plugins_ if plugins_ is not None else plugins(*seams_of("dam"))
        self.repo = DocumentRepository(session)
        self.files = FileRepository(session)
        self.max_rows = max_rows

    # ---- reading ------------------------------------------------------------------------------

    async def get(self, document_id: uuid.UUID, *, lock: bool = False) -> Document:
        doc = await (self.repo.get_for_update if lock else self.repo.get)(Document, document_id)
        if doc is None:
            raise DocumentNotFound(f"no document {document_id}")
        return doc

    async def version(self, document_id: uuid.UUID, version: int | None = None) -> Version:
        doc = await self.get(document_id)
        v = await self.repo.version(doc.id, version or doc.current_version)
        if v is None:
            raise DocumentNotFound(f"document {doc.name!r} has no version {version}; it has 1..{doc.current_version}")
        return Version(doc, v)

    async def find(self, *, q: str | None, kind: str | None, function: str | None, limit: int,
                   offset: int) -> list[tuple[Document, int]]:
        """Documents, most recently changed first, each with the row count of its current version."""
        out = []
        for d in await self.repo.find(q=q, kind=kind, function=function, limit=limit, offset=offset):
            v = await self.repo.version(d.id, d.current_version)
            out.append((d, v.row_count if v else 0))
        return out

    async def versions(self, document_id: uuid.UUID) -> list[DocumentVersion]:
        await self.get(document_id)
        return await self.repo.versions(document_id)

    async def search(self, body: SearchRequest) -> tuple[list[tuple[DocumentRow, File | None, Version]], int]:
        """Rows of the current versions of documents (all, or those named), each with its document version."""
        current = [Version(d, v) for d, v in await self.repo.current_versions(body.document_ids)]
        self.check_filter(sorted({c for v in current for c in filter_columns(v.document)}), body)
        rows, total = await self.rows([v.version for v in current], body, limit=body.limit, offset=body.offset)
        # a row of an appended version was added by an earlier version of its document
        by_document = {v.document.id: v for v in current}
        document_of = await self.repo.documents_of({r.version_id for r, _ in rows})
        return [(r, f, by_document[document_of[r.version_id]]) for r, f in rows], total

    def check_filter(self, columns: Sequence[str], f: RowFilter) -> None:
        why = unstorable(f.model_dump(mode="json"))
        if why:
            raise InvalidDocument(f"a filter value {why}")
        for col in (f.columns or {}):
            if col not in columns:
                raise UnknownColumn(f"unknown column {col!r}; the columns are {', '.join(columns) or 'none'}")
        for m in f.md5s or []:
            if not MD5_RE.match(m):
                raise InvalidDocument(f"{m[:64]!r} is not an MD5")

    async def rows(self, versions: Sequence[DocumentVersion], f: RowFilter, *, limit: int | None = None,
                   offset: int = 0) -> tuple[list[tuple[DocumentRow, File | None]], int]:
        stmt = self.repo.rows_statement(versions, labels=f.labels, has_annotation=f.has_annotation,
                                        media_types=f.media_types, min_size=f.min_size, max_size=f.max_size,
                                        q=f.q, md5s=f.md5s)
        if not f.columns:
            total = await self.repo.count_rows(stmt)
            return await self.repo.rows(stmt, limit=limit, offset=offset), total
        wanted = {k: ({v} if isinstance(v, str) else set(v)) for k, v in f.columns.items()}
        matched = [(r, fl) for r, fl in await self.repo.rows(stmt)
                   if all(str(r.extra[k] if k in r.extra else (r.features or {}).get(k)) in vs
                          for k, vs in wanted.items())]
        end = None if limit is None else offset + limit
        return matched[offset:end], len(matched)

    # ---- writing ------------------------------------------------------------------------------

    async def _paths(self, raw: list[dict[str, Any]], match: str
                     ) -> tuple[dict[str, tuple[str, str]], dict[str, list[str]]]:
        """The files the rows' paths name: ({path: (md5, upload path)}, {path: the uploads it names, if several})."""
        wanted = {r["path"] for r in raw if isinstance(r.get("path"), str) and r["path"] and not r.get("md5")}
        paths = {p: (m, p) for p, m in (await self.files.resolve_paths(wanted)).items()}
        rest = wanted - set(paths)
        if match != "stem" or not rest:
            return paths, {}
        candidates = await self.repo.paths_containing({matching.needle(h) for h in rest})
        unique, several = matching.by_stem(rest, candidates)
        return paths | unique, several

    async def validate(self, columns: list[str], raw: list[dict[str, Any]], *, decode_annotation: bool,
                       allowed_columns: Sequence[str] | None, match: str = "path"
                       ) -> tuple[list[str], list[dict[str, Any]]]:
        """Rows ready to insert, or InvalidDocument listing every bad row (first 100)."""
        self._check_row_count(raw)
        extras = validation.extra_columns(columns, allowed_columns)
        require_storable_rows(raw)
        md5s = [m.strip().lower() for r in raw if isinstance(m := r.get("md5"), str) and m]
        known = await self.files.existing(md5s)
        paths, several = await self._paths(raw, match)
        errors: list[dict[str, Any]] = []
        out = []
        for n, r in enumerate(raw, start=1):
            try:
                md5, path = validation.row_file(r, known, paths, several)
                annotation = validation.row_annotation(r, decode_annotation)
                extra = validation.row_extra(r, extras)
            except InvalidCell as bad:
                errors.append({"row": n, "column": bad.column, "message": bad.message})
                continue
            out.append(dict(md5=md5, path=path, annotation=annotation, label=label_of(annotation), extra=extra,
                            search_text=search_text(path, annotation, extra)))
        validation.refuse_invalid_rows(errors)
        await self._pixel_boxes(out)
        return extras, out

    async def _pixel_boxes(self, rows: list[dict[str, Any]]) -> None:
        """Boxes in fractions of the image (YOLO) in pixels of the file's measured size."""
        relative = [r for r in rows if matching.pixel_boxes(r["annotation"], None) is not r["annotation"]]
        if not relative:
            return
        sizes = await self.files.many({r["md5"] for r in relative})
        for r in relative:
            r["annotation"] = matching.pixel_boxes(r["annotation"], sizes.get(r["md5"]))
            r["search_text"] = search_text(r["path"], r["annotation"], r["extra"])

    def _check_row_count(self, raw: list[dict[str, Any]]) -> None:
        if len(raw) > self.max_rows:
            raise InvalidDocument(f"the document has {len(raw)} rows; the limit is {self.max_rows}")

    def validate_table(self, columns: list[str], raw: list[dict[str, Any]], *, label_column: str | None,
                       allowed_features: list[str] | None) -> tuple[str, list[str], list[dict[str, Any]]]:
        """(label column, feature columns, rows) of a plain table, or InvalidDocument listing every bad row."""
        self._check_row_count(raw)
        require_storable_rows(raw)
        label = table.pick_label_column(columns, label_column)
        features, rows, errors = table.validate(columns, raw, label_column=label, allowed_features=allowed_features)
        validation.refuse_invalid_rows(errors)
        return label, features, rows

    def read(self, data: bytes, fmt: str | None, *, content_type: str | None = None,
             options: dict[str, str] | None = None) -> tuple[str, Imported]:
        """(the format, its rows) of a body: the converter named, else the one most sure of the body."""
        fmt = fmt or parser.detect(self.plugins, content_type, data)
        return fmt, parser.read(parser.converter(self.plugins, fmt, exporting=False), data, options or {})

    async def create(self, *, name: str, description: str, data: bytes, fmt: str | None, user: str | None,
                     kind: str | None = None, label_column: str | None = None, content_type: str | None = None,
                     options: dict[str, str] | None = None) -> Version:
        why = unstorable(name) or unstorable(description) or unstorable(label_column)
        if why or any(ord(c) < 32 for c in name):
            raise InvalidDocument(f"the name, description or label column {why or 'contains control characters'}")
        if reserved_name(name):
            raise DocumentExists(f"{name!r}: names starting with {BADCASE_TEST_SET!r} are the standing documents "
                                 "BAM's badcases join (one per function); choose another name")
        if await self.repo.by_name(name) is not None:
            raise DocumentExists(f"a document named {name!r} exists; add a version to it instead")
        fmt, imported = self.read(data, fmt, content_type=content_type, options=options)
        columns, raw = imported.columns, imported.rows
        if kind is None:
            kind = "standard" if "md5" in columns or "path" in columns else TABLE
        if kind == TABLE:
            label, features, rows = self.validate_table(columns, raw, label_column=label_column, allowed_features=None)
            doc = Document(name=name, description=description, kind=TABLE, columns=[], label_column=label,
                           feature_columns=features, current_version=0, created_by=user)
        else:
            if label_column is not None:
                raise InvalidDocument("label_column names the label of a plain table (kind=table); a document of "
                                      "files has its label in the 'annotation' column")
            extras, rows = await self.validate(columns, raw, decode_annotation=imported.text_cells,
                                               allowed_columns=None, match=imported.match)
            doc = Document(name=name, description=description, kind=kind, columns=extras, current_version=0,
                           created_by=user)
        return await self.write_version(await self.repo.add(doc), rows, message=f"imported ({fmt})", user=user)

    async def import_version(self, document_id: uuid.UUID, *, data: bytes, fmt: str | None, mode: str,
                             user: str | None, allow_new_columns: bool, content_type: str | None = None,
                             options: dict[str, str] | None = None) -> Version:
        doc = await self.get(document_id, lock=True)
        fmt, imported = self.read(data, fmt, content_type=content_type, options=options)
        columns, raw = imported.columns, imported.rows
        if doc.kind == TABLE:
            _, features, rows = self.validate_table(
                columns, raw, label_column=doc.label_column,
                allowed_features=None if allow_new_columns else list(doc.feature_columns or []))
            doc.feature_columns = list(dict.fromkeys([*(doc.feature_columns or []), *features]))
        else:
            extras, rows = await self.validate(columns, raw, decode_annotation=imported.text_cells,
                                               allowed_columns=None if allow_new_columns else doc.columns,
                                               match=imported.match)
            doc.columns = list(dict.fromkeys([*doc.columns, *extras]))
        if mode == "append":
            rows = await self.current_rows(doc) + rows
        return await self.write_version(doc, rows, message=f"{mode} ({fmt})", user=user)

    async def export(self, document_id: uuid.UUID, version: int | None, fmt: str, base_url: str) -> export.Exported:
        """A version written by the converter `fmt` (422 when it does not export, or cannot write this document)."""
        conv = parser.converter(self.plugins, fmt, exporting=True)
        v = await self.version(document_id, version)
        rows = (await self.rows([v.version], RowFilter()))[0]
        d = v.document
        return export.write(conv, name=d.name, version=v.version.version, kind=d.kind, columns=d.columns,
                            features=d.feature_columns or [], label_column=d.label_column, rows=rows,
                            base_url=base_url)

    async def current_rows(self, doc: Document) -> list[dict[str, Any]]:
        if doc.current_version == 0:
            return []
        v = await self.repo.version(doc.id, doc.current_version)
        assert v is not None
        found = await self.repo.rows(self.repo.rows_statement([v]))
        return [dict(md5=r.md5, path=r.path, annotation=r.annotation, label=r.label, extra=r.extra,
                     features=r.features, search_text=r.search_text) for r, _ in found]

    async def write_version(self, doc: Document, rows: list[dict[str, Any]], *, message: str, user: str | None,
                            correlation: dict[str, Any] | None = None) -> Version:
        """A new version holding `rows`, written whole."""
        doc.current_version += 1
        doc.updated_at = utcnow()
        version = await self.repo.add_version(DocumentVersion(document_id=doc.id, version=doc.current_version,
                                                              since=doc.current_version, row_count=len(rows),
                                                              message=message, created_by=user), rows)
        return await self._created(doc, version, correlation)

    async def append_version(self, doc: Document, rows: list[dict[str, Any]], *, replacing: tuple[str, Collection[str]],
                             message: str, user: str | None, correlation: dict[str, Any] | None = None) -> Version:
        """A new version extending the current one: `rows` are inserted, the current rows whose extra column
        `replacing[0]` is one of `replacing[1]` retired; the rows already there are not written again."""
        base = await self.repo.version(doc.id, doc.current_version) if doc.current_version else None
        if base is None:
            return await self.write_version(doc, rows, message=message, user=user, correlation=correlation)
        doc.current_version += 1
        doc.updated_at = utcnow()
        version = DocumentVersion(document_id=doc.id, version=doc.current_version, since=base.since or base.version,
                                  row_count=0, message=message, created_by=user)
        key, values = replacing
        retired = await self.repo.retire(base, doc.current_version, key, values)
        await self.repo.add_version(version, rows, first_position=await self.repo.next_position(base))
        version.row_count = base.row_count - retired + len(rows)
        return await self._created(doc, version, correlation)

    async def _created(self, doc: Document, version: DocumentVersion, correlation: dict[str, Any] | None) -> Version:
        await outbox.add(self.session, DocumentCreated(document_id=doc.id, version=version.version, name=doc.name,
                                                       row_count=version.row_count), **(correlation or {}))
        return Version(doc, version)
