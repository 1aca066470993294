"""Archive upload (zip, tar, tar.gz) of a folder, extracted safely: every entry is checked before
anything is stored (no absolute or escaping paths, no links, no devices, entry count and declared
expanded size and compression ratio limited — per zip entry, and over a compressed tar's whole stream, read
through a bounded decompressor so a bomb is refused before it is inflated: mlife_shared.archive), and the real
expanded bytes are counted while extracting. Any failure removes what this archive stored."""

from __future__ import annotations

import asyncio
import lzma
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import IO

from dam.file.exceptions import ArchiveTooLarge, InvalidUpload, UnsafeArchive, UploadTooLarge
from dam.file.service import FileService, Uploaded, check_path
from mlife_shared.archive import ArchiveLimits, ArchiveRefused, Tally, check_zip_entry, open_tar, tar_members
from mlife_shared.errors import MLifeError

CHUNK = 1 << 20


@dataclass
class Limits:
    max_bytes: int
    max_entries: int
    max_expanded: int
    max_ratio: float


@dataclass
class Entry:
    path: str
    size: int
    open: Callable[[], IO[bytes]]


async def spool(chunks: AsyncIterator[bytes], max_bytes: int) -> IO[bytes]:
    """The archive body in a temporary file on disk (zip needs random access); never in memory."""
    fh = tempfile.TemporaryFile(prefix="dam-archive-")  # noqa: SIM115 - handed to the caller, who closes it
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise UploadTooLarge(f"the archive is larger than the limit of {max_bytes} bytes")
            await asyncio.to_thread(fh.write, chunk)
        fh.seek(0)
        return fh
    except BaseException:
        fh.close()
        raise


def _entry_path(name: str, prefix: str | None) -> str:
    path = name
    if path.startswith("./"):
        path = path[2:]
    if not path or "\x00" in name:
        raise UnsafeArchive(f"the entry {name[:200]!r} has an empty name or a NUL byte")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsafeArchive(f"the entry {name[:200]!r} has a name that is not valid UTF-8") from exc
    try:
        check_path(path.rstrip("/"))
    except MLifeError as exc:
        raise UnsafeArchive(f"the entry {name[:200]!r} is unsafe: {exc.message}") from exc
    return f"{prefix}/{path}" if prefix else path


def _shared(limits: Limits) -> ArchiveLimits:
    return ArchiveLimits(max_entries=limits.max_entries, max_expanded=limits.max_expanded,
                         max_ratio=limits.max_ratio)


def _refused(exc: ArchiveRefused) -> MLifeError:
    if exc.limit == "ratio":
        return UnsafeArchive(exc.message)
    return ArchiveTooLarge(exc.message)


def _size(fh: IO[bytes]) -> int:
    here = fh.tell()
    size = fh.seek(0, 2)
    fh.seek(here)
    return size


def zip_entries(fh: IO[bytes], prefix: str | None, limits: Limits) -> tuple[list[Entry], Callable[[], None]]:
    try:
        zf = zipfile.ZipFile(fh)
    except zipfile.BadZipFile as exc:
        raise InvalidUpload(f"the zip archive is malformed: {exc}") from exc
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise ArchiveTooLarge(f"the archive has {len(infos)} entries; the limit is {limits.max_entries}")
    shared = _shared(limits)
    tally = Tally(shared, _size(fh))
    entries = []
    try:
        for info in infos:
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchive(f"the entry {info.filename[:200]!r} is a symbolic link")
            path = _entry_path(info.filename, prefix)
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                raise UnsafeArchive(f"the entry {info.filename[:200]!r} is encrypted")
            check_zip_entry(info, shared)
            tally.add(info.file_size)
            entries.append(Entry(path, info.file_size, partial(zf.open, info)))
    except ArchiveRefused as exc:
        raise _refused(exc) from exc
    return entries, zf.close


def _tar_check(member: tarfile.TarInfo) -> None:
    if member.issym() or member.islnk():
        raise UnsafeArchive(f"the entry {member.name[:200]!r} is a link")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchive(f"the entry {member.name[:200]!r} is a device, FIFO or other special file")


def tar_entries(fh: IO[bytes], prefix: str | None, limits: Limits) -> tuple[list[Entry], Callable[[], None]]:
    """A tar, plain or compressed, read as a stream through a bounded decompressor: a member whose declared size
    passes the expanded-size or ratio budget is refused at its header, before its data is inflated."""
    compressed = _size(fh)
    try:
        tf, stream = open_tar(fh, _shared(limits), compressed)
        members = tar_members(tf, Tally(_shared(limits), compressed), stream, check=_tar_check)
    except ArchiveRefused as exc:
        raise _refused(exc) from exc
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError) as exc:
        raise InvalidUpload(f"the tar archive is malformed: {exc}") from exc
    entries = []
    for m in members:
        path = _entry_path(m.name, prefix)
        if m.isdir():
            continue
        entries.append(Entry(path, m.size, partial(_member, tf, m)))
    return entries, tf.close


def _member(tf: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    fh = tf.extractfile(member)
    if fh is None:  # only a regular file has data; _tar_check let no other kind through
        raise UnsafeArchive(f"the entry {member.name[:200]!r} is not a regular file")
    return fh


async def _read(open_: Callable[[], IO[bytes]]) -> AsyncIterator[bytes]:
    fh = open_()
    try:
        while chunk := await asyncio.to_thread(fh.read, CHUNK):
            yield chunk
    finally:
        fh.close()


async def extract(service: FileService, chunks: AsyncIterator[bytes], *, prefix: str | None, limits: Limits,
                  uploader: str | None) -> list[Uploaded]:
    if prefix:
        check_path(prefix)
    fh = await spool(chunks, limits.max_bytes)
    try:
        magic = fh.read(4)
        fh.seek(0)
        if magic in (b"PK\x03\x04", b"PK\x05\x06"):
            entries, close = await asyncio.to_thread(zip_entries, fh, prefix, limits)
        else:
            entries, close = await asyncio.to_thread(tar_entries, fh, prefix, limits)
        try:
            paths = [e.path for e in entries]
            if len(set(paths)) != len(paths):
                raise UnsafeArchive("the archive has the same path twice")
            out, budget = [], limits.max_expanded
            try:
                for e in entries:
                    try:
                        up = await service.store_stream(_read(e.open), name=e.path, max_bytes=budget,
                                                        uploader=uploader)
                    except UploadTooLarge as exc:
                        raise ArchiveTooLarge(f"the archive expands past {limits.max_expanded} bytes") from exc
                    except zipfile.BadZipFile as exc:
                        raise InvalidUpload(f"the entry {e.path!r} is corrupt: {exc}") from exc
                    budget -= up.file.size
                    out.append(up)
            except BaseException:
                await service.discard_created()
                raise
            return out
        finally:
            close()
    finally:
        fh.close()
