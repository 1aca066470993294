"""Labelling tasks: rows of a document version with pre-labels (a column, or a serving endpoint), the
items as JSON lines in the store, `labelling.requested`, an optional project in a labelling tool (a labelling
connector plugin: Label Studio is the built-in); annotations arrive by webhook, by reconciliation or by API, and a
complete task becomes a new document version and `labelling.completed`."""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from dam.config import Settings
from dam.document.export import data_field, file_url, prediction
from dam.document.models import DocumentRow
from dam.document.service import DocumentService, Version, filter_columns, label_of, search_text, unstorable
from dam.file.models import File
from dam.file.service import MD5_RE, file_key
from dam.labelling import connector, prelabel
from dam.labelling.exceptions import InvalidLabellingTask, LabellingTaskClosed, LabellingTaskNotFound
from dam.labelling.models import LabellingItem, LabellingTask
from dam.labelling.repository import LabellingRepository
from dam.labelling.schemas import AnnotationsIn, LabellingTaskCreate
from mlife_shared.auth import Identity
from mlife_shared.db import utcnow
from mlife_shared.events.contracts import LabellingCompleted, LabellingRequested
from mlife_shared.messaging import outbox
from mlife_shared.objectstore import ScopedStore
from mlife_shared.objectstore.base import iterate
from mlife_shared.plugins.registry import Plugins
from mlife_shared.plugins.seams.labelling import (
    Connection,
    ExternalAnnotation,
    ItemSpec,
    Kind,
    LabellingConnector,
    ProjectSpec,
)

# an item's columns in the database (the item built for the task also holds its file and store key)
ITEM_COLUMNS = ("id", "row_id", "position", "md5", "prelabel", "external_id")
BUILTIN = "labelstudio"


def items_key(task_id: uuid.UUID) -> str:
    return f"labelling/{task_id}/items.jsonl"


def labelstudio_configured(settings: Settings) -> bool:
    return bool(settings.labelstudio_url and settings.labelstudio_token.get_secret_value())


def connection(settings: Settings, name: str) -> Connection:
    """What a connector is told: for the built-in Label Studio, its address, token and webhook from DAM's settings;
    for another connector, DAM's public URL and its webhook address (the tool's own settings are its own)."""
    if name == BUILTIN:
        return Connection(url=settings.labelstudio_url or None, token=settings.labelstudio_token.get_secret_value() or None,
                          webhook_url=settings.labelstudio_webhook_url or None,
                          webhook_secret=settings.labelstudio_webhook_secret.get_secret_value() or None,
                          public_url=settings.public_url)
    return Connection(webhook_url=f"{settings.public_url.rstrip('/')}/api/dam/webhooks/{name}",
                      public_url=settings.public_url)


