"""Request bodies as streams of chunks, never whole in memory: a raw body, or the first file part of a
multipart form parsed as it arrives (python-multipart's push parser)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from dam.file.exceptions import InvalidUpload


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
    if False:  # pragma: no cover
        yield b""


async def _raw(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect as exc:
        raise InvalidUpload("the client disconnected before the upload finished") from exc


async def _multipart(request: Request, up: Incoming) -> AsyncIterator[bytes]:
    _, params = parse_options_header(request.headers["content-type"])
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidUpload("the multipart body has no boundary")
    state = {"in_file": False, "seen_file": False, "field": b"", "value": b"", "name": None}
    headers: dict[bytes, bytes] = {}
    pending: list[bytes] = []
    field_value: list[bytes] = []

    def on_part_begin() -> None:
        headers.clear()
        field_value.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        headers[state["field"].lower()] = state["value"]  # type: ignore[union-attr]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        filename = disp.get(b"filename")
        state["name"] = disp.get(b"name", b"").decode("utf-8", "replace")
        if filename is not None and not state["seen_file"]:
            state["in_file"], state["seen_file"] = True, True
            if up.filename is None:
                up.filename = filename.decode("utf-8", "replace")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["in_file"]:
            pending.append(bytes(data[start:end]))
        elif not state["seen_file"] and sum(map(len, field_value)) < 4096:
            field_value.append(bytes(data[start:end]))

    def on_part_end() -> None:
        if state["in_file"]:
            state["in_file"] = False
        elif field_value and state["name"]:
            up.fields[str(state["name"])] = b"".join(field_value).decode("utf-8", "replace")

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end})
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
    if not state["seen_file"]:
        raise InvalidUpload("the multipart form has no file part; send the file in a field with a filename")


async def multipart_parts(request: Request) -> AsyncIterator[tuple[str, AsyncIterator[bytes]]]:
    """Every file part of a multipart form as (filename, stream of its bytes), one after the other, parsed
    as the body arrives (a browser's folder upload sends one part per file, the path as the filename).
    Each part's stream must be read to its end before the next part is asked for."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise InvalidUpload("send a multipart/form-data body with one file part per file")
    _, params = parse_options_header(ctype)
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidUpload("the multipart body has no boundary")
    events: list[tuple[str, object]] = []
    state: dict[str, object] = {"field": b"", "value": b"", "file": False}
    headers: dict[bytes, bytes] = {}

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] = state["field"] + data[start:end]  # type: ignore[operator]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] = state["value"] + data[start:end]  # type: ignore[operator]

    def on_header_end() -> None:
        headers[state["field"].lower()] = state["value"]  # type: ignore[union-attr,index]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        filename = disp.get(b"filename")
        state["file"] = filename is not None
        if filename is not None:
            events.append(("begin", filename.decode("utf-8", "replace")))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["file"]:
            events.append(("data", bytes(data[start:end])))

    def on_part_end() -> None:
        if state["file"]:
            events.append(("end", None))
            state["file"] = False

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end})
    body = request.stream().__aiter__()

    async def next_event() -> tuple[str, object] | None:
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

        async def part() -> AsyncIterator[bytes]:
            nonlocal finished
            while (ev := await next_event()) is not None:
                if ev[0] == "data":
                    yield ev[1]  # type: ignore[misc]
                elif ev[0] == "end":
                    finished = True
                    return
            raise InvalidUpload("the multipart body ended inside a file part")

        yield str(value), part()
        if not finished:
            raise InvalidUpload("a file part was not read to its end")
