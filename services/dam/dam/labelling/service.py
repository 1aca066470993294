"""Labelling tasks: rows of a document version with pre-labels (a column, or a serving endpoint), the
items as JSON lines in the store, `labelling.requested`, an optional Label Studio project; annotations
arrive by webhook, by reconciliation or by API, and a complete task becomes a new document version and
`labelling.completed`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from dam.config import Settings
from dam.document.export import data_field, file_url, prediction
from dam.document.service import DocumentService, filter_columns, label_of, search_text, unstorable
from dam.file.service import MD5_RE, file_key
from dam.labelling import connector
from dam.labelling.exceptions import (
    InvalidLabellingTask,
    LabellingTaskClosed,
    LabellingTaskNotFound,
    LabelStudioUnavailable,
)
from dam.labelling.models import LabellingItem, LabellingTask
from dam.labelling.repository import LabellingRepository
from dam.labelling.schemas import AnnotationsIn, LabellingTaskCreate, Prelabel
from mlife_shared import outbound
from mlife_shared.auth import IDENTITY_HEADER, Identity, sign_identity
from mlife_shared.db import utcnow
from mlife_shared.events.contracts import LabellingCompleted, LabellingRequested
from mlife_shared.messaging import outbox
from mlife_shared.objectstore import ScopedStore
from mlife_shared.objectstore.base import iterate


def items_key(task_id: uuid.UUID) -> str:
    return f"labelling/{task_id}/items.jsonl"


def make_connector(settings: Settings) -> connector.LabelStudio | None:
    if not settings.labelstudio_url or not settings.labelstudio_token.get_secret_value():
        return None
    return connector.LabelStudio(settings.labelstudio_url, settings.labelstudio_token.get_secret_value())


def _to_label(value: Any, labels: list[str]) -> Any:
    """A model output as a label: class scores → the label of the highest, an index → its label, text as is."""
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        if len(value) == len(labels):
            return labels[max(range(len(value)), key=lambda i: value[i])]
        if len(value) == 1:
            value = value[0]
    if isinstance(value, (int, float)) and float(value).is_integer() and 0 <= int(value) < len(labels):
        return labels[int(value)]
    return value


ALLOW_SETTING = "MLIFE_DAM_OUTBOUND_ALLOW_HOSTS"


def model_inputs(pre: Prelabel, rows: list[Any]) -> list[Any]:
    inputs = []
    for r in rows:
        value = r.extra.get(pre.input_column)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise InvalidLabellingTask(f"row {r.position}: {pre.input_column} is not JSON") from exc
        if value is None:
            raise InvalidLabellingTask(f"row {r.position} has no {pre.input_column}")
        inputs.append(value)
    return inputs


def _msm_predict(settings: Settings, deployment: str,
                 identity: Identity | None) -> Callable[[bytes], Awaitable[tuple[int, bytes]]]:
    """MSM's predict for one deployment, inside the platform: the operator-set MSM URL (never a user URL), the
    caller's identity signed as the gateway would, short-lived. Nothing user-supplied chooses where it goes."""
    url = f"{settings.msm_url.rstrip('/')}/api/msm/serve/{quote(deployment, safe='')}/predict"
    headers = {"content-type": "application/json"}
    if identity is not None:
        headers[IDENTITY_HEADER] = sign_identity(identity, settings.identity_secret.get_secret_value(),
                                                 ttl_seconds=min(settings.identity_ttl_seconds, 60))

    async def call(body: bytes) -> tuple[int, bytes]:
        async with httpx.AsyncClient(timeout=settings.prelabel_timeout_seconds, trust_env=False) as client:
            try:
                r = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise InvalidLabellingTask(f"MSM is unreachable for deployment {deployment!r}: "
                                           f"{type(exc).__name__}") from exc
            if r.status_code == 404:
                raise InvalidLabellingTask(f"MSM serves no deployment {deployment!r}")
            return r.status_code, r.content
    return call


def _endpoint(settings: Settings, pre: Prelabel) -> Callable[[bytes], Awaitable[tuple[int, bytes]]]:
    """An outside endpoint, through the shared outbound guard: checked on every hop, no MLife credential."""
    secret = {"authorization": pre.authorization.get_secret_value()} if pre.authorization is not None else None

    async def call(body: bytes) -> tuple[int, bytes]:
        try:
            r = await outbound.fetch("POST", pre.endpoint or "", allow=settings.outbound_allow_hosts,
                                     what="prelabel.endpoint", setting=ALLOW_SETTING, content=body,
                                     headers={"content-type": "application/json"}, secret_headers=secret,
                                     timeout=settings.prelabel_timeout_seconds,
                                     max_bytes=settings.prelabel_max_response_bytes)
        except outbound.OutboundError as exc:
            raise InvalidLabellingTask(str(exc.message)) from exc
        return r.status_code, r.content
    return call


