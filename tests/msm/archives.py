"""Reading back the tar archives MSM writes (Docker build contexts, edge packages)."""

from __future__ import annotations

import io
import tarfile


def tar_files(data: bytes) -> dict[str, bytes]:
    """Every regular file of a (possibly gzipped) tar, by its name."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            content = tar.extractfile(member) if member.isfile() else None
            if content is not None:
                files[member.name] = content.read()
    return files