class LabellingService:
    def __init__(self, session: AsyncSession, store: ScopedStore, settings: Settings, registry: Plugins) -> None:
        self.session = session
        self.store = store
        self.settings = settings
        self.registry = registry
        self.repo = LabellingRepository(session)
        self.docs = DocumentService(session)

    async def get(self, task_id: uuid.UUID, *, lock: bool = False) -> LabellingTask:
        task = await (self.repo.get_for_update if lock else self.repo.get)(LabellingTask, task_id)
        if task is None:
            raise LabellingTaskNotFound(f"no labelling task {task_id}")
        return task

    async def find(self, *, status: str | None, document_id: uuid.UUID | None, limit: int,
                   offset: int) -> list[LabellingTask]:
        return await self.repo.find(status=status, document_id=document_id, limit=limit, offset=offset)

    async def items(self, task_id: uuid.UUID) -> list[LabellingItem]:
        await self.get(task_id)
        return await self.repo.items(task_id)

    async def progress(self, task: LabellingTask) -> tuple[int, int]:
        """(items, annotated items) of the task."""
        return await self.repo.counts(task.id)

    async def complete(self, task_id: uuid.UUID) -> bool:
        """Complete the task if every item is annotated (after a webhook recorded the last annotations)."""
        return await self.maybe_complete(await self.get(task_id, lock=True))

    async def open_in_a_tool(self) -> list[uuid.UUID]:
        return await self.repo.open_in_a_tool()

    def connector(self, name: str) -> LabellingConnector:
        """The active labelling plugin of that name (a 422 naming the active ones when it is not)."""
        plugin: LabellingConnector = self.registry.get("labelling", name)
        return plugin

    def chosen_connector(self, req: LabellingTaskCreate) -> str | None:
        """The connector the task is pushed to: the one named, else Label Studio when asked and configured."""
        if req.connector is not None:
            self.connector(req.connector)
            if req.connector == BUILTIN and not labelstudio_configured(self.settings):
                raise InvalidLabellingTask("the labelstudio connector is not configured: set MLIFE_DAM_LABELSTUDIO_URL "
                                           "and MLIFE_DAM_LABELSTUDIO_TOKEN, or create the task without a connector")
            return req.connector
        return BUILTIN if req.label_studio and labelstudio_configured(self.settings) else None

    async def create(self, req: LabellingTaskCreate, user: str | None,
                     identity: Identity | None = None) -> LabellingTask:
        why = unstorable(req.labels) or unstorable(req.title)
        if why:
            raise InvalidLabellingTask(f"a label or the title {why}")
        await prelabel.check(req.prelabel, self.settings)
        tool = self.chosen_connector(req)
        v, rows = await self._rows_to_label(req)
        pre_labels = await prelabel.prelabels(req.prelabel, [r for r, _ in rows], v.document.columns, req.labels, identity,
                                       self.settings)
        items = [dict(id=uuid.uuid4(), row_id=r.id, position=r.position, md5=r.md5,
                      key=self.store.full_key(file_key(r.md5)) if r.md5 else None, file=f, prelabel=p)
                 for (r, f), p in zip(rows, pre_labels, strict=True)]
        task_id = uuid.uuid4()
        field = data_field(rows[0][1])
        spec = ProjectSpec(title=req.title or f"{v.document.name} v{v.version.version}", kind=req.kind,
                           labels=tuple(req.labels), field=field, description="")
        config = self.connector(tool).label_config(spec) if tool else connector.label_config(req.kind, req.labels, field)
        await self.store.put(items_key(task_id), iterate(self._items_jsonl(items)), content_type="application/x-ndjson")
        task = LabellingTask(id=task_id, document_id=v.document.id, document_version=v.version.version, kind=req.kind,
                             labels=req.labels, label_config=config, prelabel_source=prelabel.source(req.prelabel),
                             status="open", items_key=self.store.full_key(items_key(task_id)), created_by=user)
        if tool:
            await self._push(tool, task, items, spec)
        await self.repo.add_with_items(task, [{k: i.get(k) for k in ITEM_COLUMNS} for i in items])
        await outbox.add(self.session, LabellingRequested(
            labelling_task_id=task.id, document_id=task.document_id, document_version=task.document_version,
            items_key=task.items_key, label_config=config, item_count=len(items), labels=req.labels))
        return task

    async def _rows_to_label(self, req: LabellingTaskCreate) -> tuple[Version, list[tuple[DocumentRow, File | None]]]:
        """The document version and its rows the request selects: files only, at most `max_items`."""
        v = await self.docs.version(req.document_id, req.version)
        self.docs.check_filter(filter_columns(v.document), req.filter)
        prelabel.check_column(req.prelabel, v.document.columns)
        rows, total = await self.docs.rows([v.version], req.filter)
        if not rows:
            raise InvalidLabellingTask("the filter selects no rows to label")
        fileless = sum(1 for r, _ in rows if r.md5 is None)
        if fileless:
            raise InvalidLabellingTask(f"{fileless} of the selected rows are table rows with no file; a labelling task "
                                       "labels files (select file rows with a filter)")
        if total > req.max_items:
            raise InvalidLabellingTask(f"the filter selects {total} rows; the limit is {req.max_items}")
        return v, rows

    def _items_jsonl(self, items: list[dict[str, Any]]) -> bytes:
        """The items as the JSON lines stored for the task (`labelling.requested` names them)."""
        return "".join(json.dumps({"item_id": str(i["id"]), "row_id": str(i["row_id"]), "md5": i["md5"], "key": i["key"],
                                   "url": file_url(self.settings.public_url, i["md5"]), "prelabel": i["prelabel"]},
                                  default=str) + "\n" for i in items).encode()

    async def _push(self, name: str, task: LabellingTask, items: list[dict[str, Any]], spec: ProjectSpec) -> None:
        """Create the tool's project and import the items; the tool's ids are kept on the task and its items."""
        tool, conn = self.connector(name), connection(self.settings, name)
        spec = ProjectSpec(title=spec.title, kind=spec.kind, labels=spec.labels, field=spec.field,
                           description=f"MLife DAM labelling task {task.id}", label_config=task.label_config)
        project = await tool.create_project(conn, spec)
        specs = [ItemSpec(item_id=str(i["id"]), url=file_url(self.settings.public_url, i["md5"]), md5=i["md5"],
                          width=i["file"].width if i["file"] else None, height=i["file"].height if i["file"] else None,
                          prelabel=i["prelabel"], prelabel_source=task.prelabel_source,
                          prediction=prediction(i["prelabel"], i["file"], task.kind) if i["prelabel"] is not None else None)
                 for i in items]
        ids = await tool.import_tasks(conn, project, spec, specs)
        if len(ids) != len(items):
            raise InvalidLabellingTask(f"the {name} connector imported {len(ids)} of {len(items)} items")
        for i, external in zip(items, ids, strict=True):
            i["external_id"] = str(external)[:200]
        task.connector, task.external_project = name, str(project)[:200]

    # ---- annotations ---------------------------------------------------------------------------

    async def record(self, task: LabellingTask, item: LabellingItem, annotation: Any) -> None:
        item.annotation = annotation
        item.annotated_at = utcnow()

    async def add_annotations(self, task_id: uuid.UUID, body: AnnotationsIn) -> LabellingTask:
        task = await self.get(task_id, lock=True)
        if task.status != "open":
            raise LabellingTaskClosed(f"labelling task {task_id} is {task.status}")
        items = await self.repo.items(task.id)
        by_id = {i.id: i for i in items}
        by_md5 = {i.md5: i for i in items if i.md5}
        errors = []
        for n, a in enumerate(body.annotations):
            why = unstorable(a.annotation)
            if why:
                errors.append({"index": n, "message": f"the annotation {why}"})
                continue
            item = by_id.get(a.item_id) if a.item_id else by_md5.get(a.md5 or "")
            if item is None:
                bad = "not an MD5" if a.md5 and not MD5_RE.match(a.md5) else "not an item of this task"
                errors.append({"index": n, "message": f"{a.item_id or a.md5}: {bad}"})
                continue
            await self.record(task, item, a.annotation)
        if errors:
            raise InvalidLabellingTask({"message": "some annotations name no item; nothing was recorded",
                                        "errors": errors[:100]})
        await self.session.flush()
        await self.maybe_complete(task, force=body.complete)
        return task

    async def on_webhook(self, name: str, headers: dict[str, str], body: bytes) -> set[uuid.UUID]:
        """Record the annotations a connector's webhook carries (the connector verifies it: WebhookRefused is a
        401, a malformed body a 422); the ids of the tasks that are now fully annotated."""
        found = self.connector(name).webhook(connection(self.settings, name), headers, body)
        touched = await self._record_external(name, found, strict=True)
        complete = set()
        for task_id in touched:
            total, done = await self.repo.counts(task_id)
            if done == total:
                complete.add(task_id)
        return complete

    async def _record_external(self, name: str, annotations: list[ExternalAnnotation], *,
                               strict: bool = False) -> set[uuid.UUID]:
        """Record the tool's annotations on the open tasks' items they name; one DAM cannot store is refused
        (`strict`, a webhook: 422) or left out (a poll)."""
        tool = self.connector(name)
        touched: set[uuid.UUID] = set()
        for a in annotations:
            found = await self.repo.by_external(name, str(a.project), str(a.external_id))
            if found is None or found[0].status != "open":
                continue
            task, item = found
            value = tool.annotation(a.result, cast(Kind, task.kind))
            if unstorable(value):
                if strict:
                    raise InvalidLabellingTask(f"the annotation {unstorable(value)}")
                continue
            if item.annotated_at is None or item.annotation != value:
                await self.record(task, item, value)
            touched.add(task.id)
        await self.session.flush()
        return touched

    async def reconcile(self, task_id: uuid.UUID) -> LabellingTask:
        """Pull the annotations from the task's tool (a webhook may have been lost) and complete when all are in."""
        task = await self.get(task_id, lock=True)
        if task.status != "open" or task.connector is None or task.external_project is None:
            return task
        tool = self.connector(task.connector)
        exported = await tool.fetch_annotations(connection(self.settings, task.connector), task.external_project)
        await self._record_external(task.connector, [a for a in exported if str(a.project) == task.external_project])
        await self.maybe_complete(task)
        return task

    async def maybe_complete(self, task: LabellingTask, *, force: bool = False) -> bool:
        if task.status != "open":
            return False
        total, done = await self.repo.counts(task.id)
        if done == 0 or (done < total and not force):
            return False
        items = [i for i in await self.repo.items(task.id) if i.annotated_at is not None]
        by_md5 = {i.md5: i.annotation for i in items}
        doc = await self.docs.get(task.document_id, lock=True)
        rows = await self.docs.current_rows(doc)
        for r in rows:
            if r["md5"] in by_md5:
                r["annotation"] = by_md5[r["md5"]]
                r["label"] = label_of(r["annotation"])
                r["search_text"] = search_text(r["path"], r["annotation"], r["extra"])
        v = await self.docs.write_version(doc, rows, user="labelling",
                                          message=f"annotations of labelling task {task.id} ({len(items)} items)")
        task.status = "completed"
        task.completed_version = v.version.version
        task.completed_at = utcnow()
        await outbox.add(self.session, LabellingCompleted(labelling_task_id=task.id, document_id=doc.id,
                                                          document_version=v.version.version,
                                                          annotated_count=len(items)))
        return True