async def model_prelabels(pre: Prelabel, rows: list[Any], labels: list[str], identity: Identity | None,
                          settings: Settings) -> list[Any]:
    """Pre-labels from a model answering MSM's predict shape (`{"inputs": {name: batch}}` →
    `{"outputs": {...}}`), in batches of 64. The answer's body is never echoed: errors name host and status."""
    inputs = model_inputs(pre, rows)
    if pre.deployment is not None:
        call, where = _msm_predict(settings, pre.deployment, identity), f"MSM deployment {pre.deployment!r}"
    else:
        call, where = _endpoint(settings, pre), f"the serving endpoint at {urlsplit(pre.endpoint or '').hostname}"
    out: list[Any] = []
    for start in range(0, len(inputs), 64):
        batch = inputs[start:start + 64]
        status, content = await call(json.dumps({"inputs": {pre.input_name: batch}}).encode())
        if status != 200:
            raise InvalidLabellingTask(f"{where} answered HTTP {status}")
        try:
            outputs = json.loads(content)["outputs"]
            values = outputs[pre.output_name] if pre.output_name else next(iter(outputs.values()))
            assert isinstance(values, list) and len(values) == len(batch)
        except (ValueError, KeyError, TypeError, StopIteration, AssertionError) as exc:
            raise InvalidLabellingTask(f"{where} must answer {{\"outputs\": {{name: [one per input]}}}}") from exc
        out.extend(_to_label(v, labels) for v in values)
    return out


