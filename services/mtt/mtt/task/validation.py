"""What a task must satisfy before it is stored or run: object keys, code locations, the command, an uploaded
code archive, and whether it can run yet."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from mlife_shared.objectstore.base import InvalidKey, validate_key
from mtt.task.exceptions import InvalidTask
from mtt.task.models import Task

STORE_PREFIX = "store:"
CODE_ARCHIVES = "mtt/tasks/"  # where MTT stores uploaded code (store_code); no other object is code


def check_key(value: str, what: str) -> str:
    try:
        return validate_key(value)
    except InvalidKey as exc:
        raise InvalidTask(f"{what} {value[:200]!r} is not a valid object key: {exc.message}") from exc


def check_code_location(location: str, roots: Sequence[Path] | None = None) -> str:
    """`store:<key>` of an archive uploaded to MTT, or an absolute folder under one of the `code_roots` (on the
    runners' machines too). `roots=None` only for a location the operator configured (re-checked by the runner)."""
    if location.startswith(STORE_PREFIX):
        key = check_key(location[len(STORE_PREFIX):], "code_location")
        if not key.startswith(CODE_ARCHIVES):
            raise InvalidTask(f"code_location {location[:200]!r} is not a code archive uploaded to MTT "
                              f"(store:{CODE_ARCHIVES}…): upload the code with POST /tasks/{{id}}/code")
        return location
    if "\x00" in location:
        raise InvalidTask("code_location contains a NUL byte")
    path = Path(location)
    if not path.is_absolute():
        raise InvalidTask(f"code_location {location!r} must be an absolute folder path")
    if roots is not None:
        under_roots(location, roots)
    if not path.is_dir():
        raise InvalidTask(f"code_location {location!r} is not an existing folder")
    return str(path)


def under_roots(location: str, roots: Sequence[Path]) -> Path:
    """The folder's real path (links followed) inside a real code root, or a 422 naming the setting."""
    if not roots:
        raise InvalidTask(f"code_location {location[:200]!r}: this server takes code only as an uploaded archive "
                          "(POST /tasks/{id}/code, or the `code` part); folders need MLIFE_MTT_CODE_ROOTS, which is "
                          "empty")
    real = Path(os.path.realpath(location))
    for root in roots:
        root_real = Path(os.path.realpath(root))
        if real == root_real or root_real in real.parents:
            return real
    raise InvalidTask(f"code_location {location[:200]!r} is outside the folders MLIFE_MTT_CODE_ROOTS allows "
                      f"({', '.join(str(r) for r in roots)}); its real path is {str(real)[:200]!r}")


def check_command(command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise InvalidTask(f"the command does not parse: {exc}") from exc
    if not argv:
        raise InvalidTask("the command is empty")
    return argv


def check_archive(path: Path) -> str:
    """The archive's extension (zip / tar.gz) once its members are known to be safe."""
    from mtt.runner.code import kind_of, members

    with path.open("rb") as fh:
        ext = kind_of(fh.read(4))
    members(path)
    return ext


def check_name(name: str) -> str:
    """A name an upload is stored under (one path segment)."""
    if not name or len(name) > 200 or any(not (c.isalnum() or c in "-_.") for c in name) or name.strip(".") == "":
        raise InvalidTask("name: use 1-200 letters, digits, '-', '_' or '.'")
    return name


def runnable(task: Task) -> str | None:
    """Why the task cannot run yet, or None."""
    if task.command and not task.code_location:
        return "the command has no code yet: upload it (POST /tasks/{id}/code) or set code_location"
    if task.kind == "train" and not task.command:
        return "set code_location and command (the training code to run)"
    if task.kind == "test" and not task.command and not task.model:
        return "set the model to test (or a command for your own testing code)"
    return None


def settle(task: Task) -> None:
    """A draft or ready task is ready exactly when it can run."""
    if task.status in ("draft", "ready"):
        task.status = "ready" if runnable(task) is None else "draft"
