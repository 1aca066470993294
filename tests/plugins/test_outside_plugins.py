"""Issue 16's "done when": an outside package adds a converter, a cleaner and an evaluator with no change to MLife.

`examples/plugins` (mlife-example-plugins) and a package of broken plugins are installed into a folder of their own
(tests/plugins/conftest.py) and a dedicated platform — every service and the gateway as processes, as in
tests/support/stack.py — is started with that folder on PYTHONPATH. Then: the built-in VOC converter and the
example's Create ML converter import their formats, the example cleaner flags an upload, the example evaluator
scores a testing task (as do the built-in classification and segmentation ones), and GET /api/<svc>/plugins
lists them active with the broken ones in their states (the services started regardless). The services are
restarted without the folder: the example's plugins are listed `absent`, asking for one is a 422 that says so,
and the rest works."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.plugins.conftest import EXAMPLE
from tests.support.stack import Stack, restart_services, start_stack, stop_stack
from tests.support.ui import client, create_task, eventually, group, register_model, require

# both tests use the module's plugin folder: one worker installs it once
pytestmark = pytest.mark.xdist_group("plugins")

EXAMPLE_PLUGINS = {("converters", "createml"), ("cleaners", "aspect-ratio"), ("evaluators", "top-k")}


def test_the_example_package_passes_its_own_tests_as_installed(plugin_dir: Path) -> None:
    """Its tests (the conformance kit, then behaviour) against the installed copy, as its authors would run them."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          str(EXAMPLE / "tests")], env=env, capture_output=True, text=True, cwd=EXAMPLE)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-500:]


