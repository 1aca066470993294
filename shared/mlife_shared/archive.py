"""Limits for reading an uploaded archive (zip, tar, tar.gz/.bz2/.xz), shared by every service that reads
one: entry count, total expanded size, and compression ratio — the ratio per zip entry and, for a
compressed tar, over the whole stream. A compressed tar is read through a decompressor that counts what it
produces and stops at the budget, so a bomb is refused before it is decompressed: a member whose declared
size passes the budget is refused at its header, before its data is inflated; trailing data after the end
of the archive (a bare gzip of zeros, a tar followed by a bomb) is drained only up to the budget."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from mlife_shared.errors import Unprocessable

MIB = 1024 * 1024


class ArchiveRefused(Unprocessable):
    """The archive passes a limit (entries, expanded size or compression ratio)."""

    def __init__(self, message: str, *, limit: str = "ratio") -> None:
        super().__init__(message)
        self.limit = limit  # "entries", "size" or "ratio": a service may answer 413 for the first two


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 10_000
    max_expanded: int = 1024 * MIB
    max_ratio: float = 200.0
    ratio_floor: int = MIB  # below this many expanded bytes the ratio is not held against an archive

    def budget(self, compressed: int) -> int:
        """The most bytes an archive of `compressed` bytes may expand to: by size and by ratio."""
        return min(self.max_expanded, max(self.ratio_floor, int(self.max_ratio * max(compressed, 1))))


def _refuse(limits: ArchiveLimits, compressed: int, expanded: int) -> ArchiveRefused:
    if expanded > limits.max_expanded:
        return ArchiveRefused(f"the archive expands beyond {limits.max_expanded} bytes (the limit)", limit="size")
    return ArchiveRefused(f"the archive expands more than {limits.max_ratio:g}-fold ({compressed} bytes to more "
                          f"than {limits.budget(compressed)}): a compression bomb", limit="ratio")


class Tally:
    """Counts entries and declared sizes; refuses as soon as a limit is passed."""

    def __init__(self, limits: ArchiveLimits, compressed: int) -> None:
        self.limits, self.compressed = limits, compressed
        self.entries = self.expanded = 0

    def add(self, size: int) -> None:
        self.entries += 1
        self.expanded += max(size, 0)
        if self.entries > self.limits.max_entries:
            raise ArchiveRefused(f"the archive has more than {self.limits.max_entries} entries (the limit)",
                                 limit="entries")
        if self.expanded > self.limits.budget(self.compressed):
            raise _refuse(self.limits, self.compressed, self.expanded)


def check_zip_entry(info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    """A zip entry's own ratio (the whole archive's expanded size is a Tally's job)."""
    if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
        raise ArchiveRefused(f"the entry {info.filename[:200]!r} expands {info.file_size // max(info.compress_size, 1)}"
                             f"-fold (a zip bomb); the limit is {limits.max_ratio:g}")


class BoundedStream(io.RawIOBase):
    """A decompressed stream that refuses to produce (or seek) past `budget` bytes."""

    def __init__(self, inner: Any, budget: int, limits: ArchiveLimits, compressed: int) -> None:
        super().__init__()
        self.inner, self.budget, self.limits, self.compressed = inner, budget, limits, compressed

    def _check(self, position: int) -> None:
        if position > self.budget:
            raise _refuse(self.limits, self.compressed, position)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return int(self.inner.tell())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self.tell() + offset if whence == io.SEEK_CUR else None
        if target is not None:
            self._check(target)  # before the decompressor does the work
        return int(self.inner.seek(offset, whence))

    def readinto(self, buffer: Any) -> int:
        room = self.budget - self.tell() + 1  # one byte more than allowed tells "too much" from "exactly"
        view = memoryview(buffer)[:max(room, 0)]
        data = self.inner.read(len(view))
        view[:len(data)] = data
        self._check(self.tell())
        return len(data)

    def drain(self) -> None:
        """Read what is left (trailing data after the archive) up to the budget."""
        while self.read(MIB):
            pass

    def close(self) -> None:
        self.inner.close()
        super().close()


def open_tar(fh: IO[bytes], limits: ArchiveLimits, compressed: int) -> tuple[tarfile.TarFile, BoundedStream | None]:
    """A tar (plain, gzip, bzip2 or xz) opened over a bounded decompressor; the stream is None for a plain tar
    (its expanded size is its size). Raises tarfile.TarError / OSError / EOFError on a damaged archive."""
    magic = fh.read(6)
    fh.seek(0)
    inner: Any
    if magic.startswith(b"\x1f\x8b"):
        inner = gzip.GzipFile(fileobj=fh, mode="rb")
    elif magic.startswith(b"BZh"):
        inner = bz2.BZ2File(fh, mode="rb")
    elif magic.startswith(b"\xfd7zXZ\x00"):
        inner = lzma.LZMAFile(fh, mode="rb")  # noqa: SIM115 - owned by the returned stream
    else:
        return tarfile.open(fileobj=fh, mode="r:"), None
    stream = BoundedStream(inner, limits.budget(compressed), limits, compressed)
    return tarfile.open(fileobj=stream, mode="r:"), stream


def tar_members(tf: tarfile.TarFile, tally: Tally, stream: BoundedStream | None,
                check: Callable[[tarfile.TarInfo], None] | None = None) -> list[tarfile.TarInfo]:
    """Every member, each held against `check` (a service's own rules) and its size against the limits at its
    header (before its data is decompressed), then any trailing data drained within the budget."""
    members = []
    while True:
        member = tf.next()
        if member is None:
            break
        if member.issparse():
            raise ArchiveRefused(f"the entry {member.name[:200]!r} is a sparse file")
        if check is not None:
            check(member)
        tally.add(member.size)
        members.append(member)
    if stream is not None:
        stream.drain()
    return members
