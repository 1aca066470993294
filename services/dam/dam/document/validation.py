"""The rules a row of a document of files meets on import: its columns, the file it names (by MD5, path or, matched
by stem, its name), its annotation and extra cells; every bad row is reported with its row number."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from dam.document import parser, table
from dam.document.exceptions import InvalidCell, InvalidDocument, UnknownColumn
from dam.file.service import MD5_RE, check_path
from mlife_shared.errors import MLifeError

MAX_ERRORS = 100  # the bad rows an import reports (service.MAX_ERRORS is this)


def extra_columns(columns: list[str], allowed_columns: Sequence[str] | None) -> list[str]:
    """The extra columns of a document of files (all but md5, path, annotation), refused if one is not a column
    name or not one of `allowed_columns` (when given); and the document must name its files."""
    extras = [c for c in columns if c not in parser.RESERVED]
    bad = [c for c in extras if not parser.COLUMN_RE.match(c)]
    if bad:
        raise InvalidDocument(f"invalid column names {bad[:10]}: use letters, digits, '_', '.', '-' "
                              "(up to 64, starting with a letter or '_')")
    if allowed_columns is not None:
        unknown = [c for c in extras if c not in allowed_columns]
        if unknown:
            raise UnknownColumn(f"unknown columns {unknown[:20]}; the document's columns are "
                                f"{list(allowed_columns)} (pass allow_new_columns=true to add them)")
    if "md5" not in columns and "path" not in columns:
        raise InvalidDocument("the document needs an 'md5' or a 'path' column naming each row's file, "
                              "or is a plain table of feature columns and a label (kind=table, label_column=)")
    return extras


def row_file(r: dict[str, Any], known: Collection[str], paths: dict[str, tuple[str, str]],
              several: dict[str, list[str]]) -> tuple[str, str | None]:
    """(MD5, path) of the uploaded file a row names by its md5, its path (or, matched by stem, its name without
    extension) or both, or InvalidCell."""
    md5 = r.get("md5") or None
    path = r.get("path") or None
    if md5 is not None:
        md5 = str(md5).strip().lower()
        if not MD5_RE.match(md5):
            raise InvalidCell("md5", f"{str(r.get('md5'))[:64]!r} is not an MD5 (32 hexadecimal characters)")
        if md5 not in known:
            raise InvalidCell("md5", f"no uploaded file has MD5 {md5}; upload it first (POST /files)")
    if path is not None:
        if not isinstance(path, str):
            raise InvalidCell("path", "the path must be a string")
        try:
            check_path(path)
        except MLifeError as exc:
            raise InvalidCell("path", str(exc.message)) from exc
        if md5 is None:
            if path in several:
                raise InvalidCell("path", f"{path!r} names {len(several[path])} or more uploads ("
                                          f"{', '.join(several[path])}): name the file by its md5 or its full path")
            if path not in paths:
                raise InvalidCell("path", f"no uploaded file has the path {path!r}")
            md5, path = paths[path]
    if md5 is None:
        raise InvalidCell("md5", "the row names no file: give an md5 or a path")
    return md5, path


def row_annotation(r: dict[str, Any], decode: bool) -> Any:
    """A row's annotation: JSON text decoded when `decode` (CSV, XML), '' as None."""
    annotation = r.get("annotation")
    if decode and isinstance(annotation, str):
        try:
            return parser.maybe_json(annotation)
        except ValueError as exc:
            raise InvalidCell("annotation", str(exc)) from exc
    return None if annotation == "" else annotation


def row_extra(r: dict[str, Any], extras: list[str]) -> dict[str, Any]:
    extra = {c: r.get(c) for c in extras if c in r}
    deep = table.nested(extra)
    if deep is not None:
        raise InvalidCell(deep, "extra columns hold plain values (text, numbers), not objects")
    return extra


def refuse_invalid_rows(errors: list[dict[str, Any]]) -> None:
    if errors:
        raise InvalidDocument({"message": f"{len(errors)} invalid rows; nothing was imported",
                               "errors": errors[:MAX_ERRORS]})
