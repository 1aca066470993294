"""CSV/TSV cells that a spreadsheet will not run as a formula (CSV injection, OWASP): a text cell that
starts with `=`, `+`, `-`, `@`, a tab or a carriage return — also after leading blanks — is written with a
single quote in front, so `=HYPERLINK(…)` shows as text. A cell that is a real number (`-1.5`, `+3`, `1e3`)
is left as it is. Every CSV/TSV writer of the services writes its rows through `safe_row`."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: str) -> str:
    """`value`, quoted against formula evaluation when a spreadsheet would run it."""
    if not value:
        return value
    if value[0] in "\t\r":
        return "'" + value
    head = value.lstrip(" ")
    if head[:1] in TRIGGERS and not _NUMBER.fullmatch(value.strip(" ")):
        return "'" + value
    return value


def safe_row(cells: Iterable[Any]) -> list[Any]:
    return [safe_cell(c) if isinstance(c, str) else c for c in cells]


def write(header: list[str], rows: Iterable[Iterable[Any]], *, delimiter: str = ",") -> bytes:
    """A whole CSV (`,`) or TSV (tab) file, every cell made safe (the header too)."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter)  # "\r\n" rows: a cell holding a CR or LF is always quoted
    w.writerow(safe_row(header))
    for row in rows:
        w.writerow(safe_row(row))
    return buf.getvalue().encode()
