"""The cleaners seam: data quality checks DAM runs over files, on upload and over a document's rows.

A cleaner gets the items to check (`Item`: a file's facts, an image's bytes, a row's labels) and a `Context`
(where it runs, the class list when one is known) and returns `Finding`s: which item, a short machine code, a
severity and a message a person can act on. Findings flag; they never refuse an upload (a user keeps the file and
decides). A cleaner looks at every item it is given at once, so it can compare them (near duplicates); on a single
upload it gets one item. It must not raise on bad content: bad content is a finding.

    from mlife_shared.plugins.seams.cleaners import Context, Finding, Item

    class Grayscale:
        name = "grayscale"
        api = ">=1,<2"
        description = "flags grayscale images in a colour data set"

        def check(self, items: Sequence[Item], context: Context) -> list[Finding]:
            return [Finding(self.name, "grayscale", "info", "the image has one channel", md5=i.md5,
                            position=i.position)
                    for i in items if i.data is not None and is_gray(i.data)]

Registered under the entry point group `mlife.cleaners`:

    [project.entry-points."mlife.cleaners"]
    grayscale = "my_package.cleaners:Grayscale"
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args, runtime_checkable

Severity = Literal["info", "warning", "error"]
Scope = Literal["upload", "document"]
SEVERITIES: tuple[str, ...] = get_args(Severity)


@dataclass(frozen=True)
class Item:
    """One file to check (on a document: one row's file, with the row's labels)."""

    md5: str | None
    path: str | None = None
    media_type: str = "binary"
    size: int = 0
    width: int | None = None
    height: int | None = None
    data: bytes | None = field(default=None, repr=False)
    """The content of an image (up to DAM's limit); None for other media or a larger file."""
    labels: tuple[str, ...] = ()
    """Every class the row's annotation names (a label, several labels, the boxes' labels); () on upload."""
    position: int | None = None
    """The row's position in the document; None on upload."""


@dataclass(frozen=True)
class Context:
    scope: Scope = "upload"
    classes: tuple[str, ...] | None = None
    """The class list the labels must come from; None when not known (a label check then has nothing to say)."""


@dataclass(frozen=True)
class Finding:
    cleaner: str
    code: str
    severity: Severity
    message: str
    md5: str | None = None
    position: int | None = None
    related: tuple[str, ...] = ()
    """Other items' MD5s the finding is about (a near duplicate's twins)."""

    def as_dict(self) -> dict[str, Any]:
        return {"cleaner": self.cleaner, "code": self.code, "severity": self.severity, "message": self.message,
                "md5": self.md5, "position": self.position, "related": list(self.related)}


@runtime_checkable
class Cleaner(Protocol):
    name: str
    api: str
    description: str

    def check(self, items: Sequence[Item], context: Context) -> list[Finding]:
        """The findings over these items (none: an empty list); never raises on bad content."""
        ...


PROTOCOL = Cleaner


def png(width: int, height: int, pixel: Any) -> bytes:
    """A grayscale 8-bit PNG where `pixel(x, y)` gives each value (0..255): made-up images for tests."""
    raw = b"".join(b"\x00" + bytes(int(pixel(x, y)) & 255 for x in range(width)) for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def sample_items() -> list[Item]:
    """Small made-up items of every kind a cleaner meets."""
    gradient = png(32, 32, lambda x, y: x * 8)
    flat = png(32, 32, lambda x, y: 128)
    return [
        Item(md5="0" * 32, path="a/gradient.png", media_type="image", size=len(gradient), width=32, height=32,
             data=gradient, labels=("cat",), position=0),
        Item(md5="1" * 32, path="a/flat.png", media_type="image", size=len(flat), width=32, height=32, data=flat,
             labels=("dog",), position=1),
        Item(md5="2" * 32, path="a/broken.png", media_type="image", size=12, data=b"\x89PNG\r\n\x1a\nxxxx",
             labels=("bird",), position=2),
        Item(md5="3" * 32, path="a/notes.txt", media_type="text", size=5, position=3),
        Item(md5=None, path=None, media_type="binary", size=0, labels=(), position=4),
    ]


def conformance(plugin: Any) -> None:
    """Behavioural checks beyond the protocol's members (raise AssertionError with what is wrong)."""
    assert plugin.check([], Context()) == [], "check([]) must return an empty list"
    items = sample_items()
    md5s = {i.md5 for i in items}
    for context in (Context(), Context(scope="document", classes=("cat", "dog"))):
        findings = plugin.check(items, context)
        assert isinstance(findings, list), f"check must return a list of Finding, not {type(findings).__name__}"
        for f in findings:
            assert isinstance(f, Finding), f"a finding must be a cleaners.Finding, not {type(f).__name__}"
            assert f.cleaner == plugin.name, f"a finding names its cleaner {plugin.name!r}, not {f.cleaner!r}"
            assert f.code and isinstance(f.code, str), "a finding needs a code (a short machine-readable word)"
            assert f.severity in SEVERITIES, f"severity {f.severity!r} is not one of {SEVERITIES}"
            assert f.message and isinstance(f.message, str), "a finding needs a message saying what is wrong"
            assert f.md5 is None or f.md5 in md5s, f"a finding names an item it was not given: {f.md5}"
        again = plugin.check(items, context)
        assert [f.as_dict() for f in again] == [f.as_dict() for f in findings], "check must be deterministic"
    for one in items:  # one item at a time, as on upload
        assert isinstance(plugin.check([one], Context()), list)
