"""Request bodies as streams of chunks, never whole in memory: a raw body, or the first file part of a
multipart form parsed as it arrives (python-multipart's push parser)."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from dam.file.exceptions import InvalidUpload

if TYPE_CHECKING:  # the library defines its callback types for type checkers only
    from python_multipart.multipart import MultipartCallbacks


@dataclass
class Incoming:
    """A streamed upload: `chunks` yields the bytes; `filename` is known once the part headers are read."""

    chunks: AsyncIterator[bytes]
    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    size: int | None = None  # a raw body's Content-Length (the server delivers exactly that many bytes)


def incoming(request: Request, name: str | None) -> Incoming:
    ctype = request.headers.get("content-type", "application/octet-stream")
    if ctype.lower().startswith("multipart/form-data"):
        up = Incoming(chunks=_empty(), filename=name)
        up.chunks = _multipart(request, up)
        return up
    length = request.headers.get("content-length")
    chunked = "transfer-encoding" in request.headers
    size = int(length) if length is not None and length.isdigit() and not chunked else None
    return Incoming(chunks=_raw(request), filename=name, size=size)


async def _empty() -> AsyncIterator[bytes]:
    none: tuple[bytes, ...] = ()  # a stream with no chunk, replaced by the multipart one
    for chunk in none:
        yield chunk


async def _raw(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect as exc:
        raise InvalidUpload("the client disconnected before the upload finished") from exc


class _PartHeaders:
    """The headers of the current part, accumulated from the push parser's callbacks."""

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.field = b""
        self.value = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.field.lower()] = self.value
        self.field, self.value = b"", b""

    def disposition(self) -> tuple[str, bytes | None]:
        """(field name, file name or None) of the part, its headers then forgotten."""
        _, disp = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.headers.clear()
        return disp.get(b"name", b"").decode("utf-8", "replace"), disp.get(b"filename")

    def parser(self, boundary: bytes, *, on_headers_finished: Callable[[], None],
               on_part_data: Callable[[bytes, int, int], None], on_part_end: Callable[[], None]) -> MultipartParser:
        callbacks: MultipartCallbacks = {
            "on_part_begin": self.headers.clear, "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
            "on_headers_finished": on_headers_finished, "on_part_data": on_part_data, "on_part_end": on_part_end}
        return MultipartParser(boundary, callbacks)


def _boundary(ctype: str) -> bytes:
    _, params = parse_options_header(ctype)
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidUpload("the multipart body has no boundary")
    return boundary


def _write(parser: MultipartParser, chunk: bytes) -> None:
    try:
        parser.write(chunk)
    except Exception as exc:  # noqa: BLE001 - python-multipart raises its own parse errors
        raise InvalidUpload(f"the multipart body is malformed: {exc}") from exc


class _FirstFile:
    """The parser's callbacks for `incoming`: the first file part's bytes gathered in `pending` (the stream
    yields them after each chunk), the small form fields before it into `up.fields`."""

    def __init__(self, up: Incoming) -> None:
        self.up = up
        self.part = _PartHeaders()
        self.in_file = False
        self.seen_file = False
        self.name = ""
        self.pending: list[bytes] = []
        self.field_value: list[bytes] = []

    def parser(self, boundary: bytes) -> MultipartParser:
        return self.part.parser(boundary, on_headers_finished=self.on_headers_finished,
                                on_part_data=self.on_part_data, on_part_end=self.on_part_end)

    def on_headers_finished(self) -> None:
        self.field_value.clear()
        self.name, filename = self.part.disposition()
        if filename is not None and not self.seen_file:
            self.in_file, self.seen_file = True, True
            if self.up.filename is None:
                self.up.filename = filename.decode("utf-8", "replace")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.pending.append(bytes(data[start:end]))
        elif not self.seen_file and sum(map(len, self.field_value)) < 4096:
            self.field_value.append(bytes(data[start:end]))

    def on_part_end(self) -> None:
        if self.in_file:
            self.in_file = False
        elif self.field_value and self.name:
            self.up.fields[self.name] = b"".join(self.field_value).decode("utf-8", "replace")

    def take(self) -> bytes:
        """The file bytes parsed from the last chunk, then forgotten."""
        out = b"".join(self.pending)
        self.pending.clear()
        return out


async def _multipart(request: Request, up: Incoming) -> AsyncIterator[bytes]:
    first = _FirstFile(up)
    parser = first.parser(_boundary(request.headers["content-type"]))
    try:
        async for chunk in request.stream():
            _write(parser, chunk)
            if first.pending:
                yield first.take()
        parser.finalize()
    except ClientDisconnect as exc:
        raise InvalidUpload("the client disconnected before the upload finished") from exc
    if not first.seen_file:
        raise InvalidUpload("the multipart form has no file part; send the file in a field with a filename")


# What the parser reports of the file parts: ("begin", filename), ("data", bytes) or ("end", b"")
_Event = tuple[str, str | bytes]


class _FileParts:
    """The file parts of a multipart body as events, the body read and parsed only as far as the next
    event needs; the other parts (form fields) are skipped."""

    def __init__(self, request: Request, boundary: bytes) -> None:
        self.events: deque[_Event] = deque()
        self.in_file = False
        self.part = _PartHeaders()
        self.parser = self.part.parser(boundary, on_headers_finished=self.on_headers_finished,
                                       on_part_data=self.on_part_data, on_part_end=self.on_part_end)
        self.body = request.stream().__aiter__()
        self.finished = False  # the current file part was read to its end

    def on_headers_finished(self) -> None:
        filename = self.part.disposition()[1]
        self.in_file = filename is not None
        if filename is not None:
            self.events.append(("begin", filename.decode("utf-8", "replace")))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.events.append(("data", bytes(data[start:end])))

    def on_part_end(self) -> None:
        if self.in_file:
            self.events.append(("end", b""))
            self.in_file = False

    async def next_event(self) -> _Event | None:
        while not self.events:
            try:
                chunk = await self.body.__anext__()
            except StopAsyncIteration:
                self.parser.finalize()
                if not self.events:
                    return None
                break
            except ClientDisconnect as exc:
                raise InvalidUpload("the client disconnected before the upload finished") from exc
            _write(self.parser, chunk)
        return self.events.popleft()

    async def file_part(self) -> AsyncIterator[bytes]:
        """The bytes of the part begun, until its end."""
        while (event := await self.next_event()) is not None:
            kind, value = event
            if kind == "data" and isinstance(value, bytes):
                yield value
            elif kind == "end":
                self.finished = True
                return
        raise InvalidUpload("the multipart body ended inside a file part")


async def multipart_parts(request: Request) -> AsyncIterator[tuple[str, AsyncIterator[bytes]]]:
    """Every file part of a multipart form as (filename, stream of its bytes), one after the other, parsed
    as the body arrives (a browser's folder upload sends one part per file, the path as the filename).
    Each part's stream must be read to its end before the next part is asked for."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise InvalidUpload("send a multipart/form-data body with one file part per file")
    parts = _FileParts(request, _boundary(ctype))
    while (event := await parts.next_event()) is not None:
        kind, value = event
        if kind != "begin":
            continue
        parts.finished = False
        yield str(value), parts.file_part()
        if not parts.finished:
            raise InvalidUpload("a file part was not read to its end")
