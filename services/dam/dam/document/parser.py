"""Reading a document body through a converter (the `converters` plugins: CSV, TSV, JSON, XML, Label Studio,
COCO, Pascal VOC, YOLO built in): the named format, or the one most sure of the body when none is named. What a
converter refuses is a 422 naming what to fix (and the row); nothing is written."""

from __future__ import annotations

import json
import re
from typing import Any

from dam.document.exceptions import InvalidDocument
from mlife_shared.plugins.registry import Plugins
from mlife_shared.plugins.seams.converters import ConversionError, Converter, Imported

RESERVED = ("md5", "path", "annotation")
COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
SEAM = "converters"


def maybe_json(value: str | None) -> Any:
    """A cell that holds a structured annotation (`{...}`, `[...]`) is JSON; anything else is a string."""
    if value is None:
        return None
    s = value.strip()
    if s == "":
        return None
    if s[0] in "{[":
        try:
            return json.loads(s)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"the annotation looks like JSON but is not valid JSON: {exc}") from exc
    return value


def converter(plugins: Plugins, fmt: str, *, exporting: bool) -> Converter:
    """The active converter `fmt`, which must go the asked way (422 naming the ones that do)."""
    conv: Converter = plugins.get(SEAM, fmt)
    if not (conv.exports if exporting else conv.imports):
        way = "export" if exporting else "import"
        able = sorted(n for n, c in plugins.active(SEAM).items() if (c.exports if exporting else c.imports))
        raise InvalidDocument(f"the format {fmt!r} does not {way}; the formats that {way} are {', '.join(able)}")
    return conv


def detect(plugins: Plugins, content_type: str | None, data: bytes) -> str:
    """The importing converter most sure of the body (ties: the built-in order, then by name)."""
    scores: list[tuple[int, str]] = []
    for name, conv in plugins.active(SEAM).items():
        if not conv.imports:
            continue
        try:
            score = int(conv.detect(data, content_type))
        except Exception:  # noqa: BLE001 - an outside converter's bug in detection only means "not mine"
            score = 0
        scores.append((score, name))
    best = max(scores, key=lambda s: s[0], default=(0, ""))
    if best[0] <= 0:
        raise InvalidDocument("the format of the document is not recognised; name it with format= (one of "
                              f"{', '.join(sorted(n for _, n in scores))})")
    return best[1]


def read(conv: Converter, data: bytes, options: dict[str, str]) -> Imported:
    """The converter's rows, or InvalidDocument with its message (and row)."""
    try:
        imported = conv.read(data, options)
    except ConversionError as exc:
        raise InvalidDocument({"row": exc.row, "message": exc.message} if exc.row is not None else exc.message) from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - input a converter cannot read is the input's fault, said so
        raise InvalidDocument(f"the {conv.name} converter could not read the document: "
                              f"{type(exc).__name__}: {exc}"[:1000]) from exc
    if not isinstance(imported, Imported):
        raise InvalidDocument(f"the {conv.name} converter returned no rows (a plugin bug: read must return Imported)")
    return imported
