"""Request bodies as streams of chunks, never whole in memory: a raw body, or the first file part of a
multipart form parsed as it arrives (python-multipart's push parser)."""

from __future__ import annotations

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


def incoming(request: Request, name: str | None) -> Incoming:
    ctype = request.headers.get("content-type", "application/octet-stream")
    if ctype.lower().startswith("multipart/form-data"):
        up = Incoming(chunks=_empty(), filename=name)
        up.chunks = _multipart(request, up)
        return up
    return Incoming(chunks=_raw(request), filename=name)


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


@dataclass
class _FirstFile:
    in_file: bool = False
    seen_file: bool = False
    name: str = ""


async def _multipart(request: Request, up: Incoming) -> AsyncIterator[bytes]:
    boundary = _boundary(request.headers["content-type"])
    part = _PartHeaders()
    state = _FirstFile()
    pending: list[bytes] = []
    field_value: list[bytes] = []

    def on_headers_finished() -> None:
        field_value.clear()
        state.name, filename = part.disposition()
        if filename is not None and not state.seen_file:
            state.in_file, state.seen_file = True, True
            if up.filename is None:
                up.filename = filename.decode("utf-8", "replace")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state.in_file:
            pending.append(bytes(data[start:end]))
        elif not state.seen_file and sum(map(len, field_value)) < 4096:
            field_value.append(bytes(data[start:end]))

    def on_part_end() -> None:
        if state.in_file:
            state.in_file = False
        elif field_value and state.name:
            up.fields[state.name] = b"".join(field_value).decode("utf-8", "replace")

    parser = part.parser(boundary, on_headers_finished=on_headers_finished, on_part_data=on_part_data,
                         on_part_end=on_part_end)
    try:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except Exception as exc:  # noqa: BLE001 - python-multipart raises its own parse errors
                raise InvalidUpload(f"the multipart body is malformed: {exc}") from exc
            if pending:
                out = b"".join(pending)
                pending.clear()
                yield out
        parser.finalize()
    except ClientDisconnect as exc:
        raise InvalidUpload("the client disconnected before the upload finished") from exc
    if not state.seen_file:
        raise InvalidUpload("the multipart form has no file part; send the file in a field with a filename")


async def multipart_parts(request: Request) -> AsyncIterator[tuple[str, AsyncIterator[bytes]]]:
    """Every file part of a multipart form as (filename, stream of its bytes), one after the other, parsed
    as the body arrives (a browser's folder upload sends one part per file, the path as the filename).
    Each part's stream must be read to its end before the next part is asked for."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise InvalidUpload("send a multipart/form-data body with one file part per file")
    boundary = _boundary(ctype)
    # ("begin", filename), ("data", bytes) or ("end", b"")
    events: list[tuple[str, str | bytes]] = []
    part = _PartHeaders()
    in_file = [False]

    def on_headers_finished() -> None:
        filename = part.disposition()[1]
        in_file[0] = filename is not None
        if filename is not None:
            events.append(("begin", filename.decode("utf-8", "replace")))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if in_file[0]:
            events.append(("data", bytes(data[start:end])))

    def on_part_end() -> None:
        if in_file[0]:
            events.append(("end", b""))
            in_file[0] = False

    parser = part.parser(boundary, on_headers_finished=on_headers_finished, on_part_data=on_part_data,
                         on_part_end=on_part_end)
    body = request.stream().__aiter__()

    async def next_event() -> tuple[str, str | bytes] | None:
        while not events:
            try:
                chunk = await body.__anext__()
            except StopAsyncIteration:
                parser.finalize()
                if not events:
                    return None
                break
            except ClientDisconnect as exc:
                raise InvalidUpload("the client disconnected before the upload finished") from exc
            try:
                parser.write(chunk)
            except Exception as exc:  # noqa: BLE001 - python-multipart raises its own parse errors
                raise InvalidUpload(f"the multipart body is malformed: {exc}") from exc
        return events.pop(0)

    while (event := await next_event()) is not None:
        kind, value = event
        if kind != "begin":
            continue
        finished = False

        async def file_part() -> AsyncIterator[bytes]:
            nonlocal finished
            while (ev := await next_event()) is not None:
                if ev[0] == "data" and isinstance(ev[1], bytes):
                    yield ev[1]
                elif ev[0] == "end":
                    finished = True
                    return
            raise InvalidUpload("the multipart body ended inside a file part")

        yield str(value), file_part()
        if not finished:
            raise InvalidUpload("a file part was not read to its end")
