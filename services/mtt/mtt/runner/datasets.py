"""A run's datasets: each manifest (DAM's JSON lines) → its items' files in the work dir + a local manifest whose
items carry `local_path` (a table row with `features` has no file)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from mlife_shared.errors import MLifeError
from mlife_shared.objectstore import ObjectStore
from mlife_shared.objectstore.base import ObjectNotFound, read_all
from mtt.evaluator.tensor import data_key, is_table_row
from mtt.files import download
from mtt.runner.logs import LogSink
from mtt.runner.result import RunFailed
from mtt.task.models import Task


async def resolve(store: ObjectStore, task: Task, work: Path, sink: LogSink, *,
                  inside: str | None = None) -> list[dict[str, Any]]:
    """Each dataset's manifest → local files + a local manifest whose items carry `local_path`: in the returned
    items the runner's path, in the manifest file the path the command sees (`inside`: the work dir in its
    sandbox)."""
    return [await _resolve_one(store, ds, work, sink, inside) for ds in task.datasets]


async def _resolve_one(store: ObjectStore, ds: dict[str, Any], work: Path, sink: LogSink,
                       inside: str | None) -> dict[str, Any]:
    key = ds["manifest_key"]
    try:
        raw = await read_all(await store.get(key))
    except ObjectNotFound as exc:
        raise RunFailed(f"the manifest {key!r} is missing from the store") from exc
    items = parse_manifest(raw, key)
    folder = work / "data" / ds["dataset_id"]
    folder.mkdir(parents=True, exist_ok=True)
    sem = asyncio.Semaphore(8)  # below the S3 client pool (10)
    await asyncio.gather(*(_fetch_item(store, key, folder, sem, i, it) for i, it in enumerate(items)))
    local = work / "data" / f"{ds['dataset_id']}.jsonl"
    local.write_text("".join(json.dumps(_seen(it, work, inside), ensure_ascii=False) + "\n" for it in items))
    sink.line(f"dataset {ds['dataset_id']} ({ds.get('purpose')}): {len(items)} items")
    return {**ds, "local_manifest": str(local), "items": items, "digest": hashlib.md5(raw).hexdigest()}


async def _fetch_item(store: ObjectStore, key: str, folder: Path, sem: asyncio.Semaphore, i: int,
                      it: dict[str, Any]) -> None:
    """The item's file into `folder` (`local_path`): by its key, else relative to its manifest."""
    if is_table_row(it):
        return  # a table row: its features are the data
    file_key = data_key(it)
    if not file_key:
        raise RunFailed(f"manifest {key}: item {i} has neither key nor md5 (nor features)")
    suffix = Path(str(it.get("path") or file_key)).suffix[:10]
    dest = folder / f"{i:07d}-{it.get('md5') or 'item'}{suffix}"
    base = key.rsplit("/", 1)[0]
    async with sem:
        try:
            await download(store, file_key, dest)
        except (ObjectNotFound, MLifeError):
            try:
                await download(store, f"{base}/{file_key}", dest)
            except (ObjectNotFound, MLifeError) as exc:
                raise RunFailed(f"manifest {key}: the data of item {i} ({file_key!r}) is missing") from exc
    it["local_path"] = str(dest)


def parse_manifest(raw: bytes, key: str) -> list[dict[str, Any]]:
    """JSON lines (DAM's format) or a JSON array / {"items": [...]}; unknown fields are kept."""
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        return []
    if text.startswith("[") or (text.startswith("{") and "\n" not in text and '"items"' in text):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise RunFailed(f"the manifest {key!r} is not JSON") from exc
        items = doc.get("items", []) if isinstance(doc, dict) else doc
    else:
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except ValueError as exc:
                raise RunFailed(f"the manifest {key!r}: line {n} is not JSON") from exc
    if not isinstance(items, list) or not all(isinstance(it, dict) for it in items):
        raise RunFailed(f"the manifest {key!r}: every item must be a JSON object")
    return [it for it in items if isinstance(it, dict)]


def _seen(item: dict[str, Any], work: Path, inside: str | None) -> dict[str, Any]:
    if inside is None or "local_path" not in item:
        return item
    return {**item, "local_path": f"{inside}/{Path(item['local_path']).relative_to(work).as_posix()}"}
