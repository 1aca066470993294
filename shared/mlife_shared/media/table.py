"""Text and tables as JSON-safe previews (strings only, never HTML)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

SNIPPET_CHARS = 2000
MAX_CELL = 200


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").lstrip("\ufeff")


def text_snippet(data: bytes, chars: int = SNIPPET_CHARS, complete: bool = True) -> dict[str, Any]:
    """`{"kind": "snippet", "snippet", "truncated"}`; valid JSON is pretty-printed. `complete` says
    whether `data` is the whole file (a head cut from a larger file is truncated anyway)."""
    text = _text(data)
    if complete and text.lstrip()[:1] in ("{", "["):
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return {"kind": "snippet", "snippet": text[:chars], "truncated": len(text) > chars or not complete}


def table_preview(data: bytes, rows: int = 20, complete: bool = True) -> dict[str, Any]:
    """`{"kind": "table", "columns", "rows", "truncated"}` of a CSV/TSV (the first line is the header)."""
    text = _text(data)
    if not complete and "\n" in text:
        text = text[: text.rindex("\n")]  # a head cut mid-row: drop the partial row
    first = text.split("\n", 1)[0]
    delimiter = max((",", "\t", ";", "|"), key=first.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    columns = [c[:MAX_CELL] for c in next(reader, [])]
    out: list[list[str]] = []
    truncated = not complete
    for row in reader:
        if len(out) >= rows:
            truncated = True
            break
        out.append([c[:MAX_CELL] for c in row])
    return {"kind": "table", "columns": columns, "rows": out, "truncated": truncated}
