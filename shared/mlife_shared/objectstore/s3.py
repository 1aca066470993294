"""The S3 backend through the `minio` client (MinIO in production; any S3 server works). The MD5 is
computed here while streaming, never taken from the ETag (a multipart ETag is not an MD5)."""

from __future__ import annotations

import asyncio
import io
import queue
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, BinaryIO, cast

from minio import Minio
from minio.commonconfig import CopySource
from minio.error import S3Error

from mlife_shared.objectstore.base import (
    Hasher,
    ObjectInfo,
    ObjectNotFound,
    StoredObject,
    check_range,
    iterate,
    md5_of,
    validate_key,
)

PART_SIZE = 16 * 1024 * 1024
BUFFER_BYTES = 32 * 1024 * 1024  # how far the event loop may run ahead of minio's reader
_END = object()


class _QueueReader:
    """A file-like `read()` over chunks that the event loop pushes into a bounded queue. The MD5 is updated here,
    in minio's thread, as the chunks are taken (hashlib releases the GIL: it runs beside the event loop)."""

    def __init__(self, md5: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.q: queue.Queue[Any] = queue.Queue()
        self.md5 = md5
        self.loop = loop
        self.sent = 0  # bytes queued (written by the event loop only)
        self.taken = 0  # bytes read (written by the reader thread only)
        self.rest = b""
        self.done = False
        self.waiter: asyncio.Future[None] | None = None  # the event loop waiting for room (set and cleared by it)

    async def room(self, upload: asyncio.Future[Any]) -> None:
        """Until the reader thread has taken the buffer down to half (or the upload has ended): woken by the
        thread, no polling. The thread sees `waiter` set, or this sees what the thread took: never neither."""
        waiter = self.waiter = self.loop.create_future()
        try:
            if self.sent - self.taken < BUFFER_BYTES // 2 or upload.done():
                return
            await waiter
        finally:
            self.waiter = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def read(self, n: int = -1) -> bytes:
        parts = [self.rest] if self.rest else []
        have = len(self.rest)
        self.rest = b""
        while not self.done and (n < 0 or have < n):
            item = self.q.get()
            if item is _END:
                self.done = True
            elif isinstance(item, BaseException):
                raise item
            else:
                self.md5.update(item)
                self.taken += len(item)
                parts.append(item)
                have += len(item)
                if self.waiter is not None and self.sent - self.taken < BUFFER_BYTES // 2:
                    self.loop.call_soon_threadsafe(self.wake)
        if 0 <= n < have:  # split only the last chunk: the part is joined once, never sliced whole
            last = parts[-1]
            keep = len(last) - (have - n)
            parts[-1], self.rest = last[:keep], last[keep:]
        return b"".join(parts)


class S3ObjectStore:
    def __init__(self, *, endpoint: str, access_key: str, secret_key: str, bucket: str, secure: bool = False,
                 region: str | None = None) -> None:
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region)
        self.bucket = bucket
        self._bucket_ready = False

    async def ensure_bucket(self) -> None:
        if self._bucket_ready:
            return

        def _ensure() -> None:
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

        await asyncio.to_thread(_ensure)
        self._bucket_ready = True

    async def put(self, key: str, data: AsyncIterable[bytes], *, content_type: str | None = None,
                  max_size: int | None = None, size: int | None = None) -> StoredObject:
        """With `size` known, minio reads whole parts of PART_SIZE: without it, it reads a part and one byte
        more (to see whether another part follows), then copies the part twice to put the byte back and cut it
        off again (2 GB of copies holding the GIL for a 1 GB upload)."""
        validate_key(key)
        await self.ensure_bucket()
        hasher = Hasher(max_size, size)
        loop = asyncio.get_running_loop()
        reader = _QueueReader(hasher.md5, loop)
        upload = loop.run_in_executor(None, lambda: self.client.put_object(
            self.bucket, key, cast(BinaryIO, reader), length=-1 if size is None else size,  # minio only calls read()
            part_size=PART_SIZE,
            content_type=content_type or "application/octet-stream"))
        upload.add_done_callback(lambda _: reader.wake())  # a failed upload wakes a waiting writer
        try:
            async for chunk in data:
                hasher.count(len(chunk))
                await _put(reader, chunk, upload)
            hasher.finish()
            await _put(reader, _END, upload)
            await upload
        except BaseException as exc:
            # Abort the upload thread (an incomplete multipart upload is dropped by minio) and leave no object.
            await _put(reader, exc if isinstance(exc, Exception) else RuntimeError("cancelled"), upload)
            try:
                await upload
            except BaseException:  # noqa: BLE001 - the original error is the one that matters
                pass
            else:  # minio had read its `size` bytes and completed the object before a longer stream failed
                await asyncio.to_thread(self.client.remove_object, self.bucket, key)
            raise
        return StoredObject(key=key, size=hasher.size, md5=hasher.hexdigest())

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None,
                        md5: str | None = None) -> StoredObject:
        """One PUT of bytes in hand, its length known: one worker-thread hop, no queue, no part buffering."""
        validate_key(key)
        await self.ensure_bucket()
        await asyncio.to_thread(self.client.put_object, self.bucket, key, io.BytesIO(data), len(data),
                                content_type=content_type or "application/octet-stream")
        return StoredObject(key=key, size=len(data), md5=md5 or md5_of(data))

    async def get(self, key: str, *, chunk_size: int = 1 << 20, offset: int = 0,
                  length: int | None = None) -> AsyncIterator[bytes]:
        validate_key(key)
        check_range(offset, length)
        if length == 0:
            if await self.stat(key) is None:
                raise ObjectNotFound(f"no object {key!r}")
            return iterate(b"")
        await self.ensure_bucket()
        try:
            # minio's length 0 means "to the end"; a Range starting past the end is S3's InvalidRange
            response = await asyncio.to_thread(self.client.get_object, self.bucket, key, offset=offset,
                                               length=length or 0)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise ObjectNotFound(f"no object {key!r}") from exc
            if exc.code == "InvalidRange":
                return iterate(b"")
            raise
        return _stream(response, chunk_size)

    async def stat(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        await self.ensure_bucket()
        try:
            st = await asyncio.to_thread(self.client.stat_object, self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return None
            raise
        return ObjectInfo(key=key, size=int(st.size or 0), content_type=st.content_type)

    async def delete(self, key: str) -> None:
        validate_key(key)
        await self.ensure_bucket()
        await asyncio.to_thread(self.client.remove_object, self.bucket, key)

    async def copy(self, source: str, destination: str) -> None:
        validate_key(source)
        validate_key(destination)
        if await self.stat(source) is None:
            raise ObjectNotFound(f"no object {source!r}")
        await asyncio.to_thread(self.client.copy_object, self.bucket, destination, CopySource(self.bucket, source))

    async def list(self, prefix: str) -> AsyncIterator[str]:
        await self.ensure_bucket()
        objects = await asyncio.to_thread(lambda: [o.object_name for o in self.client.list_objects(
            self.bucket, prefix=prefix, recursive=True)])
        for name in objects:
            yield name

    async def check(self) -> None:
        self._bucket_ready = False
        await self.ensure_bucket()


async def _put(reader: _QueueReader, item: Any, upload: asyncio.Future[Any]) -> None:
    """Queue a chunk (or the end, or an error) for the reader thread, once it is less than BUFFER_BYTES behind."""
    while True:
        if upload.done() and item is not _END:
            upload.result()  # the upload thread failed: surface its error
            return
        if not isinstance(item, bytes) or reader.sent - reader.taken < BUFFER_BYTES:
            reader.q.put_nowait(item)
            if isinstance(item, bytes):
                reader.sent += len(item)
            return
        await reader.room(upload)


async def _stream(response: Any, chunk_size: int) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(response.read, chunk_size):
            yield chunk
    finally:
        response.close()
        response.release_conn()
