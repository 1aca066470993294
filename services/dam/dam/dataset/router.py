from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from dam.dataset.models import Dataset
from dam.dataset.schemas import DatasetRead, GroupRead, GroupRequest, Leakage
from dam.dataset.service import DatasetService
from dam.document import analysis
from dam.document.service import require_storable
from mlife_shared.app import SessionDep, StoreDep
from mlife_shared.auth import Engineer, Viewer

router = APIRouter(prefix="/datasets", tags=["datasets"])


def to_read(d: Dataset) -> DatasetRead:
    return DatasetRead(id=d.id, group_id=d.group_id, name=d.name, purpose=d.purpose, version=d.version,  # type: ignore[arg-type]
                       item_count=d.item_count, manifest_key=d.manifest_key, is_badcase_test_set=d.is_badcase_test_set,
                       spec=d.spec, created_by=d.created_by, created_at=d.created_at)


@router.post("", status_code=201)
async def group_items(body: GroupRequest, session: SessionDep, store: StoreDep, identity: Engineer) -> GroupRead:
    """Group items: freeze train/test dataset versions (manifest in the store, `dataset.grouped` for each)."""
    svc = DatasetService(session, store)
    group_id, datasets, dropped = await svc.group(body, identity.username)
    by = {d.purpose: d for d in datasets}
    leak = await svc.leakage(by["train"].id, by["test"].id) if {"train", "test"} <= set(by) else None
    return GroupRead(group_id=group_id, datasets=[to_read(d) for d in datasets], leakage=leak,
                     duplicates_dropped=dropped)


@router.get("")
async def list_datasets(session: SessionDep, store: StoreDep, _: Viewer, name: str | None = None,
                        limit: Annotated[int, Query(ge=1, le=500)] = 100,
                        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0) -> list[DatasetRead]:
    """Dataset versions, newest first."""
    require_storable("the name", name)
    return [to_read(d) for d in await DatasetService(session, store).repo.list(name=name, limit=limit, offset=offset)]


@router.get("/leakage")
async def leakage(session: SessionDep, store: StoreDep, _: Viewer, train: uuid.UUID, test: uuid.UUID) -> Leakage:
    """Content (by MD5) present in both a train and a test dataset."""
    return await DatasetService(session, store).leakage(train, test)


@router.get("/{dataset_id}")
async def get_dataset(dataset_id: uuid.UUID, session: SessionDep, store: StoreDep, _: Viewer) -> DatasetRead:
    """One dataset version."""
    return to_read(await DatasetService(session, store).get(dataset_id))


@router.get("/{dataset_id}/manifest")
async def get_manifest(dataset_id: uuid.UUID, session: SessionDep, store: StoreDep, _: Viewer) -> StreamingResponse:
    """The immutable manifest: JSON lines of md5, object key, path, annotation, label and file facts."""
    ds = await DatasetService(session, store).get(dataset_id)
    return StreamingResponse(await store.store.get(ds.manifest_key), media_type="application/x-ndjson")


@router.get("/{dataset_id}/stats")
async def dataset_stats(dataset_id: uuid.UUID, session: SessionDep, store: StoreDep, _: Viewer) -> dict[str, Any]:
    """Distribution of a dataset: class, type, size, dimensions and extra columns."""
    svc = DatasetService(session, store)
    ds = await svc.get(dataset_id)
    items = await svc.manifest(ds)
    columns = sorted({k for it in items for k in (it.get("extra") or {})})
    rows = [(SimpleNamespace(label=it["label"], annotation=it["annotation"], extra=it.get("extra") or {}),
             SimpleNamespace(md5=it["md5"], media_type=it["media_type"], size=it["size"] or 0, width=it["width"],
                             height=it["height"]) if it.get("media_type") else None) for it in items]
    return {"dataset_id": str(ds.id), "purpose": ds.purpose, **analysis.distribution(rows, columns)}  # type: ignore[arg-type]
