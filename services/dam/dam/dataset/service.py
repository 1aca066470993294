"""Group items: the rows of documents (filtered), each item once (a file by its MD5, a table row by the
hash of its features and label), split by ratios (stratified by class, fixed seed) into immutable
train/test dataset versions with a manifest in the object store; and leakage: train items that are also
in their function's current badcase test set."""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dam.dataset.exceptions import DatasetNotFound, InvalidGrouping
from dam.dataset.models import Dataset, Modality, Purpose
from dam.dataset.repository import DatasetRepository
from dam.dataset.schemas import BadcaseLeakage, GroupRequest, Leakage, LeakedInto
from dam.document import analysis
from dam.document.models import BADCASE_TEST_SET, DocumentRow
from dam.document.service import DocumentService, Version, filter_columns, require_storable
from dam.document.table import item_id
from dam.file.models import File
from dam.file.service import file_key
from mlife_shared.events.contracts import DatasetGrouped
from mlife_shared.messaging import outbox
from mlife_shared.objectstore import ScopedStore
from mlife_shared.objectstore.base import iterate, read_all
from mlife_shared.plugins.registry import Plugins
from mlife_shared.plugins.seams.statistics import FileInfo, Row, Sample

EXAMPLES = 10


def media_facts(f: File) -> dict[str, Any]:
    """An audio/video file's facts for its manifest line (and so for the dataset's statistics)."""
    return {"duration": f.duration, "sample_rate": f.sample_rate, "channels": f.channels, "fps": f.fps,
            "frame_count": f.frame_count}


def manifest_key(dataset_id: uuid.UUID) -> str:
    return f"datasets/{dataset_id}/manifest.jsonl"


def split(items: list[dict[str, Any]], ratios: dict[Purpose, float], *, stratify: bool,
          seed: int) -> dict[Purpose, list[dict[str, Any]]]:
    """Deterministic: items sorted by identity (MD5 or row hash), shuffled with `seed`, cut by the ratios
    (per class if stratified)."""
    rnd = random.Random(seed)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for it in sorted(items, key=lambda x: x["id"]):
        groups[(it["label"] or "(none)") if stratify else ""].append(it)
    purposes = sorted(ratios)
    out: dict[Purpose, list[dict[str, Any]]] = {p: [] for p in purposes}
    for label in sorted(groups):
        group = groups[label]
        rnd.shuffle(group)
        start = 0
        for i, p in enumerate(purposes):
            end = len(group) if i == len(purposes) - 1 else start + round(len(group) * ratios[p])
            out[p].extend(group[start:end])
            start = end
    return out


def modality_of(items: list[dict[str, Any]]) -> Modality:
    kinds: set[Modality] = {"file" if it.get("md5") else "table" for it in items}
    return kinds.pop() if len(kinds) == 1 else "mixed"


