"""Upload: streamed into the store under a temporary key while the MD5 is computed, then stored once at
`files/<md5>` (content-addressed); the unique MD5 row decides which of two concurrent uploads writes."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from dam.file import media
from dam.file.exceptions import FileNotFound, InvalidMd5, InvalidPath, Md5Mismatch, UploadTooLarge
from dam.file.models import File
from dam.file.repository import FileRepository
from mlife_shared.media import MediaError, probe
from mlife_shared.objectstore import InvalidKey, ObjectTooLarge, ScopedStore, validate_key
from mlife_shared.objectstore.base import read_all

MD5_RE = re.compile(r"^[0-9a-f]{32}$")
SMALL_UPLOAD = 8 * 1024 * 1024
MEDIA_MAX_BYTES = 512 * 1024 * 1024
PROBED = ("audio", "video")


def file_key(md5: str) -> str:
    return f"files/{md5}"


def check_md5(value: str) -> str:
    if not isinstance(value, str) or not MD5_RE.match(value):
        raise InvalidMd5(f"{str(value)[:64]!r} is not an MD5: use 32 lowercase hexadecimal characters")
    return value


def check_path(path: str) -> str:
    try:
        validate_key(path)
    except InvalidKey as exc:
        raise InvalidPath(f"the path {path[:200]!r} is unsafe: {exc.message}") from exc
    return path


@dataclass
class Uploaded:
    file: File
    duplicate: bool
    path: str | None
    data: bytes | None = None  # the content when it was in memory (a small upload): the cleaners read it here


class _Head:
    """Keeps the first bytes of a stream for sniffing as it passes."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def wrap(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            if len(self.data) < media.SNIFF_BYTES:
                self.data.extend(chunk[: media.SNIFF_BYTES - len(self.data)])
            yield chunk


