"""What a file is, told from its first bytes (never from its name), and an image's dimensions. A NumPy
array file (`.npy`, or an `.npz` of them: a served model input) is a `tensor`."""

from __future__ import annotations

import io
import json

SNIFF_BYTES = 256 * 1024


def sniff(head: bytes) -> tuple[str, str]:
    """(media type, content type) of content starting with `head`."""
    return _image(head) or _audio_video(head) or _document_or_archive(head) or _text_kind(head)


def _image(h: bytes) -> tuple[str, str] | None:
    if h.startswith(b"\xff\xd8\xff"):
        return "image", "image/jpeg"
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "image/png"
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return "image", "image/gif"
    if h[:4] == b"RIFF" and h[8:12] == b"WEBP":
        return "image", "image/webp"
    if h[:4] in (b"II*\x00", b"MM\x00*"):
        return "image", "image/tiff"
    if h[:2] == b"BM" and len(h) >= 26 and h[6:10] == b"\x00\x00\x00\x00":
        return "image", "image/bmp"
    return None


def _audio_video(h: bytes) -> tuple[str, str] | None:
    if h[:4] == b"RIFF" and h[8:12] == b"WAVE":
        return "audio", "audio/wav"
    if h[:4] == b"RIFF" and h[8:12] == b"AVI ":
        return "video", "video/x-msvideo"
    if h[:3] == b"ID3" or (len(h) > 1 and h[0] == 0xFF and h[1] in (0xFB, 0xF3, 0xF2)):
        return "audio", "audio/mpeg"
    if h[:4] == b"fLaC":
        return "audio", "audio/flac"
    if h[:4] == b"OggS":
        return "audio", "audio/ogg"
    if h[4:8] == b"ftyp":
        brand = h[8:12]
        return ("audio", "audio/mp4") if brand in (b"M4A ", b"M4B ") else ("video", "video/mp4")
    if h[:4] == b"\x1a\x45\xdf\xa3":
        return "video", "video/webm"
    return None


def _document_or_archive(h: bytes) -> tuple[str, str] | None:
    if h[:5] == b"%PDF-":
        return "document", "application/pdf"
    if h[:6] == b"\x93NUMPY":
        return "tensor", "application/x-npy"
    if h[:4] == b"PK\x03\x04" and _first_zip_entry(h).endswith(".npy"):
        return "tensor", "application/x-npz"
    if h[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "archive", "application/zip"
    if h[:2] == b"\x1f\x8b":
        return "archive", "application/gzip"
    if len(h) >= 262 and h[257:262] == b"ustar":
        return "archive", "application/x-tar"
    return None


def _first_zip_entry(h: bytes) -> str:
    """The name of a zip's first entry (its local header): an `.npz` holds `<name>.npy` arrays."""
    if len(h) < 30:
        return ""
    n = int.from_bytes(h[26:28], "little")
    return h[30:30 + n].decode("utf-8", "replace")


def _text_kind(h: bytes) -> tuple[str, str]:
    if b"\x00" in h:
        return "binary", "application/octet-stream"
    try:
        text = h.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sniffed head is still text.
        if exc.start < len(h) - 4:
            return "binary", "application/octet-stream"
        text = h[: exc.start].decode("utf-8")
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        return "text", "text/plain"
    if stripped[0] in "{[":
        if len(h) < SNIFF_BYTES:
            try:
                json.loads(stripped)
                return "json", "application/json"
            except ValueError:
                pass
            # JSON lines
            first = stripped.split("\n", 1)[0]
            try:
                json.loads(first)
                return "json", "application/x-ndjson"
            except ValueError:
                return "text", "text/plain"
        return "json", "application/json"
    if stripped.startswith("<?xml") or stripped.startswith("<"):
        return "text", "application/xml"
    return "text", "text/plain"


def image_size(head: bytes) -> tuple[int | None, int | None]:
    """Width and height from the header of an image; None when the header is not in `head`."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(head)) as img:
            return int(img.width), int(img.height)
    except Exception:  # noqa: BLE001 - unknown or truncated header: no dimensions, not an error
        return None, None
