"""The labelling seam: the labelling tools (connectors) a DAM labelling task is run in.

DAM keeps the task, its items and the annotations; a connector speaks one tool's API. When a task is created with a
connector, DAM calls `create_project` (the task's classes, kind and media field), then `import_tasks` with the items
(each a file URL, its DAM item id and the pre-label in DAM's form) and records the tool's ids. Annotations come back
two ways, both turned into DAM's form by `annotation(result, kind)`:
- poll: `fetch_annotations(connection, project)` lists the latest annotation of every annotated tool task (DAM runs
  it periodically and on `POST /labelling-tasks/{id}/reconcile`);
- webhook: `POST /api/dam/webhooks/<connector>` hands the request's headers and body to `webhook`, which verifies it
  (raise `WebhookRefused`: 401) and returns the annotations it carries (a malformed body: `ValueError`, 422).
A tool with no webhooks returns [] from `webhook` and is polled.

DAM's annotation forms: a class label (str), `{"labels": [...]}`, `{"boxes": [{"label", "x", "y", "width",
"height"}, ...]}` (pixels), or None for nothing usable. A connector's `Connection` is filled by DAM from its settings
for the built-in `labelstudio`; an outside connector reads its tool's address and credentials from its own
configuration (its environment) and gets DAM's public URL and webhook address in the `Connection`.

    class MyTool:
        name = "mytool"
        api = ">=1,<2"
        description = "labelling in MyTool"

        def label_config(self, spec: ProjectSpec) -> str: return ""
        async def create_project(self, connection, spec) -> str: ...            # the tool's project id
        async def import_tasks(self, connection, project, spec, items) -> list[str]: ...   # one id per item, in order
        async def fetch_annotations(self, connection, project) -> list[ExternalAnnotation]: ...
        def webhook(self, connection, headers, body) -> list[ExternalAnnotation]: return []
        def annotation(self, result, kind): ...                                 # the tool's result in DAM's form

    [project.entry-points."mlife.labelling"]
    mytool = "my_package.labelling:MyTool"
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

Kind = Literal["classification", "detection"]


class WebhookRefused(Exception):  # noqa: N818 - the tool's call is refused: a 401, not an error of ours
    """The webhook is not from the tool (missing or wrong secret)."""


@dataclass(frozen=True)
class Connection:
    """Where the tool is and how it reaches DAM back."""

    url: str | None = None
    token: str | None = None
    webhook_url: str | None = None
    """The address the tool calls for its webhooks (DAM's /webhooks/<connector>); None: no webhook, poll only."""
    webhook_secret: str | None = None
    public_url: str | None = None
    """DAM's public address (the gateway's), which the items' file URLs start with."""


@dataclass(frozen=True)
class ProjectSpec:
    title: str
    kind: Kind
    labels: tuple[str, ...]
    field: str = "image"
    """The media field: image, audio, text or video."""
    description: str = ""
    label_config: str = ""
    """The connector's own `label_config(spec)` text, kept with DAM's task."""


@dataclass(frozen=True)
class ItemSpec:
    item_id: str
    url: str
    md5: str | None = None
    width: int | None = None
    height: int | None = None
    prelabel: Any = None
    """A pre-label in DAM's form (None: none)."""
    prediction: Any = None
    """The pre-label in the built-in Label Studio's result form (DAM computes it; other tools may ignore it)."""
    prelabel_source: str | None = None


@dataclass(frozen=True)
class ExternalAnnotation:
    project: str
    external_id: str
    """The tool's id of the task (as `import_tasks` returned it)."""
    result: Any
    """The tool's own result, turned into DAM's form by `annotation(result, kind)`."""


@runtime_checkable
class LabellingConnector(Protocol):
    name: str
    api: str
    description: str

    def label_config(self, spec: ProjectSpec) -> str:
        """The tool's labelling configuration for these classes (kept with the task; "" if the tool has none)."""
        ...

    async def create_project(self, connection: Connection, spec: ProjectSpec) -> str:
        """Create the tool's project (and its webhook when `connection.webhook_url`); its id."""
        ...

    async def import_tasks(self, connection: Connection, project: str, spec: ProjectSpec,
                           items: Sequence[ItemSpec]) -> list[str]:
        """Import the items with their pre-labels; the tool's task ids, one per item, in order."""
        ...

    async def fetch_annotations(self, connection: Connection, project: str) -> list[ExternalAnnotation]:
        """The latest annotation of every annotated task of the project (polling)."""
        ...

    def webhook(self, connection: Connection, headers: Mapping[str, str], body: bytes) -> list[ExternalAnnotation]:
        """The annotations a webhook call carries; raises WebhookRefused when it is not from the tool, ValueError
        when the body is malformed."""
        ...

    def annotation(self, result: Any, kind: Kind) -> Any:
        """The tool's result in DAM's form (a label, {"labels": [...]}, {"boxes": [...]}), None if unusable."""
        ...


PROTOCOL = LabellingConnector


def _is_dam_form(value: Any) -> bool:
    if value is None or isinstance(value, str):
        return True
    if isinstance(value, dict) and isinstance(value.get("labels"), list):
        return all(isinstance(v, str) for v in value["labels"])
    if isinstance(value, dict) and isinstance(value.get("boxes"), list):
        return all(isinstance(b, dict) and "label" in b for b in value["boxes"])
    return False


def conformance(plugin: Any) -> None:
    """Behavioural checks that need no running tool (raise AssertionError with what is wrong): the async methods
    are coroutines, the label config is text, a foreign webhook is refused or yields nothing, and a garbage result
    turns into None or a DAM annotation, never an exception."""
    for method in ("create_project", "import_tasks", "fetch_annotations"):
        assert inspect.iscoroutinefunction(getattr(plugin, method)), f"{method} must be an async method"
    for kind in ("classification", "detection"):
        spec = ProjectSpec(title="conformance", kind=kind, labels=("cat", "dog"))
        config = plugin.label_config(spec)
        assert isinstance(config, str), f"label_config must return text, not {type(config).__name__}"
        garbage_results: tuple[Any, ...] = (None, [], {}, "x", [{"value": {}}], 3)
        for garbage in garbage_results:
            value = plugin.annotation(garbage, kind)
            assert _is_dam_form(value), f"annotation({garbage!r}, {kind!r}) gave {value!r}, not DAM's form"
    connection = Connection(webhook_secret="a-secret", public_url="http://127.0.0.1:8000")
    try:
        got = plugin.webhook(connection, {}, b'{"action": "SOMETHING_ELSE"}')
    except (WebhookRefused, ValueError):
        got = []
    assert isinstance(got, list), "webhook must return a list of ExternalAnnotation"
    assert all(isinstance(a, ExternalAnnotation) for a in got), "webhook must return ExternalAnnotation items"
    assert not got, "a webhook without the secret must not yield annotations"
