from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from dam.dataset.models import Dataset
from dam.dataset.schemas import BadcaseLeakage, DatasetRead, GroupRead, GroupRequest, Leakage
from dam.dataset.service import DatasetService
from dam.document.schemas import StatisticsQuery
from mlife_shared.app import SessionDep, StoreDep
from mlife_shared.auth import Engineer, Viewer

router = APIRouter(prefix="/datasets", tags=["datasets"])


async def dataset_service(session: SessionDep, store: StoreDep) -> DatasetService:
    return DatasetService(session, store)


DatasetServiceDep = Annotated[DatasetService, Depends(dataset_service)]


def to_read(d: Dataset, leakage: BadcaseLeakage | None = None) -> DatasetRead:
    return DatasetRead(id=d.id, group_id=d.group_id, name=d.name, purpose=d.purpose, version=d.version,
                       item_count=d.item_count, manifest_key=d.manifest_key, is_badcase_test_set=d.is_badcase_test_set,
                       function=d.function, modality=d.modality, spec=d.spec, created_by=d.created_by,
                       created_at=d.created_at, leakage=leakage)


@router.post("", status_code=201)
async def group_items(body: GroupRequest, svc: DatasetServiceDep, identity: Engineer) -> GroupRead:
    """Group items: freeze train/test dataset versions (manifest in the store, `dataset.grouped` for each); `leakage`
    counts the train items that are also in the function's current badcase test set."""
    group_id, datasets, dropped, excluded = await svc.group(body, identity.username)
    by = {d.purpose: d for d in datasets}
    overlap = await svc.leakage(by["train"].id, by["test"].id) if {"train", "test"} <= set(by) else None
    leak = await svc.badcase_leakage(by["train"]) if "train" in by else None
    if leak is not None:
        leak.excluded = excluded
    modalities = {d.modality for d in datasets}
    return GroupRead(group_id=group_id, datasets=[to_read(d, leak if d.purpose == "train" else None) for d in datasets],
                     leakage=leak, split_overlap=overlap, duplicates_dropped=dropped,
                     modality="mixed" if len(modalities) > 1 else datasets[0].modality or "mixed")


@router.get("")
async def list_datasets(svc: DatasetServiceDep, _: Viewer, name: str | None = None,
                        function: Annotated[str | None, Query(max_length=100)] = None,
                        is_badcase_test_set: bool | None = None,
                        limit: Annotated[int, Query(ge=1, le=500)] = 100,
                        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0) -> list[DatasetRead]:
    """Dataset versions, newest first (the first badcase test set of a function is its current one)."""
    return [to_read(d) for d in await svc.find(name=name, function=function, is_badcase_test_set=is_badcase_test_set,
                                               limit=limit, offset=offset)]


@router.get("/leakage")
async def leakage(svc: DatasetServiceDep, _: Viewer, train: uuid.UUID, test: uuid.UUID) -> Leakage:
    """Content (by MD5) present in both a train and a test dataset."""
    return await svc.leakage(train, test)


@router.get("/{dataset_id}")
async def get_dataset(dataset_id: uuid.UUID, svc: DatasetServiceDep, _: Viewer) -> DatasetRead:
    """One dataset version; a train dataset's `leakage`: its items in the current badcase test set of its function."""
    ds = await svc.get(dataset_id)
    return to_read(ds, await svc.badcase_leakage(ds))


@router.get("/{dataset_id}/manifest")
async def get_manifest(dataset_id: uuid.UUID, svc: DatasetServiceDep, _: Viewer) -> StreamingResponse:
    """The immutable manifest: JSON lines of `id`, annotation, label, extra and the source document version, with
    md5, object key, path and file facts for a file, `features` for a table row."""
    ds = await svc.get(dataset_id)
    return StreamingResponse(await svc.manifest_stream(ds), media_type="application/x-ndjson")


@router.get("/{dataset_id}/stats")
async def dataset_stats(dataset_id: uuid.UUID, request: Request, svc: DatasetServiceDep, _: Viewer,
                        statistics: StatisticsQuery = None) -> dict[str, Any]:
    """Distribution of a dataset by every active statistics plugin: class, type, size, dimensions, extra columns,
    boxes, and any installed plugin's (`statistics` says which gave what)."""
    return await svc.stats(await svc.get(dataset_id), request.app.state.plugins, statistics)
