"""The built-in labelling connector (the `labelstudio` entry point of `mlife.labelling`): Label Studio over its
HTTP API (httpx): projects with a labelling config, tasks imported with pre-labels as predictions, a webhook that
calls DAM back with a shared-secret header, and the export used to reconcile (Label Studio never retries a
webhook)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

import httpx
import structlog

from dam.labelling.exceptions import LabelStudioUnavailable
from mlife_shared.plugins.seams.labelling import (
    Connection,
    ExternalAnnotation,
    ItemSpec,
    Kind,
    ProjectSpec,
    WebhookRefused,
)

log = structlog.get_logger(__name__)
WEBHOOK_SECRET_HEADER = "X-MLife-Webhook-Secret"
ACTIONS = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED"]


def label_config(kind: str, labels: list[str], field: str = "image") -> str:
    tag = {"image": "Image", "audio": "Audio", "text": "Text", "video": "Video"}.get(field, "Image")
    choices = "".join(f"<Label value={quoteattr(lb)}/>" if kind == "detection" else f"<Choice value={quoteattr(lb)}/>"
                      for lb in labels)
    control = (f'<RectangleLabels name="label" toName="{field}">{choices}</RectangleLabels>' if kind == "detection"
               else f'<Choices name="label" toName="{field}" choice="single">{choices}</Choices>')
    return f'<View><{tag} name="{field}" value="${field}"/>{control}</View>'


def annotation_from_result(result: list[dict[str, Any]], kind: str) -> Any:
    """DAM's annotation from a Label Studio `result`: a class label, or `{"boxes": [...]}` in pixels."""
    if kind == "detection":
        boxes = []
        for r in result:
            v = r.get("value")
            labels = v.get("rectanglelabels") if isinstance(v, dict) else None
            if not isinstance(v, dict) or not isinstance(labels, list) or not labels:
                continue
            w, h = r.get("original_width"), r.get("original_height")
            if w and h:
                box = {"label": labels[0], "x": v.get("x", 0) * w / 100, "y": v.get("y", 0) * h / 100,
                       "width": v.get("width", 0) * w / 100, "height": v.get("height", 0) * h / 100}
            else:
                box = {"label": labels[0], "x": v.get("x", 0), "y": v.get("y", 0), "width": v.get("width", 0),
                       "height": v.get("height", 0), "unit": "percent"}
            boxes.append(box)
        return {"boxes": boxes}
    for r in result:
        v = r.get("value")
        choices = v.get("choices") if isinstance(v, dict) else None
        if isinstance(choices, list) and choices:
            return choices[0] if len(choices) == 1 else {"labels": choices}
    return None


def latest_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    anns = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not anns:
        return None
    latest: dict[str, Any] = max(anns, key=lambda a: (a.get("updated_at") or a.get("created_at") or "", a.get("id") or 0))
    return latest


class LabelStudio:
    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.AsyncClient(base_url=self.url, timeout=timeout,
                                        headers={"Authorization": f"Token {token}"})

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = await self.client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise LabelStudioUnavailable(f"Label Studio at {self.url} is unreachable: {type(exc).__name__}") from exc
        if r.status_code >= 300:  # its answer goes to the log, not to the API caller
            log.warning("labelstudio_error", method=method, path=path, status=r.status_code, body=r.text[:300])
            raise LabelStudioUnavailable(f"Label Studio answered {r.status_code} to {method} {path}")
        return r.json() if r.content else None

    async def create_project(self, title: str, config: str, description: str = "") -> int:
        body = await self._call("POST", "/api/projects", json={"title": title[:50], "label_config": config,
                                                                "description": description})
        return int(body["id"])

    async def add_webhook(self, project_id: int, url: str, secret: str) -> int:
        body = await self._call("POST", "/api/webhooks/", json={
            "project": project_id, "url": url, "send_payload": True, "send_for_all_actions": False,
            "actions": ACTIONS, "headers": {WEBHOOK_SECRET_HEADER: secret}, "is_active": True})
        return int(body["id"])

    async def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        body = await self._call("POST", f"/api/projects/{project_id}/import", params={"return_task_ids": "true"},
                                json=tasks)
        ids = body.get("task_ids") or []
        if len(ids) != len(tasks):
            raise LabelStudioUnavailable(f"Label Studio imported {len(ids)} of {len(tasks)} tasks")
        return [int(i) for i in ids]

    async def annotated_tasks(self, project_id: int) -> list[dict[str, Any]]:
        body = await self._call("GET", f"/api/projects/{project_id}/export", params={"exportType": "JSON"})
        return list(body or [])


