"""The example plugins' own tests, as a plugin package writes them: the conformance kit (each plugin as an object
and as installed through its entry point), then what each one is for. Run them with the package installed next to
MLife: `pip install --no-deps examples/plugins && pytest examples/plugins/tests`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlife_example_plugins.aspect import AspectRatio
from mlife_example_plugins.createml import CreateML
from mlife_example_plugins.topk import TopK

from mlife_shared.plugins.seams.cleaners import Context, Item, png
from mlife_shared.plugins.seams.converters import ConversionError, ExportDocument, FileInfo, Row
from mlife_shared.plugins.seams.evaluators import EvaluationRefused, EvaluationRequest
from mlife_shared.plugins.testing import check_installed, check_plugin

PLUGINS = [("converters", "createml", CreateML), ("cleaners", "aspect-ratio", AspectRatio),
           ("evaluators", "top-k", TopK)]


@pytest.mark.parametrize(("seam", "name", "cls"), PLUGINS)
def test_conforms_as_an_object_and_as_installed(seam: str, name: str, cls: type) -> None:
    check_plugin(seam, cls())
    assert isinstance(check_installed(seam, name), cls)


def test_createml_boxes_by_centre_in_and_out() -> None:
    body = json.dumps([{"image": "img7.jpg", "annotations": [
        {"label": "cat", "coordinates": {"x": 60, "y": 40, "width": 40, "height": 30}}]},
        {"image": "empty.jpg", "annotations": []}]).encode()
    c = CreateML()
    assert c.detect(body, None) == 95 and c.detect(b'[{"md5": "x"}]', None) == 0 and c.detect(b"md5,a\n", None) == 0
    got = c.read(body, {})
    assert got.match == "stem" and got.rows == [
        {"path": "img7.jpg", "annotation": {"boxes": [{"label": "cat", "x": 40.0, "y": 25.0, "width": 40.0,
                                                        "height": 30.0}]}},
        {"path": "empty.jpg", "annotation": {"boxes": []}}]
    doc = ExportDocument(name="d", version=1, kind="standard", columns=[], rows=[
        Row(md5="a" * 32, path=r["path"], annotation=r["annotation"], file=FileInfo(md5="a" * 32)) for r in got.rows])
    assert json.loads(c.write(doc)) == json.loads(body)


@pytest.mark.parametrize(("body", "message", "row"), [
    (b'{"image": "a.jpg"}', "JSON list", None),
    (b'[{"annotations": []}]', "needs \"image\"", 1),
    (b'[{"image": "a", "annotations": []}, {"image": "b", "annotations": [{"label": "x"}]}]', "coordinates", 2),
    (b'[{"image": "a", "annotations": [{"label": "x", "coordinates": {"x": 1, "y": 1, "width": 0, "height": 2}}]}]',
     "width must be above 0", 1),
])
def test_createml_says_what_is_wrong_and_where(body: bytes, message: str, row: int | None) -> None:
    with pytest.raises(ConversionError, match=message) as info:
        CreateML().read(body, {})
    assert info.value.row == row


def test_aspect_ratio_flags_a_strip_not_a_square() -> None:
    strip, square = png(50, 10, lambda x, y: x), png(20, 20, lambda x, y: y)
    items = [Item(md5="s" * 32, media_type="image", data=strip), Item(md5="q" * 32, media_type="image", data=square),
             Item(md5="t" * 32, media_type="image", width=10, height=41, position=3)]
    found = AspectRatio().check(items, Context())
    assert [(f.md5, f.code, f.severity, f.position) for f in found] == [
        ("s" * 32, "extreme_aspect_ratio", "warning", None), ("t" * 32, "extreme_aspect_ratio", "warning", 3)]
    assert "50x10, 5.0 times as wide" in found[0].message and "as tall" in found[1].message


def test_top_k_scores_its_example_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    plugin = TopK()
    request = plugin.example(tmp_path)
    result = plugin.evaluate(request)
    assert result.metrics == {"top_2_accuracy": 1.0, "top_1_accuracy": 0.8, "samples": 5.0, "errors": 0.0}
    assert [o["prediction"][0] for o in result.outcomes] == ["0", "1", "2", "3", "0"]
    three = EvaluationRequest(request.model_path, request.items, {"top-k": {"classes": ["a", "b", "c"]}})
    assert "scores 4 classes but 3 are named" in (plugin.incompatibility(three) or "")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    assert "cannot load the model" in (plugin.incompatibility(EvaluationRequest(tmp_path / "bad.onnx", request.items,
                                                                                {})) or "")
    with pytest.raises(EvaluationRefused, match="k must be a whole number"):
        plugin.evaluate(EvaluationRequest(request.model_path, request.items, {"top-k": {"k": 0}}))
