"""The badcase test set, one per function: BAM's "add to test data" items join the standing document
`badcase test set: <function>` of their own function as a new version (one per function an event
touches), with their ground truth as annotation, and DAM freezes that version at once as the function's
test dataset (`dataset.grouped`, `is_badcase_test_set`). An item's data is a file named by a DAM MD5 or
an object key in the shared store (BAM's `bam/data/<md5>`, MSM's `msm/feedback/<id>/input.npy`; keyed
objects are copied into DAM's content-addressed store), or, for a tabular badcase, its feature row. When
any item cannot be resolved the whole event fails with the reasons (retried, then dead-lettered), and
nothing is copied or written."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dam.dataset.schemas import DocumentRef, GroupRequest
from dam.dataset.service import DatasetService
from dam.document import parser
from dam.document.models import BADCASE_TEST_SET, Document, badcase_test_set_name
from dam.document.service import DocumentService, Version, label_of, search_text, unstorable
from dam.document.table import nested
from dam.file.repository import FileRepository
from dam.file.service import FileService
from dam.testset.exceptions import UnresolvableTestData
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import BadcaseTestDataRequested, TestDataItem
from mlife_shared.messaging.outbox import caused_by
from mlife_shared.objectstore import InvalidKey, ObjectStore, ScopedStore, validate_key

HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
COLUMNS = ["badcase_id", "function", "request_id"]
UNASSIGNED = "unassigned"


@dataclass
class Resolved:
    md5s: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


def classify(ref: str) -> tuple[str, str]:
    kind, sep, value = ref.partition(":")
    if sep and kind in ("md5", "key", "url"):
        return kind, value
    if HEX32.match(ref):
        return "md5", ref
    if "://" in ref:
        return "url", ref
    return "key", ref


def function_of(item: TestDataItem) -> str:
    return item.function.strip() or UNASSIGNED


def item_problem(item: TestDataItem) -> str | None:
    """Why an item's function or features cannot be stored, or None."""
    fn = function_of(item)
    if len(fn) > 100 or unstorable(fn) or any(ord(c) < 32 for c in fn):
        return f"the function {fn[:100]!r} is not a usable name (up to 100 printable characters)"
    if item.features is not None:
        if not item.features:
            return "its features are empty"
        bad = [k for k in item.features if not parser.COLUMN_RE.match(k)]
        if bad:
            return f"feature names {bad[:5]} are not column names (letters, digits, '_', '.', '-')"
        deep = nested(item.features)
        if deep is not None:
            return f"feature {deep!r} holds nested JSON; features are plain numbers or text"
    why = unstorable(item.features) or unstorable(item.ground_truth)
    return f"its features or ground truth {why}" if why else None


class TestSetService:
    def __init__(self, session: AsyncSession, raw_store: ObjectStore, store: ScopedStore, *, max_bytes: int) -> None:
        self.session = session
        self.raw_store = raw_store
        self.files = FileService(session, store)
        self.file_repo = FileRepository(session)
        self.docs = DocumentService(session)
        self.datasets = DatasetService(session, store)
        self.max_bytes = max_bytes

    async def _resolve(self, refs: list[str], problems: list[str]) -> Resolved:
        out = Resolved()
        pending_md5: list[str] = []
        for ref in refs:
            kind, value = classify(ref)
            if kind == "md5":
                pending_md5.append(value.lower())
            elif kind == "key":
                try:
                    validate_key(value)
                except InvalidKey as exc:
                    problems.append(f"{ref!r}: {exc.message}")
                    continue
                if await self.raw_store.stat(value) is None:
                    problems.append(f"{ref!r}: no object under this key")
                    continue
                out.keys.append(value)
            else:
                problems.append(f"{ref!r}: DAM does not fetch URLs; upload the data and refer to it by MD5")
        existing = await self.file_repo.existing(pending_md5) if pending_md5 else set()
        for m in pending_md5:
            if not HEX32.match(m):
                problems.append(f"{m!r}: not an MD5")
            elif m in existing:
                out.md5s.append(m)
            elif not out.keys:  # an MD5 BAM also sent as a key is resolved by copying the key
                problems.append(f"md5:{m}: no DAM file has this MD5")
        return out

    async def _check(self, data: BadcaseTestDataRequested) -> list[tuple[TestDataItem, Resolved]]:
        """Every item resolved, or UnresolvableTestData with every reason. An item with features is a table row:
        its features are its data (its data refs are not copied)."""
        resolved, failures = [], []
        for item in data.items:
            problem = item_problem(item)
            problems: list[str] = [problem] if problem else []
            r = Resolved() if item.features is not None else await self._resolve(item.data_refs, problems)
            if problem or (item.features is None and not r.md5s and not r.keys):
                failures.append(f"badcase {item.badcase_id}: " + "; ".join(problems or ["no data refs"]))
            resolved.append((item, r))
        if failures:
            raise UnresolvableTestData(f"{len(failures)} of {len(data.items)} items cannot be resolved: "
                                       + " | ".join(failures[:50]))
        return resolved

    async def _rows(self, item: TestDataItem, r: Resolved, request_id: str) -> list[dict[str, Any]]:
        extra = {"badcase_id": str(item.badcase_id), "function": function_of(item), "request_id": request_id}
        row = dict(path=None, annotation=item.ground_truth, label=label_of(item.ground_truth), extra=extra)
        if item.features is not None:
            return [dict(row, md5=None, features=dict(item.features),
                         search_text=search_text(None, item.ground_truth, {**extra, **item.features}))]
        md5s = list(r.md5s)
        for key in r.keys:
            up = await self.files.store_stream(await self.raw_store.get(key), name=None, max_bytes=self.max_bytes,
                                               uploader="bam")
            md5s.append(up.file.md5)
        return [dict(row, md5=m, features=None, search_text=search_text(None, item.ground_truth, extra))
                for m in dict.fromkeys(md5s)]

    async def standing_document(self, function: str) -> Document:
        name = badcase_test_set_name(function)
        doc = await self.docs.repo.by_name(name, lock=True)
        if doc is None:
            doc = await self.docs.repo.add(Document(
                name=name, kind=BADCASE_TEST_SET, function=function, columns=COLUMNS, feature_columns=[],
                current_version=0, created_by="bam", description=f"Badcases of {function} added to test data from BAM"))
        return doc

    async def append(self, event: Envelope[BadcaseTestDataRequested]) -> list[Version]:
        """One new version per function the event's items belong to, each frozen as that function's test set."""
        data = event.data
        by_function: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item, r in await self._check(data):
            by_function[function_of(item)] += await self._rows(item, r, str(data.request_id))
        out = []
        for function in sorted(by_function):
            new_rows = by_function[function]
            doc = await self.standing_document(function)
            replaced = {row["extra"]["badcase_id"] for row in new_rows}
            rows = [r for r in await self.docs.current_rows(doc) if r["extra"].get("badcase_id") not in replaced]
            rows += new_rows
            doc.feature_columns = list(dict.fromkeys(k for r in rows for k in (r["features"] or {})))
            added = len(replaced)
            v = await self.docs.write_version(doc, rows, user="bam", correlation=caused_by(event),
                                              message=f"{added} badcases added (request {data.request_id})")
            await self.datasets.group(GroupRequest(
                name=doc.name, documents=[DocumentRef(id=doc.id, version=v.version.version)], split={"test": 1.0},
                stratify=False, function=function), "bam", correlation=caused_by(event))
            out.append(v)
        return out
