""""Add to test data": the selected badcases' data (files, or a tabular badcase's features), ground truth and
function go to DAM, which appends each to the standing badcase test set of its function
(`badcase.test_data_requested`, in chunks that fit a message). A badcase DAM could not use is skipped, with why."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from bam.badcase.attachment import data_key
from bam.badcase.exceptions import InvalidReport, NothingToAdd
from bam.badcase.models import Badcase
from bam.badcase.repository import BadcaseRepository
from bam.badcase.schemas import AddToTestData, TestDataResult
from bam.badcase.service import UNASSIGNED
from mlife_shared.db import utcnow
from mlife_shared.events.contracts import BadcaseTestDataRequested, TestDataItem
from mlife_shared.messaging import outbox
from mlife_shared.names import FUNCTION_MAX_CHARS
from mlife_shared.objectstore import ScopedStore

MAX_SELECTED = 10_000
ITEMS_PER_EVENT = 500
# An event's items stay well under NATS's 1 MiB message limit: a tabular badcase's features and its ground truth
# may each be 64 KiB of JSON, so a count alone does not make a chunk fit.
BYTES_PER_EVENT = 256 * 1024
# What DAM takes (its standing document is `badcase test set: <function>`, its column names its feature names):
# an item it cannot store fails the whole event, every other item of it with it.
MAX_FUNCTION_CHARS = FUNCTION_MAX_CHARS  # badcases filed before the shared rule may have longer ones
MD5 = re.compile(r"^[0-9a-f]{32}$")
COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def reference_for_dam(b: Badcase, store: ScopedStore) -> tuple[list[str], str | None]:
    """The one reference DAM takes the badcase's data by, with its MD5 when BAM knows it: data with an MD5 (uploaded
    with the report, or a DAM file the report named) by BAM's object key for that MD5 — DAM uses its own file of that
    MD5 if it has one, else takes BAM's object once it exists, without hashing it again; otherwise the report's first
    reference (`key:<object key>`, whose MD5 DAM computes, or `url:<url>`). None for a tabular badcase without any:
    its features are its data."""
    if b.data_md5 is not None and MD5.match(b.data_md5):
        return [f"key:{store.full_key(data_key(b.data_md5))}"], b.data_md5
    first = b.data_refs[0] if b.data_refs else None
    return ([f"{first['kind']}:{first['value']}"] if first else []), None


def not_addable(b: Badcase) -> str | None:
    """Why DAM could not use the badcase as a test item, or None."""
    if not b.data_refs and not b.features:
        return "the badcase has no data to add: neither data references nor features"
    if b.function == UNASSIGNED:
        return (f"the badcase has no function ('{UNASSIGNED}'); a test set is per function: report it again "
                "under its function")
    function = b.function.strip()
    if len(function) > MAX_FUNCTION_CHARS or any(ord(c) < 32 for c in function):
        return (f"its function is not a usable test set name (up to {MAX_FUNCTION_CHARS} printable characters): "
                "report it again under a shorter function name")
    bad = [k for k in b.features or {} if not COLUMN.match(k)]
    if bad:
        return (f"feature names {bad[:5]} are not column names (letters, digits, '_', '.', '-', up to 64, starting "
                "with a letter or '_'): report it again with the model's column names")
    return None


def chunks(items: list[TestDataItem]) -> list[list[TestDataItem]]:
    """Items in order, in chunks of at most ITEMS_PER_EVENT items and (but for a single item) BYTES_PER_EVENT."""
    out: list[list[TestDataItem]] = []
    size = 0
    for item in items:
        n = len(item.model_dump_json())
        if not out or len(out[-1]) >= ITEMS_PER_EVENT or size + n > BYTES_PER_EVENT:
            out.append([])
            size = 0
        out[-1].append(item)
        size += n
    return out


class TestDataService:
    """"Add to test data" for the badcases selected by ids or by a filter. Never commits."""

    __test__ = False  # not a pytest class, whatever its name

    def __init__(self, session: AsyncSession, store: ScopedStore) -> None:
        self.session, self.store = session, store
        self.repo = BadcaseRepository(session)

    async def add(self, request: AddToTestData) -> TestDataResult:
        if request.ids is not None:
            ids: Sequence[uuid.UUID] = list(dict.fromkeys(request.ids))
        else:
            assert request.filter is not None
            ids = await self.repo.ids(request.filter, MAX_SELECTED + 1)
            if len(ids) > MAX_SELECTED:
                raise InvalidReport(f"the filter selects more than {MAX_SELECTED} badcases; narrow it")
        badcases = {b.id: b for b in await self.repo.many(ids)}
        skipped = [{"id": str(i), "reason": "no such badcase"} for i in ids if i not in badcases]
        items: list[TestDataItem] = []
        now = utcnow()
        for b in badcases.values():
            reason = not_addable(b)
            if reason:
                skipped.append({"id": str(b.id), "reason": reason})
                continue
            refs, md5 = reference_for_dam(b, self.store)
            items.append(TestDataItem(badcase_id=b.id, data_refs=refs, md5=md5, features=b.features,
                                      ground_truth=b.ground_truth, function=b.function,
                                      segment_start=b.segment_start, segment_end=b.segment_end,
                                      frame_start=b.frame_start, frame_end=b.frame_end, duration=b.duration))
            b.test_data_requested_at = now
        if not items:
            raise NothingToAdd({"message": "none of the selected badcases can be added", "skipped": skipped})
        request_ids = []
        for chunk in chunks(items):
            request_id = uuid.uuid4()
            await outbox.add(self.session, BadcaseTestDataRequested(request_id=request_id, items=chunk))
            request_ids.append(request_id)
        await self.session.flush()
        return TestDataResult(request_ids=request_ids, added=len(items), skipped=skipped)