def png(width: int, height: int, seed: int) -> bytes:
    """A grey PNG with a gradient (not blank: the built-in cleaners have nothing to say about it)."""
    image = Image.new("L", (width, height))
    image.putdata([(x * 7 + y * 13 + seed) % 256 for y in range(height) for x in range(width)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def lit_pixels(*lit: int, seed: int = 0) -> bytes:
    """A 2x2 grey PNG lighting pixels in order of brightness (what tests.msm's identity classifier reads)."""
    image = Image.new("L", (2, 2), 0)
    for rank, pixel in enumerate(lit):
        image.putpixel((pixel % 2, pixel // 2), 255 - 60 * rank)
    image.putpixel((1, 1) if 3 not in lit else (0, 0), seed)  # unique bytes per set, never the brightest
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def upload(c: httpx.AsyncClient, name: str, data: bytes) -> dict[str, Any]:
    r = await c.post("/api/dam/files", params={"name": name}, content=data,
                     headers={"content-type": "application/octet-stream"})
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


async def listing(c: httpx.AsyncClient, service: str) -> dict[tuple[str, str], dict[str, Any]]:
    r = await c.get(f"/api/{service}/plugins")
    assert r.status_code == 200, r.text
    assert r.json()["api_version"] == "1.0"
    return {(p["seam"], p["name"]): p for p in r.json()["plugins"]}


async def check_listed(stack: Stack) -> None:
    """The example's plugins active beside the built-ins; the broken ones each in its state, with its message."""
    async with client(stack, "viewer") as c:
        found = {**await listing(c, "dam"), **await listing(c, "mtt")}
        assert await listing(c, "bam") == {}
    for key in EXAMPLE_PLUGINS:
        p = found[key]
        assert (p["state"], p["builtin"], p["distribution"], p["version"], p["api"]) == \
               ("active", False, "mlife-example-plugins", "0.1.0", ">=1,<2"), p
    assert any(p["builtin"] and p["state"] == "active" for (seam, _), p in found.items() if seam == "converters")
    missing, raises = found[("cleaners", "needs-missing")], found[("cleaners", "raises")]
    future = found[("evaluators", "from-the-future")]
    assert missing["state"] == "missing_dependency" and "mlife_no_such_module_for_tests" in missing["error"]
    assert raises["state"] == "load_error" and "broken on purpose" in raises["error"]
    assert future["state"] == "incompatible" and "this MLife has 1.0" in future["error"]
    assert all(p["distribution"] == "mlife-broken-plugins" for p in (missing, raises, future))


async def check_formats(stack: Stack, tag: str) -> None:
    """A Pascal VOC file (built-in) and a Create ML document (the example's) each import; Create ML exports."""
    voc_image, cm_image = png(64, 48, 1), png(80, 60, 2)
    async with client(stack, "engineer") as c:
        await upload(c, f"voc/{tag}-street.png", voc_image)
        await upload(c, f"createml/{tag}-cats.png", cm_image)
        voc = (f"<annotation><filename>{tag}-street.png</filename><size><width>64</width><height>48</height>"
               "<depth>1</depth></size><object><name>car</name><bndbox><xmin>4</xmin><ymin>6</ymin><xmax>30</xmax>"
               "<ymax>40</ymax></bndbox></object></annotation>")
        r = await c.post("/api/dam/documents", params={"name": f"voc-{tag}"}, content=voc,
                         headers={"content-type": "application/xml"})
        assert r.status_code == 201, r.text
        [row] = (await c.get(f"/api/dam/documents/{r.json()['id']}/rows")).json()["items"]
        [box] = row["annotation"]["boxes"]
        assert (box["label"], box["x"], box["y"], box["width"], box["height"]) == ("car", 4, 6, 26, 34), row

        createml = [{"image": f"{tag}-cats.jpg", "annotations": [
            {"label": "cat", "coordinates": {"x": 40, "y": 30, "width": 20, "height": 10}}]}]
        r = await c.post("/api/dam/documents", params={"name": f"createml-{tag}", "format": "createml"},
                         content=json.dumps(createml), headers={"content-type": "application/json"})
        assert r.status_code == 201, r.text
        doc = r.json()["id"]
        [row] = (await c.get(f"/api/dam/documents/{doc}/rows")).json()["items"]
        assert row["md5"] and row["annotation"]["boxes"] == [
            {"label": "cat", "x": 30, "y": 25, "width": 20, "height": 10}], row
        r = await c.get(f"/api/dam/documents/{doc}/export", params={"format": "createml"})
        assert r.status_code == 200, r.text
        [entry] = r.json()
        assert entry["annotations"] == createml[0]["annotations"] and f"{tag}-cats" in entry["image"]
        bad = await c.post("/api/dam/documents", params={"name": f"bad-{tag}", "format": "createml"},
                           content=b'[{"image": "x.jpg", "annotations": [{"label": "cat"}]}]')
        assert bad.status_code == 422 and "coordinates" in bad.text, bad.text


async def check_cleaner(stack: Stack) -> None:
    """The example's cleaner flags a strip of an image on upload (and its file record keeps it), not a square."""
    async with client(stack, "tester") as c:
        strip, square = await upload(c, "strip.png", png(200, 20, 3)), await upload(c, "square.png", png(40, 40, 4))
        for file in (strip, square, (await c.get(f"/api/dam/files/{strip['md5']}")).json()):
            assert isinstance(file.get("findings"), list), file
    flags = [f for f in strip["findings"] if f["cleaner"] == "aspect-ratio"]
    assert [(f["code"], f["severity"]) for f in flags] == [("extreme_aspect_ratio", "warning")], strip
    assert "200x20" in flags[0]["message"]
    assert not [f for f in square["findings"] if f["cleaner"] == "aspect-ratio"], square


async def run_testing(stack: Stack, name: str, dataset_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """A testing task of the model `name` on the dataset, run to its end."""
    task = await create_task(stack, name, dataset_id, model_name=name, params=params, run=True)
    async with client(stack, "viewer") as c:
        async def ended() -> dict[str, Any] | None:
            t = (await c.get(f"/api/mtt/tasks/{task['id']}")).json()
            return dict(t) if t["status"] in ("succeeded", "failed", "cancelled") else None

        done = await eventually(ended, f"testing task {task['id']} ends", tries=600)
    assert done["status"] == "succeeded", done
    return done


async def digit_set(stack: Stack, tag: str) -> tuple[str, str]:
    """Five 2x2 images and a registered 4-class model that picks the brightest pixel; the fifth image's label is
    its second-brightest pixel. → (model name, test dataset id)"""
    images = [(lit_pixels(0, seed=1), "0"), (lit_pixels(1, seed=2), "1"), (lit_pixels(2, seed=3), "2"),
              (lit_pixels(3, seed=4), "3"), (lit_pixels(0, 1, seed=5), "1")]
    async with client(stack, "engineer") as c:
        md5s = [(await upload(c, f"px/{tag}-{n}.png", data))["md5"] for n, (data, _) in enumerate(images)]
        csv = "md5,annotation\n" + "".join(f"{m},{label}\n" for m, (_, label) in zip(md5s, images))
        r = await c.post("/api/dam/documents", params={"name": f"px-{tag}", "format": "csv"}, content=csv,
                         headers={"content-type": "text/csv"})
        assert r.status_code == 201, r.text
    name = f"px-{tag}"
    await register_model(stack, name)
    sets = await group(stack, f"px-{tag}", r.json()["id"], split={"test": 1.0})
    return name, sets["test"]["id"]


async def check_evaluators(stack: Stack, name: str, dataset: str) -> None:
    """The example's top-k scores the set (right in the top 2, one wrong in the top 1); built-in classification
    scores the same set (its one misprediction)."""
    top_k = await run_testing(stack, name, dataset, {"evaluator": "top-k",
                                                      "top-k": {"k": 2, "classes": ["0", "1", "2", "3"]}})
    assert top_k["metrics"]["top_2_accuracy"] == 1.0 and top_k["metrics"]["top_1_accuracy"] == 0.8, top_k
    await check_builtin_evaluator(stack, name, dataset)


async def check_builtin_evaluator(stack: Stack, name: str, dataset: str) -> None:
    prep = {"size": [2, 2], "mode": "L", "layout": "flat", "classes": ["0", "1", "2", "3"]}
    builtin = await run_testing(stack, name, dataset, {"evaluator": "classification", "preprocess": prep})
    assert builtin["metrics"]["accuracy"] == 0.8, builtin


def grey(pixels: list[list[int]]) -> bytes:
    image = Image.new("L", (len(pixels[0]), len(pixels)))
    image.putdata([v for row in pixels for v in row])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def check_segmentation(stack: Stack, tag: str) -> None:
    """The built-in segmentation evaluator: a model marking bright pixels as class 1, scored on two 4x4 images
    against one mask (left half 1): the half-bright image is right, the all-bright one half wrong."""
    from mtt.evaluator.examples import threshold_segmenter

    half, bright, mask = grey([[255, 255, 0, 0]] * 4), grey([[255] * 4] * 4), grey([[1, 1, 0, 0]] * 4)
    name = f"seg-{tag}"
    async with client(stack, "engineer") as c:
        m = (await upload(c, f"seg/{tag}-mask.png", mask))["md5"]
        rows = [{"md5": (await upload(c, f"seg/{tag}-{n}.png", data))["md5"], "annotation": {"mask": m}}
                for n, data in (("half", half), ("bright", bright))]
        r = await c.post("/api/dam/documents", params={"name": name, "format": "json"}, content=json.dumps(rows),
                         headers={"content-type": "application/json"})
        assert r.status_code == 201, r.text
        v = await c.post(f"/api/msm/models/{name}/versions", content=threshold_segmenter(),
                         headers={"content-type": "application/octet-stream"})
        assert v.status_code == 201, v.text
    sets = await group(stack, name, r.json()["id"], split={"test": 1.0})
    done = await run_testing(stack, name, sets["test"]["id"], {
        "evaluator": "segmentation", "preprocess": {"size": [4, 4], "layout": "nchw", "mode": "L"}})
    metrics = done["metrics"]
    assert metrics["pixel_accuracy"] == 0.75 and metrics["errors"] == 1 and metrics["samples"] == 2, metrics
    assert abs(metrics["miou"] - (8 / 16 + 16 / 24) / 2) < 1e-9, metrics


async def check_removed(stack: Stack, name: str, dataset: str, tag: str) -> None:
    """After a restart without the packages: the example's plugins are absent (the broken ones, never active, are
    gone), naming one is a 422 saying so, and uploads, imports and testing go on."""
    async with client(stack, "viewer") as c:
        found = {**await listing(c, "dam"), **await listing(c, "mtt")}
    for key in EXAMPLE_PLUGINS:
        assert found[key]["state"] == "absent" and found[key]["last_seen_at"], found[key]
    assert not {k for k in found if k[1] in ("needs-missing", "raises", "from-the-future")}
    async with client(stack, "engineer") as c:
        r = await c.post("/api/dam/documents", params={"name": f"after-{tag}", "format": "createml"},
                         content=b'[{"image": "x.jpg", "annotations": []}]')
        assert r.status_code == 422 and "createml" in r.text, r.text
        wide = await upload(c, "strip-again.png", png(200, 20, 9))
        assert not [f for f in wide.get("findings") or [] if f["cleaner"] == "aspect-ratio"], wide
        r = await c.post("/api/mtt/tasks", json={"kind": "test", "name": f"after-{tag}", "model_name": name,
                                                 "datasets": [{"dataset_id": dataset}],
                                                 "params": {"evaluator": "top-k"}})
        assert r.status_code == 422 and "top-k" in r.text, r.text
    await check_builtin_evaluator(stack, name, dataset)


async def test_outside_plugins_are_used_like_builtins_and_removing_them_leaves_mlife_running(
        plugin_dir: Path, tmp_path: Path) -> None:
    before = os.environ.get("PYTHONPATH")
    stack = await start_stack(tmp_path / "platform",
                              env={"PYTHONPATH": os.pathsep.join(filter(None, [str(plugin_dir), before]))})
    try:
        require(stack, "bam", "dam", "mtt", "msm")
        tag = uuid.uuid4().hex[:6]
        await check_listed(stack)
        await check_formats(stack, tag)
        await check_cleaner(stack)
        name, dataset = await digit_set(stack, tag)
        await check_evaluators(stack, name, dataset)
        await check_segmentation(stack, tag)

        await restart_services(stack, {"PYTHONPATH": before})
        require(stack, "bam", "dam", "mtt", "msm")
        await check_removed(stack, name, dataset, tag)
    finally:
        await stop_stack(stack)
