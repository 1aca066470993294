from __future__ import annotations

import hmac
import json
import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, BackgroundTasks, Query, Request

from dam.document.service import require_storable
from dam.labelling.connector import WEBHOOK_SECRET_HEADER
from dam.labelling.exceptions import InvalidLabellingTask, WebhookRejected
from dam.labelling.models import LabellingTask
from dam.labelling.repository import LabellingRepository
from dam.labelling.schemas import AnnotationsIn, LabellingTaskCreate, LabellingTaskRead
from dam.labelling.service import LabellingService
from mlife_shared.app import SessionDep, StoreDep
from mlife_shared.auth import Engineer, Tester, Viewer

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/labelling-tasks", tags=["labelling"])
webhook_router = APIRouter(prefix="/webhooks", tags=["labelling"])


async def to_read(t: LabellingTask, repo: LabellingRepository) -> LabellingTaskRead:
    total, done = await repo.counts(t.id)
    return LabellingTaskRead(id=t.id, document_id=t.document_id, document_version=t.document_version, kind=t.kind,
                             labels=t.labels, label_config=t.label_config, prelabel_source=t.prelabel_source,
                             status=t.status, items_key=t.items_key, item_count=total, annotated_count=done,
                             ls_project_id=t.ls_project_id, completed_version=t.completed_version,
                             created_at=t.created_at, completed_at=t.completed_at)


def service(request: Request, session: SessionDep, store: StoreDep) -> LabellingService:
    return LabellingService(session, store, request.app.state.settings)


@router.post("", status_code=201)
async def create_task(body: LabellingTaskCreate, request: Request, session: SessionDep, store: StoreDep,
                      identity: Engineer) -> LabellingTaskRead:
    """Create a labelling task over selected rows, with pre-labels; pushed to Label Studio when configured."""
    svc = service(request, session, store)
    task = await svc.create(body, identity.username, identity)
    return await to_read(task, svc.repo)


@router.get("")
async def list_tasks(session: SessionDep, _: Viewer, status: str | None = None, document_id: uuid.UUID | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100,
                     offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0) -> list[LabellingTaskRead]:
    """Labelling tasks, newest first."""
    require_storable("the status", status)
    repo = LabellingRepository(session)
    return [await to_read(t, repo) for t in await repo.list(status=status, document_id=document_id, limit=limit,
                                                            offset=offset)]


@router.get("/{task_id}")
async def get_task(task_id: uuid.UUID, request: Request, session: SessionDep, store: StoreDep,
                   _: Viewer) -> LabellingTaskRead:
    """One labelling task with its progress."""
    svc = service(request, session, store)
    return await to_read(await svc.get(task_id), svc.repo)


@router.get("/{task_id}/items")
async def get_items(task_id: uuid.UUID, request: Request, session: SessionDep, store: StoreDep,
                    _: Viewer) -> list[dict[str, Any]]:
    """The task's items: file, pre-label, annotation (when in) and the Label Studio task id."""
    svc = service(request, session, store)
    await svc.get(task_id)
    return [{"item_id": str(i.id), "md5": i.md5, "position": i.position, "prelabel": i.prelabel,
             "annotation": i.annotation, "annotated_at": i.annotated_at, "ls_task_id": i.ls_task_id}
            for i in await svc.repo.items(task_id)]


@router.post("/{task_id}/annotations")
async def add_annotations(task_id: uuid.UUID, body: AnnotationsIn, request: Request, session: SessionDep,
                          store: StoreDep, _: Tester) -> LabellingTaskRead:
    """Record annotations from any labelling system; a task with every item annotated completes."""
    svc = service(request, session, store)
    return await to_read(await svc.add_annotations(task_id, body), svc.repo)


@router.post("/{task_id}/reconcile")
async def reconcile(task_id: uuid.UUID, request: Request, session: SessionDep, store: StoreDep,
                    _: Engineer) -> LabellingTaskRead:
    """Pull the task's annotations from Label Studio now (the worker also does it periodically)."""
    svc = service(request, session, store)
    return await to_read(await svc.reconcile(task_id), svc.repo)


async def _complete(app: Any, task_id: uuid.UUID) -> None:
    try:
        async with app.state.db.transaction() as session:
            svc = LabellingService(session, app.state.store, app.state.settings)
            await svc.maybe_complete(await svc.get(task_id, lock=True))
    except Exception as exc:  # noqa: BLE001 - the reconciliation completes it later
        log.warning("labelling_completion_failed", task_id=str(task_id), error=repr(exc))


@webhook_router.post("/labelstudio")
async def labelstudio_webhook(request: Request, session: SessionDep, store: StoreDep,
                              background: BackgroundTasks) -> dict[str, str]:
    """Label Studio's webhook, verified by the shared-secret header; answered at once (completion follows)."""
    secret = request.app.state.settings.labelstudio_webhook_secret.get_secret_value()
    given = request.headers.get(WEBHOOK_SECRET_HEADER, "")
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        raise WebhookRejected(f"missing or wrong {WEBHOOK_SECRET_HEADER} header")
    body = await request.body()
    if len(body) > 16 * 1024 * 1024:
        raise InvalidLabellingTask("the webhook payload is too large")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidLabellingTask("the webhook payload is not JSON") from exc
    if not isinstance(payload, dict):
        raise InvalidLabellingTask("the webhook payload must be a JSON object")
    for task_id in await service(request, session, store).on_webhook(payload):
        background.add_task(_complete, request.app, task_id)
    return {"status": "ok"}
