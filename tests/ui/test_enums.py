"""The UI's choices (statuses, severities, sources, roles) are the enums of the merged OpenAPI the UI loads, not
lists copied by hand: the select options equal the schema's values, and a value added to a server enum shows up
in the UI. Deployment targets are plugins: the choices are the active ones MSM lists."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.stack import Stack
from tests.support.ui import Page, login


def enum_of(schema: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    if "$ref" in schema:
        return enum_of(spec["components"]["schemas"][schema["$ref"].split("/")[-1]], spec)
    if "enum" in schema:
        return list(schema["enum"])
    for alt in schema.get("anyOf", []):
        if values := enum_of(alt, spec):
            return values
    return []


def prop(spec: dict[str, Any], name: str, field: str) -> list[str]:
    return enum_of(spec["components"]["schemas"][name]["properties"][field], spec)


def param(spec: dict[str, Any], method: str, path: str, name: str) -> list[str]:
    p = next(x for x in spec["paths"][path][method]["parameters"] if x["name"] == name)
    return enum_of(p["schema"], spec)


async def options(p: Any, selector: str) -> list[str]:
    return await p.eval_on_selector(selector, "s => [...s.options].map(o => o.value)")


async def openapi(stack: Stack) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.url) as c:
        return (await c.get("/openapi.json")).json()


async def test_select_options_are_the_schema_enums(page: Page, stack: Stack) -> None:
    spec = await openapi(stack)
    await login(page, stack, "maintainer")
    p = page.page
    await p.click("nav a[href='#/badcases']")
    search = "form[aria-label='Filter badcases']"
    await p.wait_for_selector(search)
    for field in ("status", "severity", "source"):
        assert await options(p, f"{search} select[name={field}]") == ["", *param(spec, "get", "/api/bam/badcases", field)]
    assert await options(p, "form[aria-label='Report a badcase'] select[name=severity]") == prop(spec, "BadcaseCreate",
                                                                                                   "severity")
    await p.click("nav a[href='#/account']")
    await p.wait_for_selector("form[aria-label='Create a user']")
    assert await options(p, "form[aria-label='Create a user'] select[name=role]") == prop(spec, "UserCreate", "role")
    if "msm" in stack.up:
        await p.click("nav a[href='#/deployments']")
        await p.wait_for_selector("form[aria-label='Request a deployment']")
        async with httpx.AsyncClient(base_url=stack.url, headers=stack.auth("viewer")) as c:
            listed = (await c.get("/api/msm/plugins")).json()["plugins"]
        targets = [x["name"] for x in listed if x["seam"] == "deploy_targets" and x["state"] == "active"]
        assert {"local", "docker", "edge"} <= set(targets)  # deploy targets are plugins: the active ones are offered
        assert await options(p, "form[aria-label='Request a deployment'] select[name=target]") == targets
    assert page.console_errors() == []


async def test_a_value_added_to_a_server_enum_appears(page: Page, stack: Stack) -> None:
    """The OpenAPI the browser reads is the server's, with one value added to the badcase status and the role
    enums: the status filter and the role choices offer it (a hand-copied list would not)."""
    p = page.page

    async def with_new_values(route: Any) -> None:
        response = await route.fetch()
        spec = await response.json()
        for where in (spec["components"]["schemas"]["BadcaseUpdate"]["properties"]["status"]["anyOf"][0],
                      next(x for x in spec["paths"]["/api/bam/badcases"]["get"]["parameters"]
                           if x["name"] == "status")["schema"]["anyOf"][0],
                      spec["components"]["schemas"]["UserCreate"]["properties"]["role"]):
            where["enum"] = [*where["enum"], "escalated" if "new" in where["enum"] else "auditor"]
        await route.fulfill(response=response, body=json.dumps(spec), content_type="application/json")

    await p.route("**/openapi.json", with_new_values)
    await login(page, stack, "maintainer")
    await p.click("nav a[href='#/badcases']")
    search = "form[aria-label='Filter badcases']"
    await p.wait_for_selector(search)
    assert (await options(p, f"{search} select[name=status]"))[-1] == "escalated"
    await p.click("nav a[href='#/account']")
    await p.wait_for_selector("form[aria-label='Create a user']")
    roles = await options(p, "form[aria-label='Create a user'] select[name=role]")
    assert roles[-1] == "auditor" and roles[:4] == ["viewer", "tester", "engineer", "maintainer"]
    assert await p.query_selector("form[aria-label='Create a user']") is not None, "a maintainer still manages users"
    assert page.console_errors() == []
