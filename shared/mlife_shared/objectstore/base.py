"""What every backend offers, and the key rules: a key is a relative, normalised, `/`-separated path
that can never climb out of its prefix, however it is encoded."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote

from mlife_shared.errors import NotFound, PayloadTooLarge, Unprocessable

MAX_KEY_LENGTH = 1024
_SEGMENT = re.compile(r"^[^\x00-\x1f\x7f\\]+$")


class InvalidKey(Unprocessable):
    """The object key is not a safe relative path."""


class ObjectNotFound(NotFound):
    """No object under this key."""


class ObjectTooLarge(PayloadTooLarge):
    """The object is larger than allowed."""


class ObjectSizeMismatch(Unprocessable):
    """The stream was longer or shorter than the size it was announced with."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    md5: str


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str | None = None


def validate_key(key: str) -> str:
    """Return the key if it is safe, else raise InvalidKey saying what is wrong with it."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("the key is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"the key is longer than {MAX_KEY_LENGTH} characters")
    decoded = key
    for _ in range(3):  # encoded and double-encoded traversal
        decoded = unquote(decoded)
    for form in (key, decoded):
        if "\x00" in form:
            raise InvalidKey("the key contains a NUL byte")
        if "\\" in form:
            raise InvalidKey("the key contains a backslash; use '/'")
        if form.startswith("/") or re.match(r"^[A-Za-z]:", form):
            raise InvalidKey("the key must be relative, not absolute")
        for part in form.split("/"):
            if part in ("", ".", ".."):
                raise InvalidKey("the key has an empty, '.' or '..' segment")
            if not _SEGMENT.match(part):
                raise InvalidKey("the key contains control characters")
    return key


def check_range(offset: int, length: int | None) -> None:
    if offset < 0 or (length is not None and length < 0):
        raise ValueError(f"a byte range needs offset >= 0 and length >= 0 (got {offset}, {length})")


def join_key(prefix: str, key: str) -> str:
    validate_key(key)
    return f"{prefix.rstrip('/')}/{key}" if prefix else key


class ObjectStore(Protocol):
    async def put(self, key: str, data: AsyncIterable[bytes], *, content_type: str | None = None,
                  max_size: int | None = None, size: int | None = None) -> StoredObject:
        """Store a stream under `key`, computing its MD5 while it streams; nothing is left behind if
        the stream fails or exceeds `max_size`. `size`: the stream's exact length when the caller knows it (a
        request's Content-Length), so that a store can send it in parts of a known size; a stream that turns out
        longer or shorter fails (ObjectSizeMismatch) and leaves nothing."""

    async def get(self, key: str, *, chunk_size: int = 1 << 20, offset: int = 0,
                  length: int | None = None) -> AsyncIterator[bytes]:
        """Stream an object's bytes (`length` of them from `offset`, or to the end); ObjectNotFound if
        absent. A range past the end yields what there is of it."""

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None,
                        md5: str | None = None) -> StoredObject:
        """Store bytes already in memory under `key` in one write (`md5`: their MD5 when the caller has it)."""

    async def stat(self, key: str) -> ObjectInfo | None: ...

    async def delete(self, key: str) -> None: ...

    async def copy(self, source: str, destination: str) -> None: ...

    def list(self, prefix: str) -> AsyncIterator[str]: ...

    async def check(self) -> None:
        """Raise if the store cannot be used (readiness)."""


class ScopedStore:
    """A store seen through a prefix (`bam/`): every key is joined under it and validated first."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        validate_key(prefix.rstrip("/"))
        self.store = store
        self.prefix = prefix.rstrip("/")

    def full_key(self, key: str) -> str:
        return join_key(self.prefix, key)

    async def put(self, key: str, data: AsyncIterable[bytes], *, content_type: str | None = None,
                  max_size: int | None = None, size: int | None = None) -> StoredObject:
        stored = await self.store.put(self.full_key(key), data, content_type=content_type, max_size=max_size,
                                      size=size)
        return StoredObject(key=key, size=stored.size, md5=stored.md5)

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None,
                        md5: str | None = None) -> StoredObject:
        """One write of bytes in hand (a small upload): no stream, no hashing again when `md5` is given."""
        stored = await self.store.put_bytes(self.full_key(key), data, content_type=content_type, md5=md5)
        return StoredObject(key=key, size=stored.size, md5=stored.md5)

    async def get(self, key: str, *, chunk_size: int = 1 << 20, offset: int = 0,
                  length: int | None = None) -> AsyncIterator[bytes]:
        if offset or length is not None:
            return await self.store.get(self.full_key(key), chunk_size=chunk_size, offset=offset, length=length)
        return await self.store.get(self.full_key(key), chunk_size=chunk_size)

    async def stat(self, key: str) -> ObjectInfo | None:
        return await self.store.stat(self.full_key(key))

    async def delete(self, key: str) -> None:
        await self.store.delete(self.full_key(key))

    async def copy(self, source: str, destination: str) -> None:
        await self.store.copy(self.full_key(source), self.full_key(destination))

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        base = self.prefix + "/"
        async for key in self.store.list(base + prefix):
            yield key[len(base):]

    async def check(self) -> None:
        await self.store.check()


class Hasher:
    """MD5 and size of a stream as it passes; raises ObjectTooLarge past `max_size`, and ObjectSizeMismatch past
    the announced `expected` size or (`finish`) short of it."""

    def __init__(self, max_size: int | None, expected: int | None = None) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self.max_size = max_size
        self.expected = expected
        if expected is not None and max_size is not None and expected > max_size:
            raise ObjectTooLarge(f"the object is larger than the limit of {max_size} bytes")

    def update(self, chunk: bytes) -> None:
        self.count(len(chunk))
        self.md5.update(chunk)

    def count(self, n: int) -> None:
        """Only the size (the MD5 is updated elsewhere, e.g. in the thread that sends the bytes)."""
        self.size += n
        if self.max_size is not None and self.size > self.max_size:
            raise ObjectTooLarge(f"the object is larger than the limit of {self.max_size} bytes")
        if self.expected is not None and self.size > self.expected:
            raise ObjectSizeMismatch(f"the stream is longer than its announced {self.expected} bytes")

    def finish(self) -> None:
        """The stream has ended: it must have been as long as announced."""
        if self.expected is not None and self.size != self.expected:
            raise ObjectSizeMismatch(f"the stream ended after {self.size} of its announced {self.expected} bytes")

    def hexdigest(self) -> str:
        return self.md5.hexdigest()


def md5_of(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def iterate(data: bytes, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
    for i in range(0, len(data), chunk_size):
        yield data[i:i + chunk_size]
