"""Code archives for tasks, built in memory."""

from __future__ import annotations

import io
import zipfile


def zipped(files: dict[str, str] | dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()
