"""The standing "badcase test set" document: BAM's "add to test data" items join it as a new version,
with their ground truth as annotation. Data is named by DAM MD5s or by object keys in the shared store
(BAM's `bam/data/<md5>`); keyed objects are copied into DAM's content-addressed store. When any item
cannot be resolved the whole event fails with the reasons (retried, then dead-lettered), and nothing
is copied or written."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dam.document.models import BADCASE_TEST_SET, Document
from dam.document.service import DocumentService, Version, label_of, search_text
from dam.file.repository import FileRepository
from dam.file.service import FileService
from dam.testset.exceptions import UnresolvableTestData
from mlife_shared.events import Envelope
from mlife_shared.events.contracts import BadcaseTestDataRequested
from mlife_shared.messaging.outbox import caused_by
from mlife_shared.objectstore import InvalidKey, ObjectStore, ScopedStore, validate_key

HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
COLUMNS = ["badcase_id", "function", "request_id"]


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


class TestSetService:
    def __init__(self, session: AsyncSession, raw_store: ObjectStore, store: ScopedStore, *, max_bytes: int) -> None:
        self.session = session
        self.raw_store = raw_store
        self.files = FileService(session, store)
        self.file_repo = FileRepository(session)
        self.docs = DocumentService(session)
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

    async def append(self, event: Envelope[BadcaseTestDataRequested]) -> Version | None:
        data = event.data
        resolved: list[tuple[Any, Resolved]] = []
        failures = []
        for item in data.items:
            problems: list[str] = []
            r = await self._resolve(item.data_refs, problems)
            if not r.md5s and not r.keys:
                failures.append(f"badcase {item.badcase_id}: " + "; ".join(problems or ["no data refs"]))
            resolved.append((item, r))
        if failures:
            raise UnresolvableTestData(f"{len(failures)} of {len(data.items)} items cannot be resolved: "
                                       + " | ".join(failures[:50]))
        new_rows: list[dict[str, Any]] = []
        for item, r in resolved:
            md5s = list(r.md5s)
            for key in r.keys:
                up = await self.files.store_stream(await self.raw_store.get(key), name=None, max_bytes=self.max_bytes,
                                                   uploader="bam")
                md5s.append(up.file.md5)
            for m in dict.fromkeys(md5s):
                extra = {"badcase_id": str(item.badcase_id), "function": item.function,
                         "request_id": str(data.request_id)}
                new_rows.append(dict(md5=m, path=None, annotation=item.ground_truth, label=label_of(item.ground_truth),
                                     extra=extra, search_text=search_text(None, item.ground_truth, extra)))
        doc = await self.docs.repo.by_name(BADCASE_TEST_SET, lock=True)
        if doc is None:
            doc = await self.docs.repo.add(Document(name=BADCASE_TEST_SET, kind=BADCASE_TEST_SET, columns=COLUMNS,
                                                    current_version=0, created_by="bam",
                                                    description="Badcases added to test data from BAM"))
        replaced = {row["extra"]["badcase_id"] for row in new_rows}
        rows = [r for r in await self.docs.current_rows(doc) if r["extra"].get("badcase_id") not in replaced]
        return await self.docs.write_version(doc, rows + new_rows, user="bam", correlation=caused_by(event),
                                             message=f"{len(data.items)} badcases added (request {data.request_id})")
