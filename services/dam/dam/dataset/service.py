"""Group items: the rows of documents (filtered), each content once, split by ratios (stratified by
class, fixed seed) into immutable train/test dataset versions with a manifest in the object store."""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dam.dataset.exceptions import DatasetNotFound, InvalidGrouping
from dam.dataset.models import Dataset
from dam.dataset.repository import DatasetRepository
from dam.dataset.schemas import GroupRequest, Leakage
from dam.document.models import BADCASE_TEST_SET
from dam.document.service import DocumentService, require_storable
from dam.file.service import file_key
from mlife_shared.events.contracts import DatasetGrouped
from mlife_shared.messaging import outbox
from mlife_shared.objectstore import ScopedStore
from mlife_shared.objectstore.base import iterate, read_all


def manifest_key(dataset_id: uuid.UUID) -> str:
    return f"datasets/{dataset_id}/manifest.jsonl"


def split(items: list[dict[str, Any]], ratios: dict[str, float], *, stratify: bool, seed: int) -> dict[str, list]:
    """Deterministic: items sorted by MD5, shuffled with `seed`, cut by the ratios (per class if stratified)."""
    rnd = random.Random(seed)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for it in sorted(items, key=lambda x: x["md5"]):
        groups[(it["label"] or "(none)") if stratify else ""].append(it)
    purposes = sorted(ratios)
    out: dict[str, list] = {p: [] for p in purposes}
    for label in sorted(groups):
        group = groups[label]
        rnd.shuffle(group)
        start = 0
        for i, p in enumerate(purposes):
            end = len(group) if i == len(purposes) - 1 else start + round(len(group) * ratios[p])
            out[p].extend(group[start:end])
            start = end
    return out


class DatasetService:
    def __init__(self, session: AsyncSession, store: ScopedStore) -> None:
        self.session = session
        self.store = store
        self.repo = DatasetRepository(session)
        self.docs = DocumentService(session)

    async def get(self, dataset_id: uuid.UUID) -> Dataset:
        ds = await self.repo.get(dataset_id)
        if ds is None:
            raise DatasetNotFound(f"no dataset {dataset_id}")
        return ds

    async def group(self, req: GroupRequest, user: str | None) -> tuple[uuid.UUID, list[Dataset], int]:
        require_storable("the name", req.name)
        items: dict[str, dict[str, Any]] = {}
        dropped = 0
        kinds = set()
        for ref in req.documents:
            v = await self.docs.version(ref.id, ref.version)
            kinds.add(v.document.kind)
            self.docs.check_filter(v.document.columns, req.filter)
            rows, _ = await self.docs.rows([v.version.id], req.filter)
            for r, f in rows:
                if r.md5 is None or r.md5 in items:
                    dropped += 1
                    continue
                items[r.md5] = {"md5": r.md5, "key": self.store.full_key(file_key(r.md5)), "path": r.path,
                                "annotation": r.annotation, "label": r.label, "extra": r.extra,
                                "media_type": f.media_type if f else None, "size": f.size if f else None,
                                "width": f.width if f else None, "height": f.height if f else None,
                                "document_id": str(v.document.id), "document_version": v.version.version}
        if not items:
            raise InvalidGrouping("the documents and filter select no rows")
        parts = split(list(items.values()), dict(req.split), stratify=req.stratify, seed=req.seed)
        for purpose, part in parts.items():
            if not part:
                raise InvalidGrouping(f"the split leaves {purpose} empty ({len(items)} items); "
                                      "select more rows or change the ratios")
        group_id = uuid.uuid4()
        is_badcase = kinds == {BADCASE_TEST_SET}
        out = []
        spec = req.model_dump(mode="json")
        for purpose, part in parts.items():
            ds_id = uuid.uuid4()
            key = manifest_key(ds_id)
            body = "".join(json.dumps(it, ensure_ascii=False, sort_keys=True) + "\n" for it in part).encode()
            await self.store.put(key, iterate(body), content_type="application/x-ndjson")
            ds = await self.repo.add(Dataset(
                id=ds_id, group_id=group_id, name=req.name, purpose=purpose,
                version=await self.repo.next_version(req.name, purpose), spec=spec,
                manifest_key=self.store.full_key(key), item_count=len(part), is_badcase_test_set=is_badcase,
                created_by=user), [(it["md5"], it["label"]) for it in part])
            await outbox.add(self.session, DatasetGrouped(
                dataset_id=ds.id, version=ds.version, purpose=purpose, manifest_key=ds.manifest_key,  # type: ignore[arg-type]
                item_count=ds.item_count, is_badcase_test_set=is_badcase, name=ds.name, group_id=group_id))
            out.append(ds)
        return group_id, out, dropped

    async def leakage(self, train: uuid.UUID, test: uuid.UUID) -> Leakage:
        await self.get(train)
        await self.get(test)
        shared = await self.repo.shared(train, test)
        return Leakage(train=train, test=test, shared_count=len(shared), shared=shared[:1000])

    async def manifest(self, ds: Dataset) -> list[dict[str, Any]]:
        raw = await read_all(await self.store.store.get(ds.manifest_key))
        return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
