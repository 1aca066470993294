"""Label Studio over its HTTP API (httpx): projects with a labelling config, tasks imported with
pre-labels as predictions, a webhook that calls DAM back with a shared-secret header, and the export
used to reconcile (Label Studio never retries a webhook)."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

import httpx
import structlog

from dam.labelling.exceptions import LabelStudioUnavailable

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
            v = r.get("value") or {}
            labels = v.get("rectanglelabels") or []
            if not labels:
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
        choices = (r.get("value") or {}).get("choices")
        if choices:
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
