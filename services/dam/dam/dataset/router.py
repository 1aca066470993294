from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from dam.dataset.models import Dataset
from dam.dataset.schemas import BadcaseLeakage, DatasetRead, GroupRead, GroupRequest, Leakage
from dam.dataset.service import DatasetService
from dam.document import analysis
from dam.document.service import require_storable
from mlife_shared.app import SessionDep, StoreDep
from mlife_shared.auth import Engineer, Viewer

router = APIRouter(prefix="/datasets", tags=["datasets"])


def to_read(d: Dataset, leakage: BadcaseLeakage | None = None) -> DatasetRead:
    return DatasetRead(id=d.id, group_id=d.group_id, name=d.name, purpose=d.purpose, version=d.version,  # type: ignore[arg-type]
                       item_count=d.item_count, manifest_key=d.manifest_key, is_badcase_test_set=d.is_badcase_test_set,
                       function=d.function, modality=d.modality, spec=d.spec, created_by=d.created_by,  # type: ignore[arg-type]
                       created_at=d.created_at, leakage=leakage)


@router.post("", status_code=201)
async def group_items(body: GroupRequest, session: SessionDep, store: StoreDep, identity: Engineer) -> GroupRead:
    """Group items: freeze train/test dataset versions (manifest in the store, `dataset.grouped` for each); `leakage`
    counts the train items that are also in the function's current badcase test set."""
    svc = DatasetService(session, store)
    group_id, datasets, dropped, excluded = await svc.group(body, identity.username)
    by = {d.purpose: d for d in datasets}
    overlap = await svc.leakage(by["train"].id, by["test"].id) if {"train", "test"} <= set(by) else None
    leak = await svc.badcase_leakage(by["train"]) if "train" in by else None
    if leak is not None:
        leak.excluded = excluded
    return GroupRead(group_id=group_id, datasets=[to_read(d, leak if d.purpose == "train" else None) for d in datasets],
                     leakage=leak, split_overlap=overlap, duplicates_dropped=dropped,
                     modality="mixed" if len({d.modality for d in datasets}) > 1 else datasets[0].modality)  # type: ignore[arg-type]


@router.get("")
async def list_datasets(session: SessionDep, store: StoreDep, _: Viewer, name: str | None = None,
                        function: Annotated[str | None, Query(max_length=100)] = None,
                        is_badcase_test_set: bool | None = None,
                        limit: Annotated[int, Query(ge=1, le=500)] = 100,
                        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0) -> list[DatasetRead]:
    """Dataset versions, newest first (the first badcase test set of a function is its current one)."""
    require_storable("the name", name, function)
    repo = DatasetService(session, store).repo
    return [to_read(d) for d in await repo.list(name=name, function=function, is_badcase_test_set=is_badcase_test_set,
                                                limit=limit, offset=offset)]


@router.get("/leakage")
async def leakage(session: SessionDep, store: StoreDep, _: Viewer, train: uuid.UUID, test: uuid.UUID) -> Leakage:
    """Content (by MD5) present in both a train and a test dataset."""
    return await DatasetService(session, store).leakage(train, test)


@router.get("/{dataset_id}")
async def get_dataset(dataset_id: uuid.UUID, session: SessionDep, store: StoreDep, _: Viewer) -> DatasetRead:
    """One dataset version; a train dataset's `leakage`: its items in the current badcase test set of its function."""
    svc = DatasetService(session, store)
    ds = await svc.get(dataset_id)
    return to_read(ds, await svc.badcase_leakage(ds))


@router.get("/{dataset_id}/manifest")
async def get_manifest(dataset_id: uuid.UUID, session: SessionDep, store: StoreDep, _: Viewer) -> StreamingResponse:
    """The immutable manifest: JSON lines of `id`, annotation, label, extra and the source document version, with
    md5, object key, path and file facts for a file, `features` for a table row."""
    ds = await DatasetService(session, store).get(dataset_id)
    return StreamingResponse(await store.store.get(ds.manifest_key), media_type="application/x-ndjson")


@router.get("/{dataset_id}/stats")
async def dataset_stats(dataset_id: uuid.UUID, session: SessionDep, store: StoreDep, _: Viewer) -> dict[str, Any]:
    """Distribution of a dataset: class, type, size, dimensions and extra columns."""
    svc = DatasetService(session, store)
    ds = await svc.get(dataset_id)
    items = await svc.manifest(ds)
    columns = sorted({k for it in items for k in (it.get("extra") or {})})
    features = list(dict.fromkeys(k for it in items for k in (it.get("features") or {})))
    rows = [(SimpleNamespace(label=it["label"], annotation=it["annotation"], extra=it.get("extra") or {},
                             features=it.get("features")),
             SimpleNamespace(md5=it["md5"], media_type=it["media_type"], size=it["size"] or 0, width=it["width"],
                             height=it["height"]) if it.get("media_type") else None) for it in items]
    return {"dataset_id": str(ds.id), "purpose": ds.purpose, **analysis.distribution(rows, columns, features)}  # type: ignore[arg-type]