class DatasetService:
    def __init__(self, session: AsyncSession, store: ScopedStore) -> None:
        self.session = session
        self.store = store
        self.repo = DatasetRepository(session)
        self.docs = DocumentService(session)

    async def get(self, dataset_id: uuid.UUID) -> Dataset:
        ds = await self.repo.get(Dataset, dataset_id)
        if ds is None:
            raise DatasetNotFound(f"no dataset {dataset_id}")
        return ds

    def item(self, r: DocumentRow, f: File | None, v: Version, key: str) -> dict[str, Any]:
        """A manifest line: a file with its object key and facts, or a table row with its features."""
        common = {"id": key, "annotation": r.annotation, "label": r.label, "extra": r.extra,
                  "document_id": str(v.document.id), "document_version": v.version.version}
        if r.features is not None:
            common["features"] = r.features
        if r.md5 is None:
            return common
        return {**common, "md5": r.md5, "key": self.store.full_key(file_key(r.md5)), "path": r.path,
                "media_type": f.media_type if f else None, "content_type": f.content_type if f else None,
                "size": f.size if f else None, "width": f.width if f else None, "height": f.height if f else None,
                **(media_facts(f) if f is not None and f.media_type in ("audio", "video") else {})}

    def function_of(self, req: GroupRequest, versions: list[Version]) -> tuple[bool, str | None]:
        """(is a badcase test set, its function): a grouping of badcase test set documents only is one, and
        takes their function; any other grouping takes the requested one."""
        is_badcase = {v.document.kind for v in versions} == {BADCASE_TEST_SET}
        if not is_badcase:
            return False, req.function
        functions = sorted({v.document.function for v in versions if v.document.function})
        if len(functions) > 1:
            raise InvalidGrouping(f"the badcase test sets of {', '.join(functions)} cannot make one badcase test set: "
                                  "group one function at a time")
        if functions and req.function and req.function != functions[0]:
            raise InvalidGrouping(f"the document is the badcase test set of {functions[0]!r}, not {req.function!r}")
        return True, req.function or (functions[0] if functions else None)

    async def select(self, req: GroupRequest) -> tuple[list[Version], dict[str, dict[str, Any]], int, int]:
        """(document versions, items by identity, rows dropped as duplicates, items left out as leaked)."""
        items: dict[str, dict[str, Any]] = {}
        versions = []
        dropped = excluded = 0
        for ref in req.documents:
            v = await self.docs.version(ref.id, ref.version)
            versions.append(v)
            self.docs.check_filter(filter_columns(v.document), req.filter)
            rows, _ = await self.docs.rows([v.version], req.filter)
            for r, f in rows:
                key = item_id(r.md5, r.features, r.annotation)
                if key is None or key in items:
                    dropped += 1
                    continue
                items[key] = self.item(r, f, v, key)
        if req.exclude_badcase_test_set:
            current = await self.repo.current_badcase_test_sets(req.function)
            leaked = await self.repo.item_ids([d.id for d in current]) if current else set()
            excluded = len(leaked & set(items))
            items = {k: it for k, it in items.items() if k not in leaked}
        if not items:
            raise InvalidGrouping("the documents and filter select no rows"
                                  + (f" ({excluded} left out: in the badcase test set)" if excluded else ""))
        return versions, items, dropped, excluded

    async def group(self, req: GroupRequest, user: str | None, *,
                    correlation: dict[str, Any] | None = None) -> tuple[uuid.UUID, list[Dataset], int, int]:
        require_storable("the name", req.name)
        require_storable("the function", req.function)
        versions, items, dropped, excluded = await self.select(req)
        is_badcase, function = self.function_of(req, versions)
        parts = split(list(items.values()), dict(req.split), stratify=req.stratify, seed=req.seed)
        for purpose, part in parts.items():
            if not part:
                raise InvalidGrouping(f"the split leaves {purpose} empty ({len(items)} items); "
                                      "select more rows or change the ratios")
        group_id = uuid.uuid4()
        out = []
        spec = req.model_dump(mode="json")
        for purpose, part in parts.items():
            ds_id = uuid.uuid4()
            key = manifest_key(ds_id)
            body = "".join(json.dumps(it, ensure_ascii=False, sort_keys=True) + "\n" for it in part).encode()
            await self.store.put(key, iterate(body), content_type="application/x-ndjson")
            modality = modality_of(part)
            ds = await self.repo.add_with_items(Dataset(
                id=ds_id, group_id=group_id, name=req.name, purpose=purpose,
                version=await self.repo.next_version(req.name, purpose), spec=spec,
                manifest_key=self.store.full_key(key), item_count=len(part), is_badcase_test_set=is_badcase,
                function=function, modality=modality, created_by=user), [(it["id"], it["label"]) for it in part])
            await outbox.add(self.session, DatasetGrouped(
                dataset_id=ds.id, version=ds.version, purpose=purpose, manifest_key=ds.manifest_key,
                item_count=ds.item_count, is_badcase_test_set=is_badcase, name=ds.name, group_id=group_id,
                function=function, modality=modality), **(correlation or {}))
            out.append(ds)
        return group_id, out, dropped, excluded

    async def leakage(self, train: uuid.UUID, test: uuid.UUID) -> Leakage:
        await self.get(train)
        await self.get(test)
        shared = await self.repo.shared(train, test)
        return Leakage(train=train, test=test, shared_count=len(shared), shared=shared[:1000])

    async def badcase_leakage(self, train: Dataset) -> BadcaseLeakage | None:
        """A train dataset's items that are in its function's current badcase test set (every function's when
        it has none); None for a badcase test set itself or a test dataset."""
        if train.purpose != "train" or train.is_badcase_test_set:
            return None
        checked, examples, seen = [], [], set()
        for bts in await self.repo.current_badcase_test_sets(train.function):
            shared = await self.repo.shared(train.id, bts.id)
            checked.append(LeakedInto(dataset_id=bts.id, name=bts.name, version=bts.version, function=bts.function,
                                      count=len(shared)))
            examples += [m for m in shared if m not in seen]
            seen.update(shared)
        warning = None
        if seen:
            where = ", ".join(f"{c.name} v{c.version} ({c.count})" for c in checked if c.count)
            warning = (f"{len(seen)} of the {train.item_count} train items are also in the badcase test set ({where}): "
                       "a model trained on them is tested on what it learnt, so the badcase test set overstates it. "
                       "Group again with exclude_badcase_test_set=true to leave them out.")
        return BadcaseLeakage(function=train.function, count=len(seen), examples=examples[:EXAMPLES],
                              badcase_test_sets=checked, warning=warning)

    async def find(self, *, name: str | None, function: str | None, is_badcase_test_set: bool | None, limit: int,
                   offset: int) -> list[Dataset]:
        require_storable("the name", name, function)
        return await self.repo.find(name=name, function=function, is_badcase_test_set=is_badcase_test_set,
                                    limit=limit, offset=offset)

    async def manifest_stream(self, ds: Dataset) -> AsyncIterator[bytes]:
        return await self.store.store.get(ds.manifest_key)

    async def manifest(self, ds: Dataset) -> list[dict[str, Any]]:
        raw = await read_all(await self.manifest_stream(ds))
        return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]

    async def stats(self, ds: Dataset, plugins: Plugins, only: Sequence[str] | None = None) -> dict[str, Any]:
        """The distribution of a dataset's manifest by the statistics plugins, as a document version's (its lines
        read as rows and files)."""
        items = await self.manifest(ds)
        columns = sorted({k for it in items for k in (it.get("extra") or {})})
        features = list(dict.fromkeys(k for it in items for k in (it.get("features") or {})))
        rows = [Row(md5=it.get("md5"), path=it.get("path"), label=it["label"], annotation=it["annotation"],
                    extra=it.get("extra") or {}, features=it.get("features"),
                    file=FileInfo(md5=it["md5"], media_type=it["media_type"], size=it["size"] or 0, width=it["width"],
                                  height=it["height"], duration=it.get("duration"), sample_rate=it.get("sample_rate"),
                                  fps=it.get("fps")) if it.get("media_type") else None) for it in items]
        sample = Sample(rows=rows, columns=columns, features=features, source="dataset")
        return {"dataset_id": str(ds.id), "purpose": ds.purpose,
                **analysis.analyse(plugins, sample, only, reserved=("dataset_id", "purpose"))}