class FileService:
    def __init__(self, session: AsyncSession, store: ScopedStore, *, small_bytes: int = SMALL_UPLOAD,
                 media_max_bytes: int = MEDIA_MAX_BYTES) -> None:
        self.small_bytes = small_bytes
        self.media_max_bytes = media_max_bytes
        self.repo = FileRepository(session)
        self.store = store
        self.created_keys: list[str] = []

    async def store_stream(self, chunks: AsyncIterator[bytes], *, name: str | None, max_bytes: int,
                           uploader: str | None, expected_md5: str | None = None,
                           record_path: bool = True, late_name: Callable[[], str | None] | None = None,
                           keep_data: bool = False, length: int | None = None) -> Uploaded:
        """Store a stream once by MD5. A small body (up to `small_bytes`) is hashed before anything is
        written, so a duplicate costs no write and a new one is one write at its final key; a larger body
        streams into a temporary key (the MD5 is known only at its end) and is then copied to `files/<md5>`.
        `late_name` gives the name once the stream is read (a multipart part's filename); `keep_data`: a new small
        image's bytes stay on the answer (`Uploaded.data`) for the cleaners; `length`: the body's exact length when
        known (its Content-Length), passed on to the store for a large one."""
        if name is not None:
            check_path(name)
        if expected_md5 is not None:
            check_md5(expected_md5)
        it = chunks.__aiter__()
        first: list[bytes] = []
        size = 0
        while size <= self.small_bytes:
            try:
                chunk = await it.__anext__()
            except StopAsyncIteration:
                break
            first.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise UploadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
        else:
            head = b"".join(first)[: media.SNIFF_BYTES]
            if expected_md5 is not None and len(head) == media.SNIFF_BYTES:
                direct = await self._store_at_address(_chain(first, it), head, expected_md5, name=name,
                                                      max_bytes=max_bytes, uploader=uploader,
                                                      record_path=record_path, late_name=late_name, size=length)
                if direct is not None:
                    return direct
            return await self._store_large(_chain(first, it), name=name, max_bytes=max_bytes, uploader=uploader,
                                           expected_md5=expected_md5, record_path=record_path, late_name=late_name,
                                           size=length)
        data = b"".join(first)
        del first
        md5 = (await asyncio.to_thread(_md5, data)) if len(data) > 1 << 20 else _md5(data)
        name = self._late(name, late_name)
        if expected_md5 is not None and md5 != expected_md5:
            raise Md5Mismatch(f"the content's MD5 is {md5}, not {expected_md5}; nothing was stored")
        # The row first (invisible until the commit), then the object: a new content costs one statement and
        # one write; a concurrent upload of the same content waits on the row and answers `duplicate`.
        inserted = await self.repo.insert_if_absent(self._values(md5, len(data), data[: media.SNIFF_BYTES],
                                                                 name, uploader))
        if inserted is not None:
            key = file_key(md5)
            await self.store.put_bytes(key, data, md5=md5)
            self.created_keys.append(key)
            await self._probe(inserted, data)
        uploaded = await self._finish(md5, name, inserted, inserted is not None, record_path)
        if keep_data and inserted is not None and inserted.media_type == "image":
            uploaded.data = data
        return uploaded

    def _late(self, name: str | None, late_name: Callable[[], str | None] | None) -> str | None:
        if name is None and late_name is not None:
            name = late_name()
            if name is not None:
                check_path(name)
        return name

    @staticmethod
    def _values(md5: str, size: int, head: bytes, name: str | None, uploader: str | None) -> dict[str, object]:
        kind, ctype = media.sniff(head)
        width = height = None
        if kind == "image":
            width, height = media.image_size(head)
        return dict(md5=md5, size=size, media_type=kind, content_type=ctype, name=name, width=width, height=height,
                    uploaded_by=uploader)

    async def _finish(self, md5: str, name: str | None, row: File | None, inserted: bool,
                      record_path: bool) -> Uploaded:
        if name is not None and record_path:
            await self.repo.set_path(name, md5)
        row = row or await self.repo.get(File, md5)
        assert row is not None
        return Uploaded(file=row, duplicate=not inserted, path=name)

    async def _store_at_address(self, chunks: AsyncIterator[bytes], head: bytes, md5: str, *, name: str | None,
                                max_bytes: int, uploader: str | None, record_path: bool,
                                late_name: Callable[[], str | None] | None, size: int | None) -> Uploaded | None:
        """A large body whose MD5 the client sent: streamed straight to `files/<md5>` (no temporary key, no
        copy). The row is inserted first (unseen until the commit; a concurrent upload of the same content waits
        on it); on a mismatch or an oversize body the object is removed and the row rolls back with the error.
        None, without reading the stream, when the content is already stored (the caller verifies it)."""
        name = self._late(name, late_name)
        inserted = await self.repo.insert_if_absent(self._values(md5, 0, head, name, uploader))
        if inserted is None:
            return None
        key = file_key(md5)
        try:
            stored = await self.store.put(key, chunks, max_size=max_bytes, size=size)
        except ObjectTooLarge as exc:
            raise UploadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes") from exc
        self.created_keys.append(key)
        if stored.md5 != md5:
            await self.store.delete(key)
            self.created_keys.remove(key)
            raise Md5Mismatch(f"the content's MD5 is {stored.md5}, not {md5}; nothing was stored")
        inserted.size = stored.size
        await self._probe(inserted, None)
        return await self._finish(md5, name, inserted, True, record_path)

    async def _store_large(self, chunks: AsyncIterator[bytes], *, name: str | None, max_bytes: int,
                           uploader: str | None, expected_md5: str | None, record_path: bool,
                           late_name: Callable[[], str | None] | None, size: int | None = None) -> Uploaded:
        head = _Head()
        temp = f"incoming/{uuid.uuid4().hex}"
        try:
            stored = await self.store.put(temp, head.wrap(chunks), max_size=max_bytes, size=size)
        except ObjectTooLarge as exc:
            raise UploadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes") from exc
        try:
            name = self._late(name, late_name)
            if expected_md5 is not None and stored.md5 != expected_md5:
                raise Md5Mismatch(f"the content's MD5 is {stored.md5}, not {expected_md5}; nothing was stored")
            inserted = await self.repo.insert_if_absent(self._values(stored.md5, stored.size, bytes(head.data),
                                                                     name, uploader))
            key = file_key(stored.md5)
            if inserted is not None or await self.store.stat(key) is None:
                await self.store.copy(temp, key)
                if inserted is not None:
                    self.created_keys.append(key)
        finally:
            await self.store.delete(temp)
        if inserted is not None:
            await self._probe(inserted, None)
        return await self._finish(stored.md5, name, inserted, inserted is not None, record_path)

    async def adopt(self, source: str, md5: str, size: int, *, uploader: str | None) -> File:
        """Store the object under the full key `source` (another service's, which exists: the caller stat-ed it) as the
        file of `md5`, the MD5 its producer sent: copied inside the store, never read whole to hash it again; only
        its head is read, to tell its type."""
        check_md5(md5)
        known = await self.repo.get(File, md5)
        if known is not None:
            return known
        head = await _head(await self.store.store.get(source, chunk_size=media.SNIFF_BYTES), media.SNIFF_BYTES)
        inserted = await self.repo.insert_if_absent(self._values(md5, size, head, None, uploader))
        if inserted is None:  # a concurrent unit of work stored the same content first
            return (await self._finish(md5, None, None, False, False)).file
        key = file_key(md5)
        if await self.store.stat(key) is None:
            await self.store.store.copy(source, self.store.full_key(key))
            self.created_keys.append(key)
        await self._probe(inserted, None)
        return inserted

    async def _probe(self, row: File, data: bytes | None) -> None:
        """Audio/video facts on a new row (up to `media_max_bytes`; an undecodable file keeps none: it is
        stored all the same). `data` is the content when in memory, else it is read from the store."""
        if row.media_type not in PROBED or row.size > self.media_max_bytes:
            return
        if data is None:
            data = await read_all(await self.store.get(file_key(row.md5)))
        try:
            info = await asyncio.to_thread(probe, data)
        except MediaError:
            return
        row.duration, row.sample_rate, row.channels = info.duration, info.sample_rate, info.channels
        row.fps, row.frame_count, row.codec = info.fps, info.frame_count, (info.codec or "")[:40] or None
        if info.width and info.height:
            row.width, row.height = info.width, info.height

    async def discard_created(self) -> None:
        """Remove the objects this unit of work created (its rows roll back with the transaction)."""
        for key in self.created_keys:
            await self.store.delete(key)
        self.created_keys.clear()

    async def get(self, md5: str) -> File:
        f = await self.repo.get(File, check_md5(md5.lower()))
        if f is None:
            raise FileNotFound(f"no file with MD5 {md5}")
        return f

    async def content(self, f: File, *, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        return await self.store.get(file_key(f.md5), offset=offset, length=length)

    async def find(self, *, media_type: str | None, min_size: int | None, max_size: int | None, limit: int,
                   offset: int) -> list[File]:
        return await self.repo.find(media_type=media_type, min_size=min_size, max_size=max_size, limit=limit,
                                    offset=offset)

    async def check(self, md5s: list[str]) -> set[str]:
        for m in md5s:
            check_md5(m)
        return await self.repo.existing(md5s)


async def _head(chunks: AsyncIterator[bytes], size: int) -> bytes:
    """The first `size` bytes of a stream, which is then closed (the rest is never read)."""
    head = bytearray()
    try:
        async for chunk in chunks:
            head += chunk
            if len(head) >= size:
                break
    finally:
        close = getattr(chunks, "aclose", None)  # a generator's: releases the file or the HTTP response
        if close is not None:
            await close()
    return bytes(head[:size])


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


async def _chain(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    while first:
        yield first.pop(0)
    async for chunk in rest:
        yield chunk
