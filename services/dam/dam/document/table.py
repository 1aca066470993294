"""Plain tables: documents whose rows are feature columns and a label, with no file. Every column but
the label column is a feature; CSV cells that read as numbers are stored as numbers. A row's identity
(where a file row has its MD5: dedup, the deterministic split, leakage) is the hash of its canonical
features and label."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from dam.document import parser
from dam.document.exceptions import InvalidCell, InvalidDocument, UnknownColumn

INTEGER = re.compile(r"^[+-]?\d{1,18}$")
DECIMAL = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?$")
DEFAULT_LABEL_COLUMNS = ("label", "annotation")


def cell(value: Any) -> Any:
    """A CSV / XML cell as a value: '' → None, a decimal number → int or float, anything else as it is."""
    if not isinstance(value, str):
        return value
    s = value.strip()
    if s == "":
        return None
    if INTEGER.match(s):
        return int(s)
    if DECIMAL.match(s):
        return float(s)
    return value


def label_value(value: Any) -> Any:
    """A label cell: a number, JSON for a structured value (`{...}`), else the text."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        return parser.maybe_json(value)
    return cell(value)


def _canonical(value: Any) -> Any:
    value = cell(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    return value


def row_id(features: dict[str, Any], annotation: Any) -> str:
    """The identity of a table row: the same features and label give the same id, whatever the source
    (a CSV's "13.0" and a badcase's 13 are one value)."""
    canonical = {"features": {str(k): _canonical(v) for k, v in features.items()},
                 "label": _canonical(annotation) if not isinstance(annotation, (dict, list)) else annotation}
    body = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()


def item_id(md5: str | None, features: dict[str, Any] | None, annotation: Any) -> str | None:
    """A dataset item's identity: its file's MD5, else its row hash; None for a row with neither."""
    if md5:
        return md5
    if features is not None:
        return row_id(features, annotation)
    return None


def nested(features: dict[str, Any]) -> str | None:
    """The first feature holding nested JSON (features are plain numbers or text), or None."""
    return next((k for k, v in features.items() if isinstance(v, (dict, list))), None)


def pick_label_column(columns: list[str], requested: str | None) -> str:
    if requested is not None:
        if requested not in columns:
            raise InvalidDocument(f"the table has no label column {requested!r}; its columns are "
                             f"{', '.join(columns[:30]) or 'none'} (name the label with label_column=)")
        return requested
    for c in DEFAULT_LABEL_COLUMNS:
        if c in columns:
            return c
    raise InvalidDocument(f"the table has no 'label' column; its columns are {', '.join(columns[:30]) or 'none'} "
                     "(name the label with label_column=)")


def validate(columns: list[str], raw: list[dict[str, Any]], *, label_column: str,
             allowed_features: list[str] | None) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """(feature columns, rows ready to insert, errors by row and column) of a plain table."""
    from dam.document.service import label_of, search_text

    features = _feature_columns(columns, label_column, allowed_features)
    problems: list[dict[str, Any]] = []
    out = []
    for n, r in enumerate(raw, start=1):
        try:
            values, annotation = _row_cells(r, features, label_column)
        except InvalidCell as bad:
            problems.append({"row": n, "column": bad.column, "message": bad.message})
            continue
        out.append(dict(md5=None, path=None, annotation=annotation, label=label_of(annotation), extra={},
                        features=values, search_text=search_text(None, annotation, values)))
    return features, out, problems


def _feature_columns(columns: list[str], label_column: str, allowed_features: list[str] | None) -> list[str]:
    """Every column but the label: refused if one names a file, is not a column name, or is not one of
    `allowed_features` (when given), or if there is none."""
    features = [c for c in columns if c != label_column]
    files = [c for c in features if c in ("md5", "path")]
    if files:
        raise InvalidDocument(f"a plain table has no file column, but this one has {files}: import it as a document "
                         "of files (without kind=table), or rename the column")
    bad = [c for c in features if not parser.COLUMN_RE.match(c)]
    if bad:
        raise InvalidDocument(f"invalid feature column names {bad[:10]}: use letters, digits, '_', '.', '-' "
                         "(up to 64, starting with a letter or '_')")
    if not features:
        raise InvalidDocument(f"the table has only its label column {label_column!r}: add feature columns")
    if allowed_features is not None:
        unknown = [c for c in features if c not in allowed_features]
        if unknown:
            raise UnknownColumn(f"unknown feature columns {unknown[:20]}; the table's features are "
                             f"{allowed_features} (pass allow_new_columns=true to add them)")
    return features


def _row_cells(r: dict[str, Any], features: list[str], label_column: str) -> tuple[dict[str, Any], Any]:
    """(feature values, label) of a table row, or InvalidCell for its first bad cell."""
    values = {c: cell(r.get(c)) for c in features}
    deep = nested(values)
    if deep is not None:
        raise InvalidCell(deep, "a feature holds a plain value (a number or text), not nested JSON")
    try:
        annotation = label_value(r.get(label_column))
    except ValueError as exc:
        raise InvalidCell(label_column, str(exc)) from exc
    # a CSV cell such as 1e999 reads as infinity, which no JSON column stores
    infinite = next((c for c, v in [*values.items(), (label_column, annotation)]
                     if isinstance(v, float) and not math.isfinite(v)), None)
    if infinite is not None:
        raise InvalidCell(infinite, "the number is out of range (it reads as infinity)")
    return values, annotation
