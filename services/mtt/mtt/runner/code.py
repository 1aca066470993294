"""Code archives: a task's code uploaded as .zip or .tar.gz (`code_location = store:<key>`), checked at upload
and extracted by the runner with the same rules: relative member names without `..`, regular files and
folders only (no links, devices), bounded entry count, expanded size and compression ratio (a tar.gz is
streamed through a bounded decompressor: a bomb is refused before it is inflated)."""

from __future__ import annotations

import io
import lzma
import stat
import tarfile
import zipfile
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO

from mlife_shared.archive import ArchiveLimits, ArchiveRefused, Tally, check_zip_entry, open_tar, tar_members
from mlife_shared.errors import Unprocessable

MAX_ENTRIES = 10_000
MAX_EXPANDED = 1024 * 1024 * 1024
MAX_RATIO = 200.0  # code and small data compress far less; a stream of zeros compresses ~1000-fold
LIMITS = ArchiveLimits(max_entries=MAX_ENTRIES, max_expanded=MAX_EXPANDED, max_ratio=MAX_RATIO)


class InvalidCodeArchive(Unprocessable):
    """The code archive is not a safe .zip or .tar.gz."""


def _check_name(name: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if not name or "\x00" in name or p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise InvalidCodeArchive(f"archive member {name[:200]!r} has an absolute or escaping path")
    return p


def kind_of(data_head: bytes) -> str:
    if data_head.startswith(b"PK\x03\x04"):
        return "zip"
    if data_head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    raise InvalidCodeArchive("the code must be a .zip or .tar.gz archive")


def _tar_member(m: tarfile.TarInfo) -> tuple[PurePosixPath, int, bool]:
    if not (m.isfile() or m.isdir()):
        raise InvalidCodeArchive(f"archive member {m.name!r} is not a regular file or folder")
    return _check_name(m.name), m.size, m.isdir()


def members(path: Path) -> list[tuple[PurePosixPath, int, bool]]:
    """(name, size, is_dir) of every member; raises on anything unsafe. A tar.gz is read as a stream through a
    bounded decompressor (mlife_shared.archive): a bomb is refused before it is decompressed."""
    with path.open("rb") as fh:
        kind = kind_of(fh.read(4))
    compressed = path.stat().st_size
    tally = Tally(LIMITS, compressed)
    out: list[tuple[PurePosixPath, int, bool]] = []
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
                if len(infos) > LIMITS.max_entries:
                    raise InvalidCodeArchive(f"the archive has {len(infos)} entries; the limit is {LIMITS.max_entries}")
                for info in infos:
                    mode = info.external_attr >> 16
                    if mode and stat.S_ISLNK(mode):
                        raise InvalidCodeArchive(f"archive member {info.filename!r} is a symbolic link")
                    check_zip_entry(info, LIMITS)
                    tally.add(info.file_size)
                    out.append((_check_name(info.filename), info.file_size, info.is_dir()))
        else:
            with path.open("rb") as fh:
                tf, stream = open_tar(fh, LIMITS, compressed)
                with tf:
                    tar_members(tf, tally, stream, check=lambda m: out.append(_tar_member(m)))
    except ArchiveRefused as exc:
        raise InvalidCodeArchive(str(exc.message)) from exc
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, lzma.LZMAError) as exc:
        raise InvalidCodeArchive(f"the archive is damaged: {exc}") from exc
    if not any(not is_dir for _, _, is_dir in out):
        raise InvalidCodeArchive("the archive holds no file")
    return out


def extract(path: Path, dest: Path) -> int:
    """Extract a checked archive into `dest`; returns the number of files."""
    listing = members(path)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    files = 0
    with path.open("rb") as fh:
        kind = kind_of(fh.read(4))
    if kind == "zip":
        with zipfile.ZipFile(path) as zf:
            for info, (name, _, is_dir) in zip(zf.infolist(), listing, strict=True):
                files += _write(root, name, is_dir, partial(zf.open, info))
    else:
        with path.open("rb") as fh:
            tf, _ = open_tar(fh, LIMITS, path.stat().st_size)
            with tf:
                for m, (name, _, is_dir) in zip(tf.getmembers(), listing, strict=True):
                    files += _write(root, name, is_dir, partial(_open_member, tf, m))
    return files


def _open_member(tf: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    return tf.extractfile(member) or io.BytesIO()


def _write(root: Path, name: PurePosixPath, is_dir: bool, opener: Callable[[], IO[bytes]]) -> int:
    target = (root / Path(*name.parts)).resolve() if name.parts else root
    if target != root and root not in target.parents:
        raise InvalidCodeArchive(f"archive member {str(name)!r} resolves outside the code folder")
    if is_dir:
        target.mkdir(parents=True, exist_ok=True)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with opener() as src, target.open("wb") as out:
        while chunk := src.read(1 << 20):
            out.write(chunk)
    return 1
