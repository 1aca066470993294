"""The badcase test set, one per function: BAM's "add to test data" items join the standing document
`badcase test set: <function>` of their own function as a new version (one per function an event
touches) that appends their rows — the rows already there are not written again — with their ground truth
as annotation, and DAM freezes the function's latest version as its test dataset (`dataset.grouped`,
`is_badcase_test_set`) in the same transaction: once a unit of work, so a consumer's batch of requests (a backlog)
makes one version each and one freeze a function (freezing writes every item of the set, each version's would
make a backlog quadratic). An item's data is a file named by a DAM MD5 or an object key in the shared store
(BAM's `bam/data/<md5>`, MSM's `msm/feedback/<id>/input.npy`), or, for a tabular badcase, its feature row.
A keyed object is copied into DAM's content-addressed store: under the MD5 its producer sent once a stat
shows it exists (never read whole to hash it again), else hashed as it is copied. When any item cannot be
resolved the whole event fails with the reasons (retried, then dead-lettered), and nothing is copied or
written; an event whose request is in already appends nothing."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dam.dataset.schemas import DocumentRef, GroupRequest
from dam.dataset.service import DatasetService
from dam.document import parser
from dam.document.models import BADCASE_TEST_SET, Document, badcase_test_set_name
from dam.document.repository import DocumentRepository
from dam.document.service import DocumentService, Version, label_of, search_text, unstorable
from dam.document.table import nested
from dam.file.models import File
from dam.file.repository import FileRepository
from dam.file.service import MEDIA_MAX_BYTES, FileService, file_key
from dam.testset.conversion import PROVENANCE, ConversionService, convert_async, has_segment, segment_of
from dam.testset.exceptions import UnconvertibleTestData, UnresolvableTestData
from dam.testset.schemas import ConversionSettings
from mlife_shared.db import defer
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import BadcaseTestDataRequested, TestDataItem
from mlife_shared.messaging.outbox import caused_by
from mlife_shared.objectstore import InvalidKey, ObjectInfo, ObjectStore, ScopedStore, validate_key
from mlife_shared.objectstore.base import iterate, read_all

HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
COLUMNS = ["badcase_id", "function", "request_id"]
UNASSIGNED = "unassigned"
FREEZE = "freeze the badcase test set"  # the key of a function's deferred freeze


@dataclass
class Resolved:
    md5s: list[str] = field(default_factory=list)  # DAM's own files
    keys: list[str] = field(default_factory=list)  # objects whose MD5 DAM computes as it copies them
    adopted: list[tuple[str, str, int]] = field(default_factory=list)  # (key, MD5 sent, size): objects taken as sent


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
    def __init__(self, session: AsyncSession, raw_store: ObjectStore, store: ScopedStore, *, max_bytes: int,
                 media_max_bytes: int = MEDIA_MAX_BYTES) -> None:
        self.session = session
        self.raw_store = raw_store
        self.store = store
        self.files = FileService(session, store, media_max_bytes=media_max_bytes)
        self.conversions = ConversionService(session)
        self._settings: dict[str, ConversionSettings] = {}
        self.media_max_bytes = media_max_bytes
        self.file_repo = FileRepository(session)
        self.doc_repo = DocumentRepository(session)
        self.docs = DocumentService(session)
        self.datasets = DatasetService(session, store)
        self.max_bytes = max_bytes

    async def _object(self, ref: str, problems: list[str]) -> ObjectInfo | None:
        """The object a `key:` reference names, or None with the reason in `problems`."""
        key = classify(ref)[1]
        try:
            validate_key(key)
        except InvalidKey as exc:
            problems.append(f"{ref!r}: {exc.message}")
            return None
        info = await self.raw_store.stat(key)
        if info is None:
            problems.append(f"{ref!r}: no object under this key")
        elif info.size > self.max_bytes:
            problems.append(f"{ref!r}: the object is larger than the limit of {self.max_bytes} bytes")
            return None
        return info

    async def _resolve_sent(self, item: TestDataItem, md5: str, problems: list[str]) -> Resolved:
        """An item whose producer sent the MD5: DAM's own file of that MD5, else the object its reference names
        (trusted once it exists: it is not read to hash it again)."""
        if await self.file_repo.existing([md5]):
            return Resolved(md5s=[md5])
        keys = [ref for ref in item.data_refs if classify(ref)[0] == "key"]
        for ref in keys:
            info = await self._object(ref, problems)
            if info is not None:
                return Resolved(adopted=[(info.key, md5, info.size)])
        if not keys:
            problems.append(f"md5:{md5}: no DAM file has this MD5 and no object key names it")
        return Resolved()

    async def _resolve(self, refs: list[str], problems: list[str]) -> Resolved:
        """An item without an MD5 (an older producer, or an object the producer never read): every reference."""
        out = Resolved()
        pending_md5: list[str] = []
        for ref in refs:
            kind, value = classify(ref)
            if kind == "md5":
                pending_md5.append(value.lower())
            elif kind == "key":
                if await self._object(ref, problems) is not None:
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

    async def _check(self, items: list[TestDataItem]) -> list[tuple[TestDataItem, Resolved]]:
        """Every item resolved, or UnresolvableTestData with every reason. An item with features is a table row:
        its features are its data (its data refs are not copied)."""
        resolved, failures = [], []
        for item in items:
            problem = item_problem(item)
            problems: list[str] = [problem] if problem else []
            if item.features is not None:
                r = Resolved()
            elif item.md5 is not None:
                r = await self._resolve_sent(item, item.md5, problems)
            else:
                r = await self._resolve(item.data_refs, problems)
            if problem or (item.features is None and not (r.md5s or r.keys or r.adopted)):
                failures.append(f"badcase {item.badcase_id}: " + "; ".join(problems or ["no data refs"]))
            resolved.append((item, r))
        if failures:
            raise UnresolvableTestData(f"{len(failures)} of {len(items)} items cannot be resolved: "
                                       + " | ".join(failures[:50]))
        return resolved

    async def _rows(self, item: TestDataItem, r: Resolved, request_id: str) -> list[dict[str, Any]]:
        extra = {"badcase_id": str(item.badcase_id), "function": function_of(item), "request_id": request_id}
        row = dict(path=None, annotation=item.ground_truth, label=label_of(item.ground_truth), extra=extra)
        if item.features is not None:
            return [dict(row, md5=None, features=dict(item.features),
                         search_text=search_text(None, item.ground_truth, {**extra, **item.features}))]
        md5s = list(r.md5s)
        for key, md5, size in r.adopted:
            md5s.append((await self.files.adopt(key, md5, size, uploader="bam")).md5)
        for key in r.keys:
            up = await self.files.store_stream(await self.raw_store.get(key), name=None, max_bytes=self.max_bytes,
                                               uploader="bam")
            md5s.append(up.file.md5)
        out: dict[str, dict[str, Any]] = {}  # one row per file: two equal frames are one file, the first kept
        for m in dict.fromkeys(md5s):
            for md5, provenance in await self._converted(item, m):
                more = {**extra, **provenance}
                out.setdefault(md5, dict(row, md5=md5, extra=more, features=None,
                                         search_text=search_text(None, item.ground_truth, more)))
        return list(out.values())

    async def _converted(self, item: TestDataItem, md5: str) -> list[tuple[str, dict[str, Any]]]:
        """The files an item's file becomes in the test set, with their provenance: the file itself (no
        provenance) unless it is audio/video and the item has a segment."""
        if not has_segment(item):
            return [(md5, {})]
        f = await self.file_repo.get(File, md5)
        seg = segment_of(item, f) if f is not None else None
        if f is None or seg is None:
            return [(md5, {})]
        if f.size > self.media_max_bytes:
            raise UnconvertibleTestData(f"badcase {item.badcase_id}: file {md5} has {f.size} bytes, more than the "
                                        f"{self.media_max_bytes} DAM decodes (MLIFE_DAM_MEDIA_MAX_BYTES)")
        function = function_of(item)
        if function not in self._settings:
            self._settings[function] = await self.conversions.settings(function)
        data = await read_all(await self.store.get(file_key(md5)))
        pieces = await convert_async(data, f, seg, self._settings[function], str(item.badcase_id))
        out = []
        for piece in pieces:
            up = await self.files.store_stream(iterate(piece.data), name=None, max_bytes=self.max_bytes, uploader="bam",
                                               record_path=False)
            out.append((up.file.md5, {"source_md5": md5, **piece.provenance}))
        return out

    async def standing_document(self, function: str) -> Document:
        """The function's badcase test set document, locked (appends to it happen one at a time)."""
        name = badcase_test_set_name(function)
        doc = await self.doc_repo.by_name(name, lock=True)
        if doc is None:
            doc = await self.doc_repo.add(Document(
                name=name, kind=BADCASE_TEST_SET, function=function, columns=COLUMNS, feature_columns=[],
                current_version=0, created_by="bam", description=f"Badcases of {function} added to test data from BAM"))
        return doc

    async def _pending(self, data: BadcaseTestDataRequested) -> dict[str, list[TestDataItem]]:
        """The event's items by function, less the functions whose test set has this request already: an event
        delivered twice (or sent again by its producer) appends once."""
        by_function: dict[str, list[TestDataItem]] = defaultdict(list)
        for item in data.items:
            by_function[function_of(item)].append(item)
        pending = {}
        for function, items in sorted(by_function.items()):
            doc = await self.doc_repo.by_name(badcase_test_set_name(function), lock=True)
            if doc is None or not await self.doc_repo.has_row_with(doc.id, "request_id", str(data.request_id)):
                pending[function] = items
        return pending

    async def append(self, event: Envelope[BadcaseTestDataRequested]) -> list[Version]:
        """One new version per function the event's items belong to, the function's latest frozen as its test set
        when the unit of work ends. A version appends the new rows (and retires the rows of badcases added again);
        it rewrites nothing."""
        data = event.data
        pending = await self._pending(data)
        resolved = await self._check([item for items in pending.values() for item in items])
        by_function: dict[str, list[dict[str, Any]]] = defaultdict(list)
        try:
            for item, r in resolved:
                by_function[function_of(item)] += await self._rows(item, r, str(data.request_id))
        except UnconvertibleTestData:
            await self.files.discard_created()  # nothing partial: the rows roll back, the new objects go
            raise
        out = []
        for function in sorted(by_function):
            new_rows = by_function[function]
            doc = await self.standing_document(function)
            replaced = {row["extra"]["badcase_id"] for row in new_rows}
            if any("source_md5" in row["extra"] for row in new_rows):
                doc.columns = list(dict.fromkeys([*doc.columns, *PROVENANCE]))
            doc.feature_columns = list(dict.fromkeys([*(doc.feature_columns or []),
                                                      *(k for r in new_rows for k in (r["features"] or {}))]))
            v = await self.docs.append_version(doc, new_rows, replacing=("badcase_id", replaced), user="bam",
                                               correlation=caused_by(event),
                                               message=f"{len(replaced)} badcases added (request {data.request_id})")
            defer(self.session, (FREEZE, function), partial(self._freeze, doc, v.version.version, function,
                                                             caused_by(event)))
            out.append(v)
        return out

    async def _freeze(self, doc: Document, version: int, function: str, correlation: dict[str, Any]) -> None:
        await self.datasets.group(GroupRequest(
            name=doc.name, documents=[DocumentRef(id=doc.id, version=version)], split={"test": 1.0},
            stratify=False, function=function), "bam", correlation=correlation)
