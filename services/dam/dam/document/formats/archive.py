"""Zip bodies of the per-image formats (VOC, YOLO): read with bounds (entries, expanded bytes, compression ratio:
a zip bomb is refused before it is expanded), written deterministically."""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

from mlife_shared.plugins.seams.converters import ConversionError

MAX_ENTRIES = 200_000
MAX_EXPANDED = 256 * 1024 * 1024
MAX_RATIO = 200
ZIP_MAGIC = b"PK\x03\x04"


def is_zip(data: bytes) -> bool:
    return data[:4] == ZIP_MAGIC


def names(data: bytes, limit: int = 2000) -> list[str]:
    """The first `limit` file names of a zip (for detection), [] when it is not one."""
    if not is_zip(data):
        return []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return [i.filename for i in zf.infolist()[:limit] if not i.is_dir()]
    except (zipfile.BadZipFile, ValueError):
        return []


def _skipped(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any(p == "__MACOSX" or p.startswith(".") for p in parts)


def read(data: bytes, suffixes: tuple[str, ...]) -> dict[str, bytes]:
    """The entries of a zip whose names end with one of `suffixes` (macOS and hidden files left out), by name."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ConversionError(f"the body is not a readable zip: {exc}") from exc
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and not _skipped(i.filename)
                 and i.filename.lower().endswith(suffixes)]
        if len(infos) > MAX_ENTRIES:
            raise ConversionError(f"the zip has {len(infos)} entries; the limit is {MAX_ENTRIES}")
        if sum(i.file_size for i in infos) > MAX_EXPANDED:
            raise ConversionError(f"the zip expands to more than {MAX_EXPANDED} bytes")
        for i in infos:
            if i.file_size > 1024 and i.file_size > MAX_RATIO * max(i.compress_size, 1):
                raise ConversionError(f"the zip entry {i.filename!r} is compressed more than {MAX_RATIO}:1 (a zip "
                                      "bomb?)")
        try:
            return {i.filename: zf.read(i) for i in infos}
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
            raise ConversionError(f"the zip cannot be read: {exc}") from exc


def write(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[name])
    return buf.getvalue()


def text(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConversionError(f"{name} is not UTF-8 text (byte {exc.start})") from exc


def stems(paths: list[str | None], md5s: list[str | None]) -> list[str]:
    """A unique file stem a row: its path's name without extension; its MD5 when that is taken (or it has no
    path), which imports back as that file."""
    out: list[str] = []
    seen: set[str] = set()
    for n, (path, md5) in enumerate(zip(paths, md5s, strict=True), start=1):
        stem = next((s for s in (PurePosixPath(path).stem if path else None, md5) if s and s not in seen), f"row{n}")
        seen.add(stem)
        out.append(stem)
    return out
