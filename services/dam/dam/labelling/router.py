from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request

from dam.config import SettingsDep
from dam.document.service import require_storable
from dam.labelling.exceptions import InvalidLabellingTask, WebhookRejected
from dam.labelling.models import LabellingTask
from dam.labelling.reconcile import complete_after_webhook
from dam.labelling.schemas import AnnotationsIn, LabellingTaskCreate, LabellingTaskRead
from dam.labelling.service import LabellingService
from mlife_shared.app import SessionDep, StoreDep
from mlife_shared.auth import Engineer, Tester, Viewer
from mlife_shared.plugins.seams.labelling import WebhookRefused

router = APIRouter(prefix="/labelling-tasks", tags=["labelling"])
webhook_router = APIRouter(prefix="/webhooks", tags=["labelling"])


async def labelling_service(request: Request, session: SessionDep, store: StoreDep,
                      settings: SettingsDep) -> LabellingService:
    return LabellingService(session, store, settings, request.app.state.plugins)


LabellingServiceDep = Annotated[LabellingService, Depends(labelling_service)]


def label_studio_id(external: str | None) -> int | None:
    """A tool's id as Label Studio's integer (the read shape from before connectors)."""
    return int(external) if external is not None and external.isdigit() else None


async def to_read(t: LabellingTask, svc: LabellingService) -> LabellingTaskRead:
    total, done = await svc.progress(t)
    return LabellingTaskRead(id=t.id, document_id=t.document_id, document_version=t.document_version, kind=t.kind,
                             labels=t.labels, label_config=t.label_config, prelabel_source=t.prelabel_source,
                             status=t.status, items_key=t.items_key, item_count=total, annotated_count=done,
                             connector=t.connector, external_project=t.external_project,
                             ls_project_id=label_studio_id(t.external_project) if t.connector == "labelstudio" else None,
                             completed_version=t.completed_version,
                             created_at=t.created_at, completed_at=t.completed_at)


@router.post("", status_code=201)
async def create_task(body: LabellingTaskCreate, svc: LabellingServiceDep, identity: Engineer) -> LabellingTaskRead:
    """Create a labelling task over selected rows, with pre-labels; pushed to Label Studio when configured."""
    return await to_read(await svc.create(body, identity.username, identity), svc)


@router.get("")
async def list_tasks(svc: LabellingServiceDep, _: Viewer, status: str | None = None,
                     document_id: uuid.UUID | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100,
                     offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0) -> list[LabellingTaskRead]:
    """Labelling tasks, newest first."""
    require_storable("the status", status)
    return [await to_read(t, svc) for t in await svc.find(status=status, document_id=document_id, limit=limit,
                                                          offset=offset)]


@router.get("/{task_id}")
async def get_task(task_id: uuid.UUID, svc: LabellingServiceDep, _: Viewer) -> LabellingTaskRead:
    """One labelling task with its progress."""
    return await to_read(await svc.get(task_id), svc)


@router.get("/{task_id}/items")
async def get_items(task_id: uuid.UUID, svc: LabellingServiceDep, _: Viewer) -> list[dict[str, Any]]:
    """The task's items: file, pre-label, annotation (when in) and the tool's task id."""
    return [{"item_id": str(i.id), "md5": i.md5, "position": i.position, "prelabel": i.prelabel,
             "annotation": i.annotation, "annotated_at": i.annotated_at, "external_id": i.external_id,
             "ls_task_id": label_studio_id(i.external_id)}
            for i in await svc.items(task_id)]


@router.post("/{task_id}/annotations")
async def add_annotations(task_id: uuid.UUID, body: AnnotationsIn, svc: LabellingServiceDep,
                          _: Tester) -> LabellingTaskRead:
    """Record annotations from any labelling system; a task with every item annotated completes."""
    return await to_read(await svc.add_annotations(task_id, body), svc)


@router.post("/{task_id}/reconcile")
async def reconcile(task_id: uuid.UUID, svc: LabellingServiceDep, _: Engineer) -> LabellingTaskRead:
    """Pull the task's annotations from its labelling tool now (the API also does it periodically)."""
    return await to_read(await svc.reconcile(task_id), svc)


@webhook_router.post("/{connector}")
async def labelling_webhook(request: Request, svc: LabellingServiceDep, background: BackgroundTasks,
                            connector: Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
                            ) -> dict[str, str]:
    """A labelling tool's webhook (`labelstudio`: verified by the shared-secret header), verified by its connector
    plugin; answered at once (completion follows)."""
    body = await request.body()
    if len(body) > 16 * 1024 * 1024:
        raise InvalidLabellingTask("the webhook payload is too large")
    try:
        complete = await svc.on_webhook(connector, dict(request.headers), body)
    except WebhookRefused as exc:
        raise WebhookRejected(str(exc) or "the webhook is not from the tool") from exc
    except ValueError as exc:
        raise InvalidLabellingTask(f"the webhook payload is malformed: {exc}") from exc
    # completion writes a document version: a job of its own after the answer, committed there
    for task_id in complete:
        background.add_task(complete_after_webhook, request.app, task_id)
    return {"status": "ok"}