def _source_url(url: str) -> str:
    """The endpoint as recorded on the task: without query or fragment (they may carry a key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"[:280]


class LabellingService:
    def __init__(self, session: AsyncSession, store: ScopedStore, settings: Settings) -> None:
        self.session = session
        self.store = store
        self.settings = settings
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

    async def open_in_label_studio(self) -> list[uuid.UUID]:
        return await self.repo.open_in_label_studio()

    async def create(self, req: LabellingTaskCreate, user: str | None,
                     identity: Identity | None = None) -> LabellingTask:
        why = unstorable(req.labels) or unstorable(req.title)
        if why:
            raise InvalidLabellingTask(f"a label or the title {why}")
        if req.prelabel is not None and req.prelabel.endpoint is not None:  # refused before anything is read
            await outbound.check_url(req.prelabel.endpoint, self.settings.outbound_allow_hosts,
                                     what="prelabel.endpoint", setting=ALLOW_SETTING)
        v = await self.docs.version(req.document_id, req.version)
        self.docs.check_filter(filter_columns(v.document), req.filter)
        if req.prelabel and req.prelabel.column and req.prelabel.column != "annotation" \
                and req.prelabel.column not in v.document.columns:
            raise InvalidLabellingTask(f"unknown pre-label column {req.prelabel.column!r}")
        rows, total = await self.docs.rows([v.version], req.filter)
        if not rows:
            raise InvalidLabellingTask("the filter selects no rows to label")
        fileless = sum(1 for r, _ in rows if r.md5 is None)
        if fileless:
            raise InvalidLabellingTask(f"{fileless} of the selected rows are table rows with no file; a labelling task "
                                       "labels files (select file rows with a filter)")
        if total > req.max_items:
            raise InvalidLabellingTask(f"the filter selects {total} rows; the limit is {req.max_items}")
        task_id = uuid.uuid4()
        field = data_field(rows[0][1])
        items: list[dict[str, Any]] = []
        for r, f in rows:
            items.append(dict(id=uuid.uuid4(), row_id=r.id, position=r.position, md5=r.md5,
                              key=self.store.full_key(file_key(r.md5)) if r.md5 else None, file=f,
                              prelabel=None if req.prelabel is None or req.prelabel.column is None else (
                                  r.annotation if req.prelabel.column == "annotation" else r.extra.get(req.prelabel.column))))
        if req.prelabel and req.prelabel.column is None:
            if req.prelabel.input_column not in v.document.columns:
                raise InvalidLabellingTask(f"unknown input column {req.prelabel.input_column!r}")
            preds = await model_prelabels(req.prelabel, [r for r, _ in rows], req.labels, identity, self.settings)
            for it, pred in zip(items, preds, strict=True):
                it["prelabel"] = pred
        source = None if req.prelabel is None else (
            (req.prelabel.column is not None and f"column:{req.prelabel.column}")
            or (req.prelabel.deployment is not None and f"deployment:{req.prelabel.deployment}")
            or f"endpoint:{_source_url(req.prelabel.endpoint or '')}")
        config = connector.label_config(req.kind, req.labels, field)
        lines = "".join(json.dumps({"item_id": str(i["id"]), "row_id": str(i["row_id"]), "md5": i["md5"], "key": i["key"],
                                    "url": file_url(self.settings.public_url, i["md5"]), "prelabel": i["prelabel"]},
                                   default=str) + "\n" for i in items)
        await self.store.put(items_key(task_id), iterate(lines.encode()), content_type="application/x-ndjson")
        task = LabellingTask(id=task_id, document_id=v.document.id, document_version=v.version.version, kind=req.kind,
                             labels=req.labels, label_config=config, prelabel_source=source, status="open",
                             items_key=self.store.full_key(items_key(task_id)), created_by=user)
        ls = make_connector(self.settings) if req.label_studio else None
        if ls is not None:
            try:
                await self._push(ls, task, items, req.title or f"{v.document.name} v{v.version.version}", field)
            finally:
                await ls.aclose()
        await self.repo.add_with_items(task, [{k: i[k] for k in ("id", "row_id", "position", "md5", "prelabel", "ls_task_id")}
                                   for i in [dict(i, ls_task_id=i.get("ls_task_id")) for i in items]])
        await outbox.add(self.session, LabellingRequested(
            labelling_task_id=task.id, document_id=task.document_id, document_version=task.document_version,
            items_key=task.items_key, label_config=config, item_count=len(items), labels=req.labels))
        return task

    async def _push(self, ls: connector.LabelStudio, task: LabellingTask, items: list[dict[str, Any]], title: str,
                    field: str) -> None:
        project = await ls.create_project(title, task.label_config, f"MLife DAM labelling task {task.id}")
        if self.settings.labelstudio_webhook_url:
            await ls.add_webhook(project, self.settings.labelstudio_webhook_url,
                                 self.settings.labelstudio_webhook_secret.get_secret_value())
        tasks = []
        for i in items:
            t: dict[str, Any] = {"data": {field: file_url(self.settings.public_url, i["md5"]), "md5": i["md5"],
                                          "item_id": str(i["id"])}}
            result = prediction(i["prelabel"], i["file"], task.kind) if i["prelabel"] is not None else []
            if result:
                t["predictions"] = [{"model_version": task.prelabel_source or "dam", "result": result}]
            tasks.append(t)
        ids = await ls.import_tasks(project, tasks)
        for i, ls_id in zip(items, ids, strict=True):
            i["ls_task_id"] = ls_id
        task.ls_project_id = project

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

    async def on_webhook(self, payload: dict[str, Any]) -> set[uuid.UUID]:
        """Record the annotations a Label Studio webhook carries (one, or a list for ANNOTATIONS_CREATED);
        the ids of the tasks that are now fully annotated."""
        if payload.get("action") not in connector.ACTIONS:
            return set()
        raw = payload.get("annotation")
        annotations = raw if isinstance(raw, list) else [raw]
        ls_task: dict[str, Any] = payload["task"] if isinstance(payload.get("task"), dict) else {}
        project_default = ls_task.get("project") or (payload.get("project") or {}).get("id")
        touched: set[uuid.UUID] = set()
        for annotation in annotations:
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            task_ref = annotation.get("task")
            ls_task_id = task_ref.get("id") if isinstance(task_ref, dict) else task_ref
            if not isinstance(raw, list) and ls_task.get("id") is not None:
                ls_task_id = ls_task["id"]
            project = annotation.get("project") or project_default
            if not isinstance(ls_task_id, int) or not isinstance(project, int):
                continue
            found = await self.repo.by_project_task(project, ls_task_id)
            if found is None or found[0].status != "open":
                continue
            task, item = found
            value = connector.annotation_from_result(annotation.get("result") or [], task.kind)
            if unstorable(value):
                raise InvalidLabellingTask(f"the annotation {unstorable(value)}")
            await self.record(task, item, value)
            touched.add(task.id)
        await self.session.flush()
        complete = set()
        for task_id in touched:
            total, done = await self.repo.counts(task_id)
            if done == total:
                complete.add(task_id)
        return complete

    async def reconcile(self, task_id: uuid.UUID) -> LabellingTask:
        """Pull the annotations from Label Studio (a webhook may have been lost) and complete when all are in."""
        task = await self.get(task_id, lock=True)
        if task.status != "open" or task.ls_project_id is None:
            return task
        ls = make_connector(self.settings)
        if ls is None:
            raise LabelStudioUnavailable("no Label Studio connector is configured (MLIFE_DAM_LABELSTUDIO_URL/_TOKEN)")
        try:
            exported = await ls.annotated_tasks(task.ls_project_id)
        finally:
            await ls.aclose()
        items = {i.ls_task_id: i for i in await self.repo.items(task.id) if i.ls_task_id is not None}
        for t in exported:
            ls_id = t.get("id")
            item = items.get(ls_id) if isinstance(ls_id, int) else None
            ann = connector.latest_annotation(t)
            if item is None or ann is None:
                continue
            value = connector.annotation_from_result(ann.get("result") or [], task.kind)
            if unstorable(value):
                continue
            if item.annotated_at is None or item.annotation != value:
                await self.record(task, item, value)
        await self.session.flush()
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
