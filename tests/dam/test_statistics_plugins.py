"""Statistics (the `mlife.statistics` plugins): every built-in conforms as installed; document and dataset stats
run every active statistic (or those named) and say which gave what; an outside statistic's distributions show
in both, a failing or clashing one is reported without failing the rest. DAM on PostgreSQL and NATS."""

from __future__ import annotations

from collections import Counter
from importlib.metadata import EntryPoint
from typing import Any

import httpx
import pytest

from mlife_shared.plugins import SEAMS, seams_of
from mlife_shared.plugins.registry import Plugins
from mlife_shared.plugins.seams.statistics import Sample, is_distribution
from mlife_shared.plugins.testing import check_installed, check_plugin
from tests.dam.helpers import png
from tests.dam.test_documents import upload

BUILTINS = ["classes", "files", "media", "columns", "boxes"]


class Orientation:
    """An outside statistic: images by orientation, and how many rows it saw."""

    name, api, description = "orientation", ">=1,<2", "images by orientation"

    def analyse(self, sample: Sample) -> dict[str, Any]:
        shapes = Counter("portrait" if r.file.height > r.file.width else "landscape" for r in sample.rows
                         if r.file is not None and r.file.width and r.file.height)
        return {"by_orientation": dict(shapes), "orientation_source": sample.source}


class Broken:
    name, api, description = "broken", ">=1,<2", "fails"

    def analyse(self, sample: Sample) -> dict[str, Any]:
        raise ZeroDivisionError("the plugin's own bug")


class Clashing:
    name, api, description = "wrong-class", ">=1,<2", "gives a built-in's name"

    def analyse(self, sample: Sample) -> dict[str, Any]:
        return {"by_class": {"x": 1}, "clashing_rows": len(sample.rows)}


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_statistic_conforms_as_installed(name: str) -> None:
    check_installed("statistics", name)


def test_the_outside_samples_conform() -> None:
    check_plugin("statistics", Orientation())
    with pytest.raises(ZeroDivisionError):
        check_plugin("statistics", Broken())


def with_outside(dam: httpx.AsyncClient) -> None:
    group = SEAMS["statistics"].group
    found: dict[str, list[EntryPoint]] = {s: [] for s in seams_of("dam")}
    found["statistics"] = [EntryPoint(n, v, group) for n, v in [
        ("classes", "dam.document.analysis:Classes"), ("files", "dam.document.analysis:Files"),
        ("orientation", f"{__name__}:Orientation"), ("broken", f"{__name__}:Broken"),
        ("wrong-class", f"{__name__}:Clashing")]]
    dam.app.state.plugins = Plugins(seams_of("dam"), found)  # type: ignore[attr-defined]


async def boxed_document(dam: httpx.AsyncClient) -> str:
    """Three images: a landscape one with two boxes (a small and a large), a portrait with one, one without."""
    a = await upload(dam, png(200, 100, seed=1), "a.png")
    b = await upload(dam, png(10, 40, seed=2), "b.png")
    c = await upload(dam, png(30, 20, seed=3), "c.png")
    rows = [{"md5": a, "annotation": {"boxes": [{"label": "cat", "x": 0, "y": 0, "width": 10, "height": 10},
                                                {"label": "dog", "x": 0, "y": 0, "width": 100, "height": 100}]}},
            {"md5": b, "annotation": {"boxes": [{"label": "cat", "x": 0, "y": 0, "width": 50, "height": 50,
                                                 "unit": "percent"}]}},
            {"md5": c, "annotation": "cat"}]
    r = await dam.post("/documents", params={"name": "boxed"}, json=rows)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_builtins_give_the_distributions_and_say_which_gave_what(dam: httpx.AsyncClient) -> None:
    doc = await boxed_document(dam)
    stats = (await dam.get(f"/documents/{doc}/stats")).json()
    assert stats["by_boxes_per_image"] == {"1": 1, "2": 1}
    # 10x10 is small, 100x100 large; 50% of 10x40 is 5x20 = 100 px², small
    assert stats["by_box_size"] == {"small (<32²px)": 2, "large (>=96²px)": 1}
    assert stats["by_class"] == {"cat": 3} and stats["by_box_label"] == {"cat": 2, "dog": 1}
    assert stats["by_dimensions"] == {"200x100": 1, "10x40": 1, "30x20": 1} and stats["row_count"] == 3
    assert set(stats["statistics"]) == set(BUILTINS) and stats["statistics_errors"] == {}
    assert stats["statistics"]["boxes"] == ["by_boxes_per_image", "by_box_size"]
    assert "by_column" in stats["statistics"]["columns"] and "by_duration" in stats["statistics"]["media"]
    assert all(is_distribution(stats[k]) for k in ("by_class", "by_size", "by_box_size"))

    only = (await dam.get(f"/documents/{doc}/stats", params={"statistics": ["boxes"]})).json()
    assert set(only) == {"document_id", "version", "by_boxes_per_image", "by_box_size", "statistics",
                         "statistics_errors"}
    none = await dam.get(f"/documents/{doc}/stats", params={"statistics": ["nope"]})
    assert none.status_code == 422 and "'nope' is not installed" in none.text


async def test_an_outside_statistic_shows_in_document_and_dataset_stats(dam: httpx.AsyncClient) -> None:
    doc = await boxed_document(dam)
    with_outside(dam)
    stats = (await dam.get(f"/documents/{doc}/stats")).json()
    assert stats["by_orientation"] == {"landscape": 2, "portrait": 1} and stats["orientation_source"] == "document"
    assert stats["by_class"] == {"cat": 3}  # the built-in's, not the clashing plugin's
    assert stats["clashing_rows"] == 3 and stats["statistics"]["wrong-class"] == ["clashing_rows"]
    assert stats["statistics_errors"] == {"broken": "ZeroDivisionError: the plugin's own bug",
                                          "wrong-class": "gave names already given by another statistic: by_class"}
    assert "by_box_size" not in stats  # the boxes built-in is not installed here

    r = await dam.post("/datasets", json={"name": "boxed-ds", "documents": [{"id": doc}], "split": {"train": 1.0}})
    assert r.status_code == 201, r.text
    ds = (await dam.get(f"/datasets/{r.json()['datasets'][0]['id']}/stats")).json()
    assert ds["by_orientation"] == {"landscape": 2, "portrait": 1} and ds["orientation_source"] == "dataset"
    assert ds["purpose"] == "train" and ds["statistics_errors"]["broken"].startswith("ZeroDivisionError")
    picked = (await dam.get(f"/datasets/{r.json()['datasets'][0]['id']}/stats",
                            params={"statistics": ["orientation"]})).json()
    assert set(picked["statistics"]) == {"orientation"} and "by_class" not in picked
