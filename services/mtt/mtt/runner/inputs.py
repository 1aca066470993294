"""A run's inputs besides its datasets (datasets.py): the model under test and the task's code."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from mlife_shared.objectstore import ObjectStore
from mlife_shared.objectstore.base import ObjectNotFound
from mtt.config import Settings
from mtt.files import download
from mtt.runner.code import extract
from mtt.runner.logs import LogSink
from mtt.runner.output import safe_name
from mtt.runner.result import RunFailed
from mtt.task.exceptions import InvalidTask
from mtt.task.models import Task
from mtt.task.validation import STORE_PREFIX, under_roots

COPY_IGNORED = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "mlife-output")


async def fetch_model(store: ObjectStore, task: Task, work: Path, sink: LogSink) -> Path | None:
    """The task's model into `<work>/model/` (a testing task's: the built-in evaluator runs it, your own code
    gets its path as `MLIFE_MODEL_PATH`)."""
    if not task.model:
        if not task.command:
            raise RunFailed("a test task without a command needs a model")
        return None
    key = task.model["object_key"]
    name = "model.onnx" if not task.command else safe_name(key.rsplit("/", 1)[-1])
    path = work / "model" / name
    path.parent.mkdir(exist_ok=True)
    try:
        await download(store, key, path)
    except ObjectNotFound as exc:
        raise RunFailed(f"the model file {key!r} is missing") from exc
    sink.line(f"model {task.model['name']} v{task.model['version']}: {path.stat().st_size} bytes")
    return path


async def fetch_code(store: ObjectStore, settings: Settings, task: Task, work: Path, sink: LogSink, *,
                     runner: str) -> Path:
    """The task's code into `<work>/code/`: its uploaded archive extracted, or its folder copied."""
    code = work / "code"
    location = task.code_location or ""
    if location.startswith(STORE_PREFIX):
        try:
            archive = await download(store, location[len(STORE_PREFIX):], work / "code-archive")
        except ObjectNotFound as exc:
            raise RunFailed(f"the code archive {location!r} is missing") from exc
        count = await asyncio.to_thread(extract, archive, code)
        sink.line(f"code: {count} files from {location}")
        return code
    # re-checked here, on the real path: a link inside a root may lead out of it; links inside the folder are
    # copied as links (the sandbox resolves them against its own filesystem)
    src = code_root_of(location, settings, runner=runner)
    await asyncio.to_thread(shutil.copytree, src, code, symlinks=True, ignore=COPY_IGNORED)
    return code


def code_root_of(location: str, settings: Settings, *, runner: str) -> Path:
    """The runner's check before it copies a code folder: its real path, now, inside a code root."""
    try:
        real = under_roots(location, settings.code_roots)
    except InvalidTask as exc:
        raise RunFailed(f"refused on runner {runner}: {exc.message}") from exc
    if not real.is_dir():
        raise RunFailed(f"the code location {location!r} is not a folder on runner {runner}")
    return real