def webhook_annotations(payload: dict[str, Any]) -> list[ExternalAnnotation]:
    """The annotations a Label Studio webhook carries (one, or a list for ANNOTATIONS_CREATED), cancelled ones left
    out, each with its project and Label Studio task id."""
    if payload.get("action") not in ACTIONS:
        return []
    raw = payload.get("annotation")
    annotations = raw if isinstance(raw, list) else [raw]
    ls_task: dict[str, Any] = payload["task"] if isinstance(payload.get("task"), dict) else {}
    project_default = ls_task.get("project") or (payload.get("project") or {}).get("id")
    out = []
    for annotation in annotations:
        if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
            continue
        task_ref = annotation.get("task")
        ls_task_id = task_ref.get("id") if isinstance(task_ref, dict) else task_ref
        if not isinstance(raw, list) and ls_task.get("id") is not None:
            ls_task_id = ls_task["id"]
        project = annotation.get("project") or project_default
        if isinstance(ls_task_id, int) and isinstance(project, int):
            out.append(ExternalAnnotation(project=str(project), external_id=str(ls_task_id),
                                          result=annotation.get("result") or []))
    return out


class LabelStudioConnector:
    """Label Studio behind the labelling protocol (`mlife_shared.plugins.seams.labelling`)."""

    name = "labelstudio"
    api = ">=1,<2"
    description = "Label Studio (HTTP API): projects, tasks with pre-labels, webhook and export polling"

    def label_config(self, spec: ProjectSpec) -> str:
        return label_config(spec.kind, list(spec.labels), spec.field)

    def _client(self, connection: Connection) -> LabelStudio:
        if not connection.url or not connection.token:
            raise LabelStudioUnavailable("no Label Studio is configured (MLIFE_DAM_LABELSTUDIO_URL/_TOKEN)")
        return LabelStudio(connection.url, connection.token)

    async def create_project(self, connection: Connection, spec: ProjectSpec) -> str:
        ls = self._client(connection)
        try:
            project = await ls.create_project(spec.title, spec.label_config or self.label_config(spec),
                                              spec.description)
            if connection.webhook_url:
                await ls.add_webhook(project, connection.webhook_url, connection.webhook_secret or "")
        finally:
            await ls.aclose()
        return str(project)

    async def import_tasks(self, connection: Connection, project: str, spec: ProjectSpec,
                           items: Sequence[ItemSpec]) -> list[str]:
        tasks = []
        for i in items:
            t: dict[str, Any] = {"data": {spec.field: i.url, "md5": i.md5, "item_id": i.item_id}}
            if i.prediction:
                t["predictions"] = [{"model_version": i.prelabel_source or "dam", "result": i.prediction}]
            tasks.append(t)
        ls = self._client(connection)
        try:
            return [str(x) for x in await ls.import_tasks(int(project), tasks)]
        finally:
            await ls.aclose()

    async def fetch_annotations(self, connection: Connection, project: str) -> list[ExternalAnnotation]:
        ls = self._client(connection)
        try:
            exported = await ls.annotated_tasks(int(project))
        finally:
            await ls.aclose()
        out = []
        for t in exported:
            ann = latest_annotation(t)
            if isinstance(t.get("id"), int) and ann is not None:
                out.append(ExternalAnnotation(project=project, external_id=str(t["id"]), result=ann.get("result") or []))
        return out

    def webhook(self, connection: Connection, headers: Mapping[str, str], body: bytes) -> list[ExternalAnnotation]:
        secret = connection.webhook_secret or ""
        given = next((v for k, v in headers.items() if k.lower() == WEBHOOK_SECRET_HEADER.lower()), "")
        if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
            raise WebhookRefused(f"missing or wrong {WEBHOOK_SECRET_HEADER} header")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise ValueError("the webhook payload is not JSON") from exc
        if not isinstance(payload, dict):
            raise ValueError("the webhook payload must be a JSON object")
        return webhook_annotations(payload)

    def annotation(self, result: Any, kind: Kind) -> Any:
        if not isinstance(result, list):
            return None
        return annotation_from_result([r for r in result if isinstance(r, dict)], kind)
