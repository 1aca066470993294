"""The web UI in a browser page (tests/ui): a page that records what went wrong, and logging in."""

from __future__ import annotations

from tests.support.stack import PASSWORD, Stack


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
        real = [e for e in self.errors if not e.startswith("  (HTTP") and not any(x in e for x in expected)]
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
