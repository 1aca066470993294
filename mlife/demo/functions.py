"""The example functions of `mlife demo`: two image functions of different sizes and a table.

- digits: scikit-learn's 8x8 digits as PNG (examples/digits), feedback by the image's DAM MD5;
- shapes: generated 32x32 shapes (examples/shapes), feedback by the image's DAM MD5 too (the served input is a
  flat vector of 1024 pixels: by its MD5 the badcase shows the picture in the badcase list);
- wine: scikit-learn's wine as a plain table (examples/wine), 13 feature columns, string labels, feedback with
  the served input tensor (the row's features).

To bring your own function, subclass FunctionLoop the same way: say where the data comes from
(`prepare`, `import_data`), how one sample becomes the model's input (`model_input`), and the parameters of a
weak, a good and a worse model for your training code."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from mlife.demo.loop import FunctionLoop, Item, Stalled

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"mlife_example_{path.parent.name}_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise Stalled(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ImageLoop(FunctionLoop):
    """Images written as PNG files, uploaded to DAM (the MD5 precheck skips known ones), one document."""

    scale = 1.0 / 255.0

    def pngs(self) -> list[tuple[bytes, str]]:
        raise NotImplementedError

    def prepare(self) -> None:
        images = self.workdir / self.function
        images.mkdir(parents=True, exist_ok=True)
        for data, label in self.pngs():
            md5 = hashlib.md5(data).hexdigest()  # noqa: S324 - content address, as DAM
            path = images / f"{md5}.png"
            if not path.exists() or path.stat().st_size != len(data):
                path.write_bytes(data)
            self.items[md5] = Item(id=md5, truth=label, md5=md5, path=path)
        self.say(f"{len(self.items)} {self.function} images written as PNG to {images}")

    def import_data(self) -> None:
        s = self.c.upload_dir(self.workdir / self.function, workers=4)
        if s.failed:
            raise Stalled(f"uploading to DAM failed for {len(s.failed)} files, e.g. {s.failed[0]}")
        self.say(f"uploaded to DAM: {s.uploaded} new, {s.skipped} already there (deduplicated by MD5)", "data")
        doc = self.workdir / f"{self.r.model}.jsonl"
        doc.write_text("".join(json.dumps({"md5": i.md5, "annotation": i.truth}) + "\n" for i in self.items.values()))
        d = self.c.import_document(doc, name=self.r.model, format="json",
                                   description=f"{self.function} images, imported by mlife demo")
        self.r.document_id = str(d["id"])
        self.say(f"document '{self.r.model}' imported ({len(self.items)} rows)", f"data/documents/{self.r.document_id}")

    def model_input(self, item: Item) -> list[float]:
        from PIL import Image

        assert item.path is not None
        with Image.open(item.path) as im:
            return [p * self.scale for p in im.convert("L").tobytes()]


class Digits(ImageLoop):
    function = "digits"
    example = EXAMPLES / "digits"
    weak, good, worse = {"C": 0.01, "max_iter": 2000}, {"C": 1.0, "max_iter": 2000}, {"C": 0.001, "max_iter": 2000}
    feedback_with_inputs = False  # the client sends the image it was asked about: its DAM MD5

    def pngs(self) -> list[tuple[bytes, str]]:
        pngs: list[tuple[bytes, str]] = _module(self.example / "make_dataset.py").digits_pngs()
        return pngs


class Shapes(ImageLoop):
    function = "shapes"
    example = EXAMPLES / "shapes"
    weak = {"C": 0.0001, "size": [32, 32]}
    good = {"C": 1.0, "size": [32, 32]}
    worse = {"C": 1.0, "max_train": 20, "size": [32, 32]}
    feedback_with_inputs = False  # the image's DAM MD5: its badcases show the picture (the input is a flat vector)

    def pngs(self) -> list[tuple[bytes, str]]:
        pngs: list[tuple[bytes, str]] = _module(self.example / "make_dataset.py").shapes_pngs()
        return pngs


class Wine(FunctionLoop):
    """A plain table: no files, one row per sample, the label a column."""

    function = "wine"
    example = EXAMPLES / "wine"
    weak, good, worse = {"model": "raw"}, {"model": "scaled"}, {"model": "stump"}

    def prepare(self) -> None:
        maker = _module(self.example / "make_dataset.py")
        self.csv = maker.wine_csv()
        self.columns = sorted(maker.columns())
        for row in maker.wine_rows():
            features = {k: float(v) for k, v in row.items() if k != "label"}
            self.items[self.row_id(features, str(row["label"]))] = Item(id="", truth=str(row["label"]),
                                                                        features=features)
        self.say(f"{len(self.items)} wine rows, {len(self.columns)} feature columns")

    @staticmethod
    def row_id(features: dict[str, float], label: str) -> str:
        return json.dumps([sorted(features.items()), label])

    def import_data(self) -> None:
        path = self.workdir / f"{self.r.model}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.csv)
        d = self.c.import_document(path, name=self.r.model, format="csv", kind="table", label_column="label",
                                   description="scikit-learn wine, a plain table, imported by mlife demo")
        self.r.document_id = str(d["id"])
        self.say(f"table '{self.r.model}' imported as a document ({len(self.items)} rows, no files)",
                 f"data/documents/{self.r.document_id}")

    def _manifest(self, dataset_id: str) -> list[dict[str, Any]]:
        """Manifest rows of a table carry their features: key our items by the manifest's row ids."""
        rows = super()._manifest(dataset_id)
        for it in rows:
            key = self.row_id({k: float(v) for k, v in (it.get("features") or {}).items()}, str(it.get("label")))
            if key in self.items and it.get("id"):
                item = self.items.pop(key)
                item.id = str(it["id"])
                self.items[item.id] = item
        return rows

    def model_input(self, item: Item) -> list[float]:
        assert item.features is not None
        return [item.features[c] for c in self.columns]


FUNCTIONS: dict[str, type[FunctionLoop]] = {"digits": Digits, "shapes": Shapes, "wine": Wine}
