"""Running the cleaner plugins: over new files on upload (their findings kept on the file row) and over a document
version's rows (kept per version, replaced by the next run). Cleaners run in a thread (they decode images); one
that raises is a finding of its own, never a failed upload."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from dam.document.models import DocumentRow
from dam.document.service import DocumentService, filter_columns, label_of, require_storable
from dam.file.models import File
from dam.file.service import file_key
from dam.labelling.repository import LabellingRepository
from dam.quality.exceptions import InvalidQualityRun
from dam.quality.models import QualityFinding, QualityRun
from dam.quality.repository import QualityRepository
from dam.quality.schemas import QualityRunCreate
from mlife_shared.objectstore import ScopedStore
from mlife_shared.objectstore.base import read_all
from mlife_shared.plugins.registry import Plugins
from mlife_shared.plugins.seams.cleaners import Cleaner, Context, Finding, Item, Scope
from mlife_shared.repository import Page

log = structlog.get_logger(__name__)
IMAGE_MAX_BYTES = 32 * 1024 * 1024  # an image larger than this is checked by its facts only
RUN_IMAGE_BUDGET = 512 * 1024 * 1024  # image bytes one run holds at most (the rest: facts only)
MAX_ROWS = 50_000
INLINE_MAX_BYTES = 256 * 1024  # one upload this small is checked on the event loop, not in a thread
INLINE_MAX_PIXELS = 128 * 128
BUILT_IN = "dam.quality.cleaners"  # an outside plugin's cleaners always run in a thread


def row_labels(annotation: Any, label: str | None) -> tuple[str, ...]:
    """Every class a row's annotation names: itself, its `labels`, its `label`, its boxes' labels."""
    if isinstance(annotation, dict):
        found = [str(x) for x in annotation.get("labels") or [] if isinstance(x, (str, int))]
        if isinstance(annotation.get("label"), (str, int)):
            found.append(str(annotation["label"]))
        found += [str(b["label"]) for b in annotation.get("boxes") or [] if isinstance(b, dict) and b.get("label") is not None]
        return tuple(dict.fromkeys(found))
    one = label_of(annotation) if annotation is not None else label
    return (one,) if one else ()


def run_cleaners(cleaners: dict[str, Cleaner], items: Sequence[Item], context: Context) -> list[Finding]:
    out: list[Finding] = []
    for name, cleaner in cleaners.items():
        try:
            found = cleaner.check(items, context)
        except Exception as exc:  # noqa: BLE001 - an outside plugin's bug is its finding, not our failure
            log.warning("cleaner_failed", cleaner=name, error=repr(exc))
            out.append(Finding(name, "cleaner_failed", "info", f"the cleaner failed: {type(exc).__name__}: {exc}"[:500]))
            continue
        out.extend(f for f in found if isinstance(f, Finding))
    return out


def _small(item: Item) -> bool:
    """An item the cleaners check in well under a millisecond: no content, or a small image of few pixels."""
    if item.data is None:
        return True
    return (len(item.data) <= INLINE_MAX_BYTES and item.width is not None and item.height is not None
            and item.width * item.height <= INLINE_MAX_PIXELS)


class QualityService:
    def __init__(self, session: AsyncSession, store: ScopedStore, registry: Plugins) -> None:
        self.session = session
        self.store = store
        self.registry = registry
        self.repo = QualityRepository(session)

    def cleaners(self, names: list[str] | None = None) -> dict[str, Cleaner]:
        """The active cleaners, or the named ones (a 422 naming the active ones when one is not)."""
        if names is None:
            return dict(sorted(self.registry.active("cleaners").items()))
        return {n: self.registry.get("cleaners", n) for n in dict.fromkeys(names)}

    async def _content(self, f: File | None, budget: list[int], in_hand: Mapping[str, bytes]) -> bytes | None:
        if f is None or f.media_type != "image" or f.size > IMAGE_MAX_BYTES or f.size > budget[0]:
            return None
        budget[0] -= f.size
        data = in_hand.get(f.md5)
        return data if data is not None else await read_all(await self.store.get(file_key(f.md5)))

    async def _items(self, pairs: Sequence[tuple[File | None, DocumentRow | None]],
                     in_hand: Mapping[str, bytes] | None = None) -> list[Item]:
        budget = [RUN_IMAGE_BUDGET]
        out = []
        for f, row in pairs:
            data = await self._content(f, budget, in_hand or {})
            out.append(Item(md5=f.md5 if f else (row.md5 if row else None),
                            path=(row.path if row else None) or (f.name if f else None),
                            media_type=f.media_type if f else "table", size=f.size if f else 0,
                            width=f.width if f else None, height=f.height if f else None, data=data,
                            labels=row_labels(row.annotation, row.label) if row else (),
                            position=row.position if row else None))
        return out

    async def _run(self, cleaners: dict[str, Cleaner], items: list[Item], scope: Scope,
                   classes: tuple[str, ...] | None) -> list[Finding]:
        context = Context(scope=scope, classes=classes)
        if len(items) == 1 and _small(items[0]) and all(type(c).__module__ == BUILT_IN for c in cleaners.values()):
            # DAM's own cleaners over one small image: a thread hop (and the GIL hand-over) costs more than this
            return run_cleaners(cleaners, items, context)
        return await asyncio.to_thread(run_cleaners, cleaners, items, context)

    async def check_uploads(self, files: Sequence[File], in_hand: Mapping[str, bytes] | None = None) -> None:
        """Run every active cleaner over the files never checked (new ones, or ones stored before cleaners ran);
        their findings go on the file rows (an empty list: checked, nothing found). `in_hand`: MD5 -> content
        of the files the caller still holds in memory (a small upload's body), not read back from the store."""
        todo = list({f.md5: f for f in files if f.findings is None}.values())
        cleaners = self.cleaners()
        if not todo or not cleaners:
            return
        found = await self._run(cleaners, await self._items([(f, None) for f in todo], in_hand), "upload", None)
        by_md5: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
        for finding in found:
            by_md5[finding.md5].append(finding.as_dict() | {"position": None})
        for f in todo:
            f.findings = by_md5.get(f.md5, [])

    async def check_document(self, document_id: uuid.UUID, body: QualityRunCreate, user: str | None) -> QualityRun:
        docs = DocumentService(self.session)
        v = await docs.version(document_id, body.version)
        docs.check_filter(filter_columns(v.document), body.filter)
        require_storable("a class or cleaner name", *(body.classes or []), *(body.cleaners or []))
        cleaners = self.cleaners(body.cleaners)
        rows, total = await docs.rows([v.version], body.filter, limit=MAX_ROWS)
        if total > MAX_ROWS:
            raise InvalidQualityRun(f"the version has {total} rows selected; a run checks at most {MAX_ROWS}: "
                                    "narrow it with a filter")
        classes = body.classes
        if classes is None:
            latest = await LabellingRepository(self.session).find(status=None, document_id=document_id, limit=1,
                                                                  offset=0)
            classes = list(latest[0].labels) if latest else None
        items = await self._items([(f, r) for r, f in rows])
        found = await self._run(cleaners, items, "document", tuple(classes) if classes is not None else None)
        await self.repo.replace(document_id, v.version.version, [
            {"id": uuid.uuid4(), "position": f.position, "md5": f.md5, "cleaner": f.cleaner[:100], "code": f.code[:100],
             "severity": f.severity, "message": f.message[:2000], "related": list(f.related)[:100]} for f in found])
        return await self.repo.record_run(dict(
            document_id=document_id, document_version=v.version.version, cleaners=list(cleaners), classes=classes,
            row_count=len(items), checked_count=sum(1 for i in items if i.data is not None), ran_by=user))

    async def report(self, document_id: uuid.UUID, version: int | None, *, severity: str | None,
                     cleaner: str | None, limit: int, offset: int
                     ) -> tuple[QualityRun, list[tuple[str, str, str, int]], Page[QualityFinding]]:
        """The latest run over the version with its counts and a page of findings; a version never checked has
        an unsaved run of nothing (ran_at None)."""
        v = await DocumentService(self.session).version(document_id, version)
        run = await self.repo.run(document_id, v.version.version)
        if run is None:
            run = QualityRun(document_id=document_id, document_version=v.version.version, cleaners=[], classes=None,
                             row_count=0, checked_count=0, ran_by=None, ran_at=None)
        counts = await self.repo.counts(document_id, v.version.version)
        page = await self.repo.findings(document_id, v.version.version, severity=severity, cleaner=cleaner,
                                        limit=limit, offset=offset)
        return run, counts, page
