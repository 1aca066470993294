"""Both ObjectStore backends, the local folder and S3 (a real SeaweedFS started by `make test`)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mlife_shared.objectstore import (
    InvalidKey,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    S3ObjectStore,
    ScopedStore,
    validate_key,
)
from mlife_shared.objectstore.base import ObjectSizeMismatch, iterate, read_all

TRAVERSAL = ["../etc/passwd", "a/../../b", "/abs/path", "a//b", "a/./b", "..%2Fsecret", "%2e%2e/x",
             "%252e%252e%252fx", "a\\..\\b", "C:/windows", "a/\x00b", "", "a/b/", ".."]


def s3_store() -> S3ObjectStore:
    endpoint = os.environ.get("MLIFE_TEST_S3_ENDPOINT")
    assert endpoint, "MLIFE_TEST_S3_* is not set: run the tests with `make test`, which starts an S3 server"
    return S3ObjectStore(endpoint=endpoint, access_key=os.environ["MLIFE_TEST_S3_ACCESS_KEY"],
                         secret_key=os.environ["MLIFE_TEST_S3_SECRET_KEY"],
                         bucket=os.environ.get("MLIFE_TEST_S3_BUCKET", "mlife-test"))


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    return LocalObjectStore(tmp_path / "objects") if request.param == "local" else s3_store()


def key() -> str:
    return f"test/{uuid.uuid4().hex}/blob.bin"


@pytest.mark.parametrize("bad", TRAVERSAL)
def test_unsafe_keys_are_refused(bad: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(bad)


async def test_put_get_roundtrip_with_streamed_md5(store: ObjectStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    k = key()
    stored = await store.put(k, iterate(data, 256 * 1024))
    assert stored.md5 == hashlib.md5(data).hexdigest() and stored.size == len(data)
    assert await read_all(await store.get(k)) == data
    info = await store.stat(k)
    assert info is not None and info.size == len(data)


async def test_multipart_sized_object_keeps_a_true_md5(store: ObjectStore) -> None:
    data = os.urandom(40 * 1024 * 1024)  # above the 16 MiB part size: the S3 ETag is not an MD5 here
    stored = await store.put(key(), iterate(data))
    assert stored.md5 == hashlib.md5(data).hexdigest()


async def test_a_stream_of_announced_size_is_stored_in_whole_parts(store: ObjectStore) -> None:
    """With its size known (a request's Content-Length), a 40 MiB stream in odd chunks is stored in parts of the
    part size (S3), exactly, with its true MD5; small and empty ones too; through a scoped store as well."""
    for n, chunk in ((40 * 1024 * 1024 + 5, 300_001), (16 * 1024 * 1024, 1 << 20), (1000, 7), (0, 1)):
        data = os.urandom(n)
        k = key()
        stored = await ScopedStore(store, "sized").put(k, iterate(data, chunk), size=n)
        assert (stored.size, stored.md5) == (n, hashlib.md5(data).hexdigest())
        assert await read_all(await store.get(f"sized/{k}")) == data


async def test_a_stream_longer_or_shorter_than_announced_leaves_nothing(store: ObjectStore) -> None:
    async def exactly_then_more(n: int) -> AsyncIterator[bytes]:
        yield b"a" * n  # the store has had every announced byte (S3: the object may be complete) ...
        yield b"b"  # ... and then the stream goes on

    size = 17 * 1024 * 1024  # two parts on S3
    cases = [iterate(b"x" * (size - 1), 1 << 20), iterate(b"x" * (size + 1), 1 << 20), exactly_then_more(size),
             exactly_then_more(10)]
    for data, announced in zip(cases, (size, size, size, 10), strict=True):
        k = key()
        with pytest.raises(ObjectSizeMismatch):
            await store.put(k, data, size=announced)
        assert await store.stat(k) is None
    k = key()
    with pytest.raises(ObjectTooLarge):  # announced past the limit: refused before a byte is read
        await store.put(k, iterate(b"x" * 10), size=5000, max_size=4096)
    assert await store.stat(k) is None


async def test_oversized_upload_leaves_nothing(store: ObjectStore) -> None:
    k = key()
    with pytest.raises(ObjectTooLarge):
        await store.put(k, iterate(b"x" * 5000, 1000), max_size=4096)
    assert await store.stat(k) is None


async def test_interrupted_upload_leaves_nothing(store: ObjectStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"a" * 1000
        raise ConnectionResetError("client went away")

    k = key()
    with pytest.raises(ConnectionResetError):
        await store.put(k, broken())
    assert await store.stat(k) is None


async def test_missing_object_is_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        await store.get(key())
    assert await store.stat(key()) is None


async def test_copy_list_delete(store: ObjectStore) -> None:
    base = f"test/{uuid.uuid4().hex}"
    await store.put(f"{base}/a", iterate(b"hello"))
    await store.copy(f"{base}/a", f"{base}/b")
    listed = [k async for k in store.list(base + "/")]
    assert sorted(listed) == [f"{base}/a", f"{base}/b"]
    await store.delete(f"{base}/a")
    assert await store.stat(f"{base}/a") is None
    assert await read_all(await store.get(f"{base}/b")) == b"hello"


async def test_scoped_store_cannot_escape_its_prefix(store: ObjectStore) -> None:
    scoped = ScopedStore(store, f"svc{uuid.uuid4().hex[:6]}")
    for bad in ("../other/x", "%2e%2e/other", "/etc/passwd"):
        with pytest.raises(InvalidKey):
            await scoped.put(bad, iterate(b"x"))
    stored = await scoped.put("kind/1/name.txt", iterate(b"abc"))
    assert stored.key == "kind/1/name.txt"
    assert await store.stat(f"{scoped.prefix}/kind/1/name.txt") is not None
    assert [k async for k in scoped.list("kind/")] == ["kind/1/name.txt"]


async def test_local_store_refuses_symlink_escape(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    local = LocalObjectStore(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(InvalidKey):
        await local.put("link/evil.txt", iterate(b"x"))
    assert not (outside / "evil.txt").exists()
