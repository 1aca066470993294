"""The cleaners over a document version (POST|GET /documents/{id}/findings) on PostgreSQL and the S3 server: the
findings are kept per version and replaced by the next run; the class list comes from the request or the latest
labelling task; an outside cleaner found by its entry point is run exactly like a built-in."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points

import httpx

from mlife_shared.plugins import SEAMS, seams_of
from mlife_shared.plugins.registry import Plugins
from mlife_shared.plugins.seams.cleaners import Context, Finding, Item
from tests.dam.helpers import md5
from tests.dam.test_cleaners import flat, picture


class OddWidth:
    """An outside cleaner: flags images of an odd width."""

    name = "odd_width"
    api = ">=1,<2"
    description = "images whose width is odd"

    def check(self, items: Sequence[Item], context: Context) -> list[Finding]:
        return [Finding(self.name, "odd_width", "info", f"the width {i.width} is odd", md5=i.md5, position=i.position)
                for i in items if i.width is not None and i.width % 2]


def with_outside_cleaner(client: httpx.AsyncClient) -> None:
    """The app's registry as if a package registering `odd_width` under mlife.cleaners were installed."""
    eps = {seam: list(entry_points(group=SEAMS[seam].group)) for seam in seams_of("dam")}
    eps["cleaners"].append(EntryPoint("odd_width", f"{__name__}:OddWidth", SEAMS["cleaners"].group))
    client.app.state.plugins = Plugins(seams_of("dam"), eps)  # type: ignore[attr-defined]


async def make_document(dam: httpx.AsyncClient, rows: list[tuple[bytes, object]]) -> str:
    body = []
    for n, (data, annotation) in enumerate(rows):
        r = await dam.post("/files", content=data, params={"name": f"q/{n}.png"})
        assert r.status_code in (200, 201), r.text
        body.append({"md5": md5(data), "annotation": annotation})
    r = await dam.post("/documents", params={"name": "quality"}, json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_a_run_over_a_document_keeps_its_findings_per_version(dam_s3: httpx.AsyncClient) -> None:
    dam = dam_s3
    a, twin, blank, other = picture(21), picture(21, fmt="JPEG", quality=75), flat(90), picture(22)
    doc = await make_document(dam, [(a, "cat"), (twin, "cat"), (blank, "dog"),
                                    (other, {"boxes": [{"label": "zebra", "x": 1, "y": 1, "width": 4, "height": 4}]})])
    never = (await dam.get(f"/documents/{doc}/findings")).json()
    assert never["checked"] is False and never["ran_at"] is None and never["findings"] == [] and never["total"] == 0
    r = await dam.post(f"/documents/{doc}/findings", json={"classes": ["cat", "dog"]})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["checked"] is True and report["version"] == 1 and report["row_count"] == 4 and report["checked_count"] == 4
    assert report["classes"] == ["cat", "dog"] and "near_duplicates" in report["cleaners"]
    found = sorted((f["position"], f["code"]) for f in report["findings"])
    assert found == [(0, "near_duplicate"), (1, "near_duplicate"), (2, "blank_image"), (3, "label_outside_classes")]
    assert {(c["code"], c["count"]) for c in report["counts"]} == {("near_duplicate", 2), ("blank_image", 1),
                                                                   ("label_outside_classes", 1)}
    zebra = next(f for f in report["findings"] if f["code"] == "label_outside_classes")
    assert zebra["md5"] == md5(other) and zebra["severity"] == "error" and "'zebra'" in zebra["message"]
    again = (await dam.post(f"/documents/{doc}/findings", json={"classes": ["cat", "dog", "zebra"],
                                                                 "cleaners": ["label_outside_classes", "blank"]})).json()
    assert [(f["position"], f["code"]) for f in again["findings"]] == [(2, "blank_image")]  # replaced, not added
    page = (await dam.get(f"/documents/{doc}/findings", params={"severity": "warning", "limit": 1})).json()
    assert page["total"] == 1 and page["findings"][0]["cleaner"] == "blank"
    assert (await dam.get(f"/documents/{doc}/findings", params={"version": 2})).status_code == 404  # no version 2


async def test_the_class_list_defaults_to_the_latest_labelling_task(dam: httpx.AsyncClient) -> None:
    doc = await make_document(dam, [(picture(31), "cat"), (picture(32), "bird")])
    report = (await dam.post(f"/documents/{doc}/findings", json={})).json()
    assert report["classes"] is None and not [f for f in report["findings"] if f["code"] == "label_outside_classes"]
    r = await dam.post("/labelling-tasks", json={"document_id": doc, "labels": ["cat", "dog"], "label_studio": False})
    assert r.status_code == 201, r.text
    report = (await dam.post(f"/documents/{doc}/findings", json={})).json()
    assert report["classes"] == ["cat", "dog"]
    assert [(f["position"], f["code"]) for f in report["findings"]] == [(1, "label_outside_classes")]


async def test_bad_requests_say_what_to_fix(dam: httpx.AsyncClient) -> None:
    doc = await make_document(dam, [(picture(41), "cat")])
    unknown = await dam.post(f"/documents/{doc}/findings", json={"cleaners": ["nope"]})
    assert unknown.status_code == 422 and "'nope' is not installed" in unknown.json()["detail"]
    assert "near_duplicates" in unknown.json()["detail"]
    assert (await dam.post(f"/documents/{doc}/findings", json={"version": 9})).status_code == 404
    missing = await dam.post("/documents/00000000-0000-0000-0000-000000000000/findings", json={})
    assert missing.status_code == 404
    bad_filter = await dam.post(f"/documents/{doc}/findings", json={"filter": {"columns": {"nope": "x"}}})
    assert bad_filter.status_code == 422


async def test_an_outside_cleaner_runs_like_a_builtin(dam: httpx.AsyncClient) -> None:
    with_outside_cleaner(dam)
    odd = picture(51, size=(33, 20))
    r = await dam.post("/files", content=odd)
    assert r.status_code == 201 and [f["cleaner"] for f in r.json()["findings"]] == ["odd_width"]
    doc = await make_document(dam, [(odd, "cat"), (picture(52), "cat")])
    report = (await dam.post(f"/documents/{doc}/findings", json={"cleaners": ["odd_width"]})).json()
    assert report["cleaners"] == ["odd_width"]
    assert [(f["position"], f["message"]) for f in report["findings"]] == [(0, "the width 33 is odd")]
    listing = (await dam.get("/plugins")).json()
    assert {p["name"]: p["builtin"] for p in listing["plugins"] if p["seam"] == "cleaners"}["odd_width"] is False
