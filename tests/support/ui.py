"""The web UI in a browser page (tests/ui): a page that records what went wrong, logging in, and the few ways
the browser tests seed data through the services' APIs (as a client would) and wait for the platform."""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from PIL import Image

from tests.support.stack import PASSWORD, Stack

T = TypeVar("T")
NULL = re.compile(r"\bnull\b|\bundefined\b|\[object Object\]")


class Page:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, page: object) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("dialog", lambda d: self.errors.append(f"dialog opened: {d.message}"))
        page.on("response", lambda r: self.errors.append(f"  (HTTP {r.status} {r.request.method} {r.url})")
                if r.status >= 400 else None)

    def console_errors(self, *, expected_statuses: tuple[int, ...] = ()) -> list[str]:
        """Console errors and page errors (with the failed responses that explain them). Chromium logs
        every 4xx answer as a console error: an answer the test expects (a gate's 409) is left out."""
        expected = tuple(f"status of {s} " for s in expected_statuses)
        # A list thumbnail of a badcase naming a file its store does not hold (other tests on the shared stack file
        # such badcases) answers 404 and the list shows an icon instead: expected, one console error each.
        missing_thumbnails = sum(1 for e in self.errors if e.startswith("  (HTTP 404 GET") and "/preview?size=" in e)
        real = []
        for e in self.errors:
            if e.startswith("  (HTTP") or any(x in e for x in expected):
                continue
            if missing_thumbnails and "status of 404 " in e:
                missing_thumbnails -= 1
                continue
            real.append(e)
        return real + [e for e in self.errors if e.startswith("  (HTTP")] if real else []


async def login(p: Page, stack: Stack, role: str) -> None:
    page = p.page
    await page.goto(stack.url + "/")
    await page.wait_for_selector("form[aria-label='Log in']")
    await page.keyboard.type(f"{role}-user")  # the user name field has focus
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("header:not([hidden])")
    await page.wait_for_selector("h1:text('Dashboard')")


async def open_as(p: Page, stack: Stack, role: str, hash_: str) -> Any:
    """Log in with `role` and open the page at `#/…`; the Playwright page."""
    await login(p, stack, role)
    await p.page.goto(f"{stack.url}/{hash_}")
    await p.page.wait_for_selector("main h1")
    return p.page


def require(stack: Stack, *services: str) -> None:
    """A browser test of a service's page needs the service: a service that is down fails the test (never a pass)."""
    down = [s for s in services if s not in stack.up]
    if down:
        raise AssertionError(f"{', '.join(down)} must be up: {stack.down}")


def client(stack: Stack, role: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.url, headers=stack.auth(role), timeout=60)


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, tries: int = 240) -> T:
    """The first non-empty answer of `probe`, polled every half second (events cross the bus meanwhile)."""
    for _ in range(tries):
        if found := await probe():
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"never happened: {what}")


async def register_model(stack: Stack, name: str, function: str | None = None) -> dict[str, Any]:
    """A registered ONNX version of model `name` (a 4-class identity classifier), its model serving `function`
    (none: left unset)."""
    from tests.msm.onnx_models import identity_classifier

    async with client(stack, "engineer") as c:
        r = await c.post(f"/api/msm/models/{name}/versions", content=identity_classifier(4),
                         headers={"content-type": "application/octet-stream"})
        assert r.status_code == 201, r.text
        if function is not None:
            assert (await c.patch(f"/api/msm/models/{name}", json={"function": function})).status_code == 200
        return dict(r.json())


async def open_new_model(p: Page, stack: Stack, role: str, prefix: str) -> tuple[Any, str]:
    """A new model with a function of its own (`fn-<name>`) registered, its page opened as `role`: the page, the name."""
    require(stack, "msm")
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await register_model(stack, name, function=f"fn-{name}")
    return await open_as(p, stack, role, f"#/models/{name}"), name


DEPLOYMENT_FORM = "form[aria-label='Request a deployment']"


async def fill_deployment_request(p: Any, endpoint: str, version_id: str) -> str:
    """The deployments page's request form filled with an endpoint name and a model version; its selector."""
    await p.wait_for_selector(DEPLOYMENT_FORM)
    await p.fill(f"{DEPLOYMENT_FORM} input[name=name]", endpoint)
    await p.select_option(f"{DEPLOYMENT_FORM} select[name=version]", version_id)
    return DEPLOYMENT_FORM


async def table_document(stack: Stack, name: str, rows: str | None = None) -> dict[str, Any]:
    """A table document (feature columns and a label, no files): 12 rows of cats and dogs unless `rows` says."""
    rows = rows or "f0,f1,label\n" + "".join(f"{i},{(i * 7) % 5},{'cat' if i % 3 else 'dog'}\n" for i in range(12))
    async with client(stack, "engineer") as c:
        r = await c.post("/api/dam/documents", params={"name": name, "format": "csv"}, content=rows,
                         headers={"content-type": "text/csv"})
        assert r.status_code == 201, r.text
        return dict(r.json())


async def group(stack: Stack, name: str, document_id: str, seed: int = 0,
                **options: Any) -> dict[str, dict[str, Any]]:
    """Group items of one document (a 50/50 split unless `options` say otherwise): the datasets by purpose."""
    body = {"name": name, "documents": [{"id": document_id}], "split": {"train": 0.5, "test": 0.5}, "seed": seed,
            **options}
    async with client(stack, "engineer") as c:
        r = await c.post("/api/dam/datasets", json=body)
        assert r.status_code == 201, r.text
        return {d["purpose"]: d for d in r.json()["datasets"]}


async def create_task(stack: Stack, name: str, dataset_id: str, kind: str = "test", **fields: Any) -> dict[str, Any]:
    """A task (testing unless `kind` says) on a dataset, once MTT has learnt the dataset from `dataset.grouped`."""
    body = {"kind": kind, "name": name, "datasets": [{"dataset_id": dataset_id}], **fields}
    async with client(stack, "engineer") as c:

        async def _create() -> dict[str, Any] | None:
            r = await c.post("/api/mtt/tasks", json=body)
            return dict(r.json()) if r.status_code == 201 else None

        return await eventually(_create, f"MTT knows dataset {dataset_id}")


async def no_null_text(p: Any) -> None:
    """Nothing on the page reads `null`, `undefined` or `[object Object]` (an empty field renders empty)."""
    body = await p.inner_text("main")
    found = NULL.search(body)
    assert found is None, found.group(0) + " in: " + body[:3000]


def png(color: tuple[int, int, int], size: int = 64) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", (size, size), color)
    for i in range(size):  # a pattern, so two colours are not near-duplicates
        img.putpixel((i, (i * 7) % size), (255 - color[0], 255 - color[1], 255 - color[2]))
    img.save(buf, format="PNG")
    return buf.getvalue()


async def chart_points(page: object, container: str) -> list[int]:
    await page.wait_for_selector(f"{container} canvas")
    return [int(x) for x in await page.eval_on_selector_all(f"{container} canvas", "cs => cs.map(c => c.dataset.points)")]
