"""The kind of a data file, told from its first bytes, never from its name."""

from __future__ import annotations

import json

_SIGNATURES: list[tuple[bytes, int, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "image"), (b"\xff\xd8\xff", 0, "image"), (b"GIF87a", 0, "image"),
    (b"GIF89a", 0, "image"), (b"BM", 0, "image"), (b"ID3", 0, "audio"), (b"fLaC", 0, "audio"),
    (b"OggS", 0, "audio"), (b"\x1a\x45\xdf\xa3", 0, "video"), (b"ftyp", 4, "video"),
]


def detect(head: bytes) -> str:
    if head.startswith(b"\x93NUMPY"):
        return "tensor"
    if head.startswith(b"PK\x03\x04") and _zip_member(head).endswith(".npy"):
        return "tensor"  # an .npz: a zip whose first member is an .npy
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        return {b"WEBP": "image", b"WAVE": "audio", b"AVI ": "video"}[head[8:12]]
    for magic, offset, kind in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return kind
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "other"
    try:
        json.loads(text)
        return "json"
    except ValueError:
        return "text"


def _zip_member(head: bytes) -> str:
    """The name of a zip's first member, from its local file header (what fits in the head)."""
    n = int.from_bytes(head[26:28], "little")
    return head[30:30 + n].decode("utf-8", errors="replace")
