"""A tabular function for MLife: scikit-learn's wine data (178 rows, 13 numeric features, 3 classes) as a
plain table — one row per item, feature columns + `label`, no files.

    python examples/wine/make_dataset.py OUT.csv

Import it as a document (`mlife data import OUT.csv --name wine`, or POST /api/dam/documents with
`kind=table`), group items with `function=wine`, and train with examples/wine/train.py.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from sklearn.datasets import load_wine


def columns() -> list[str]:
    return [name.replace("/", "_") for name in load_wine().feature_names]


def wine_rows() -> list[dict[str, object]]:
    d = load_wine()
    names = columns()
    return [{**{n: float(v) for n, v in zip(names, row, strict=True)}, "label": f"class_{int(t)}"}
            for row, t in zip(d.data, d.target, strict=True)]


def wine_csv() -> bytes:
    buf = io.StringIO()
    rows = wine_rows()
    writer = csv.DictWriter(buf, fieldnames=[*columns(), "label"])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    args.out.write_bytes(wine_csv())
    print(f"{len(wine_rows())} rows in {args.out}")


if __name__ == "__main__":
    main()
