"""HTTP Range (RFC 9110 §14) for a stored object: one `bytes=` range is served as 206; a header that is not a
single bytes range is ignored (the whole object, 200, as the RFC allows); a range that starts past the end is 416."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SINGLE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class Unsatisfiable(Exception):
    """The range starts past the end of the object (or asks for a zero-length suffix)."""


def parse(header: str | None, size: int) -> ByteRange | None:
    """The range to serve, None for the whole object; Unsatisfiable → 416."""
    if not header:
        return None
    m = _SINGLE.match(header)
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # a suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable()
        return ByteRange(max(0, size - n), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid: ignored
    if start >= size:
        raise Unsatisfiable()
    return ByteRange(start, min(int(last), size - 1) if last else size - 1)
