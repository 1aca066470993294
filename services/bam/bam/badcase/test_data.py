""""Add to test data": the selected badcases' data (files, or a tabular badcase's features), ground truth and
function go to DAM, which appends each to the standing badcase test set of its function
(`badcase.test_data_requested`, in chunks that fit a message). A badcase DAM could not use is skipped, with why."""

from __future__ import annotations

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
from mlife_shared.objectstore import ScopedStore

MAX_SELECTED = 10_000
ITEMS_PER_EVENT = 500


async def refs_for_dam(b: Badcase, store: ScopedStore) -> list[str]:
    """`md5:<hex>`, `key:<object key>` or `url:<url>`; data BAM holds is named by its full object key."""
    refs = []
    for r in b.data_refs:
        if r["kind"] == "md5" and r["value"] == b.data_md5 and await store.stat(data_key(r["value"])) is not None:
            refs.append(f"key:{store.full_key(data_key(r['value']))}")
        refs.append(f"{r['kind']}:{r['value']}")
    return refs


def not_addable(b: Badcase) -> str | None:
    """Why DAM could not use the badcase as a test item, or None."""
    if not b.data_refs and not b.features:
        return "the badcase has no data to add: neither data references nor features"
    if b.function == UNASSIGNED:
        return (f"the badcase has no function ('{UNASSIGNED}'); a test set is per function: report it again "
                "under its function")
    return None


async def add_to_test_data(session: AsyncSession, store: ScopedStore, request: AddToTestData) -> TestDataResult:
    repo = BadcaseRepository(session)
    if request.ids is not None:
        ids: Sequence[uuid.UUID] = list(dict.fromkeys(request.ids))
    else:
        assert request.filter is not None
        ids = await repo.ids(request.filter, MAX_SELECTED + 1)
        if len(ids) > MAX_SELECTED:
            raise InvalidReport(f"the filter selects more than {MAX_SELECTED} badcases; narrow it")
    badcases = {b.id: b for b in await repo.many(ids)}
    skipped = [{"id": str(i), "reason": "no such badcase"} for i in ids if i not in badcases]
    items: list[TestDataItem] = []
    now = utcnow()
    for b in badcases.values():
        reason = not_addable(b)
        if reason:
            skipped.append({"id": str(b.id), "reason": reason})
            continue
        items.append(TestDataItem(badcase_id=b.id, data_refs=await refs_for_dam(b, store), features=b.features,
                                  ground_truth=b.ground_truth, function=b.function))
        b.test_data_requested_at = now
    if not items:
        raise NothingToAdd({"message": "none of the selected badcases can be added", "skipped": skipped})
    request_ids = []
    for start in range(0, len(items), ITEMS_PER_EVENT):
        request_id = uuid.uuid4()
        await outbox.add(session, BadcaseTestDataRequested(request_id=request_id,
                                                           items=items[start:start + ITEMS_PER_EVENT]))
        request_ids.append(request_id)
    await session.flush()
    return TestDataResult(request_ids=request_ids, added=len(items), skipped=skipped)
