"""Plain tables: documents of feature columns and a label with no file (CSV numbers read as numbers),
their rows, statistics, search, export and versions; group items splits them by row hash into
manifests of features; and every bad table is a 4xx that says what to fix."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import httpx

from tests.dam.helpers import WINE_COLUMNS, to_csv
from tests.support.outbox import outbox_events


def wine_rows(n: int = 30) -> list[list[object]]:
    """A wine-like table: numeric features, a text feature, a class label (0, 1, 2)."""
    return [[round(11.0 + i * 0.13, 2), round(1.5 + (i % 7) * 0.31, 2), 2 + i % 3, ["red", "white"][i % 2], i % 3]
            for i in range(n)]


async def import_wine(dam: httpx.AsyncClient, name: str = "wine", n: int = 30) -> dict:  # type: ignore[type-arg]
    r = await dam.post("/documents", params={"name": name}, content=to_csv(WINE_COLUMNS, wine_rows(n)),
                       headers={"content-type": "text/csv"})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_csv_table_without_file_columns_becomes_rows_of_features(dam: httpx.AsyncClient) -> None:
    doc = await import_wine(dam)
    assert (doc["kind"], doc["label_column"], doc["feature_columns"], doc["columns"], doc["row_count"]) == (
        "table", "label", ["alcohol", "malic_acid", "ash", "colour"], [], 30)
    rows = (await dam.get(f"/documents/{doc['id']}/rows", params={"limit": 100})).json()["items"]
    first = rows[0]
    assert (first["md5"], first["path"], first["media_type"]) == (None, None, None)
    assert first["features"] == {"alcohol": 11.0, "malic_acid": 1.5, "ash": 2, "colour": "red"}
    assert (first["annotation"], first["label"]) == (0, "0")
    assert isinstance(first["features"]["ash"], int) and isinstance(rows[1]["features"]["alcohol"], float)
    # filters on labels, a feature column and keywords
    assert (await dam.get(f"/documents/{doc['id']}/rows", params={"labels": "2"})).json()["total"] == 10
    assert (await dam.get(f"/documents/{doc['id']}/rows", params={"column": "colour=white"})).json()["total"] == 15
    found = (await dam.post("/search", json={"q": "white", "labels": ["1"]})).json()
    assert found["total"] == 5 and all(x["features"]["colour"] == "white" for x in found["items"])
    stats = (await dam.get(f"/documents/{doc['id']}/stats")).json()
    assert stats["row_count"] == stats["table_rows"] == 30 and stats["by_class"] == {"0": 10, "1": 10, "2": 10}
    assert stats["by_feature"]["ash"] == {"count": 30, "missing": 0, "kind": "number", "min": 2, "max": 4, "mean": 3.0}
    assert stats["by_feature"]["colour"]["top"] == {"red": 15, "white": 15}
    # exports: CSV and JSON are the table again (features then the label), and import back as an equal table
    exported = (await dam.get(f"/documents/{doc['id']}/export", params={"format": "csv"})).text
    assert exported.splitlines()[:2] == ["alcohol,malic_acid,ash,colour,label", "11.0,1.5,2,red,0"]
    again = await dam.post("/documents", params={"name": "wine-again"}, content=exported.encode(),
                           headers={"content-type": "text/csv"})
    assert again.status_code == 201, again.text
    back = (await dam.get(f"/documents/{again.json()['id']}/rows", params={"limit": 100})).json()["items"]
    assert [(r["features"], r["annotation"]) for r in back] == [(r["features"], r["annotation"]) for r in rows]
    as_json = (await dam.get(f"/documents/{doc['id']}/export", params={"format": "json"})).json()
    assert as_json[1] == {"alcohol": 11.13, "malic_acid": 1.81, "ash": 3, "colour": "white", "label": 1}
    for fmt in ("labelstudio", "coco"):
        r = await dam.get(f"/documents/{doc['id']}/export", params={"format": fmt})
        assert r.status_code == 422 and "no files" in r.json()["detail"]
    # a new version appends rows with the same features; a new feature needs allow_new_columns
    more = to_csv(WINE_COLUMNS, [[14.1, 2.0, 2, "red", 1]])
    r = await dam.post(f"/documents/{doc['id']}/versions", params={"mode": "append"}, content=more,
                       headers={"content-type": "text/csv"})
    assert r.status_code == 201 and r.json()["row_count"] == 31, r.text
    extra = to_csv([*WINE_COLUMNS, "hue"], [[14.1, 2.0, 2, "red", 1, 0.9]])
    r = await dam.post(f"/documents/{doc['id']}/versions", content=extra, headers={"content-type": "text/csv"})
    assert r.status_code == 422 and r.json()["error"] == "UnknownColumn" and "hue" in r.json()["detail"]
    r = await dam.post(f"/documents/{doc['id']}/versions", params={"allow_new_columns": "true"}, content=extra,
                       headers={"content-type": "text/csv"})
    assert r.status_code == 201 and r.json()["feature_columns"] == [*WINE_COLUMNS[:4], "hue"]


async def test_json_lines_table_with_a_named_label_column(dam: httpx.AsyncClient) -> None:
    lines = "\n".join(json.dumps({"quality": q, "alcohol": a, "sulphates": s}) for q, a, s in
                      [(5, 9.4, 0.56), (6, 9.8, 0.68), (5, 9.4, 0.56)]).encode()
    r = await dam.post("/documents", params={"name": "wine-quality", "kind": "table", "label_column": "quality"},
                       content=lines, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 201, r.text
    assert (r.json()["label_column"], r.json()["feature_columns"]) == ("quality", ["alcohol", "sulphates"])
    rows = (await dam.get(f"/documents/{r.json()['id']}/rows")).json()["items"]
    assert [(x["features"]["alcohol"], x["annotation"]) for x in rows] == [(9.4, 5), (9.8, 6), (9.4, 5)]


async def test_group_items_splits_a_table_into_manifests_of_features(dam: httpx.AsyncClient, dam_db: str) -> None:
    doc = await import_wine(dam, n=30)
    duplicate = to_csv(WINE_COLUMNS, [[11.0, "1.5", "2.0", "red", 0]])  # the first row again ("2.0" is 2)
    r = await dam.post(f"/documents/{doc['id']}/versions", params={"mode": "append"}, content=duplicate,
                       headers={"content-type": "text/csv"})
    assert r.status_code == 201, r.text
    req = {"name": "wine-ds", "documents": [{"id": doc["id"]}], "split": {"train": 0.8, "test": 0.2}, "seed": 3,
           "function": "wine"}
    r = await dam.post("/datasets", json=req)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["duplicates_dropped"] == 1 and body["modality"] == "table"
    by = {d["purpose"]: d for d in body["datasets"]}
    assert (by["train"]["item_count"], by["test"]["item_count"]) == (24, 6)
    assert all(d["function"] == "wine" and d["modality"] == "table" for d in by.values())
    test = [json.loads(x) for x in (await dam.get(f"/datasets/{by['test']['id']}/manifest")).text.splitlines()]
    assert Counter(x["label"] for x in test) == {"0": 2, "1": 2, "2": 2}
    item = test[0]
    assert set(item) == {"id", "features", "annotation", "label", "extra", "document_id", "document_version"}
    assert set(item["features"]) == {"alcohol", "malic_acid", "ash", "colour"} and len(item["id"]) == 32
    # deterministic: the same request splits the same rows
    again = (await dam.post("/datasets", json=req)).json()
    test2 = (await dam.get(f"/datasets/{again['datasets'][0 if again['datasets'][0]['purpose'] == 'test' else 1]['id']}"
                           "/manifest")).text.splitlines()
    assert [json.loads(x)["id"] for x in test2] == [x["id"] for x in test]
    stats = (await dam.get(f"/datasets/{by['test']['id']}/stats")).json()
    assert stats["by_class"] == {"0": 2, "1": 2, "2": 2} and stats["by_feature"]["colour"]["count"] == 6
    grouped = [e["data"] for e in await outbox_events(dam_db, "dataset.grouped")][:2]
    assert {(e["function"], e["modality"], e["is_badcase_test_set"]) for e in grouped} == {("wine", "table", False)}


async def test_bad_tables_are_4xx_that_say_what_to_fix(dam: httpx.AsyncClient) -> None:
    cases = [
        # the label column is missing
        ({"name": "t"}, to_csv(["alcohol", "ash"], [[9.4, 2]]), "text/csv", "no 'label' column"),
        ({"name": "t", "label_column": "quality"}, to_csv(WINE_COLUMNS, wine_rows(2)), "text/csv",
         "no label column 'quality'"),
        # a feature holding nested JSON
        ({"name": "t"}, b'{"label": 1, "alcohol": {"value": 9.4}}\n', "application/json", "nested JSON"),
        # only a label
        ({"name": "t"}, b"label\n1\n2\n", "text/csv", "add feature columns"),
        # a table that names files
        ({"name": "t", "kind": "table"}, b"md5,label\n" + b"0" * 32 + b",1\n", "text/csv", "no file column"),
        # label_column on a document of files
        ({"name": "t", "label_column": "label"}, b"md5,label\n" + b"0" * 32 + b",1\n", "text/csv", "plain table"),
        # a bad feature column name
        ({"name": "t"}, b"label,bad name\n1,2\n", "text/csv", "invalid feature column"),
        # a value PostgreSQL cannot store
        ({"name": "t"}, b'[{"label": 1, "alcohol": "a\\u0000b"}]', "application/json", "NUL"),
        # an unknown kind
        ({"name": "t", "kind": "spreadsheet"}, to_csv(WINE_COLUMNS, wine_rows(2)), "text/csv", None),
    ]
    for params, body, ctype, message in cases:
        r = await dam.post("/documents", params=params, content=body, headers={"content-type": ctype})
        assert r.status_code == 422, (params, body, r.text)
        if message:
            assert message in json.dumps(r.json()["detail"]), (message, r.text)
    nested = await dam.post("/documents", params={"name": "t"}, content=b'{"label": 1, "alcohol": [9.4]}\n'
                            b'{"label": 2, "alcohol": 9.5}\n{"label": 3, "alcohol": {"v": 1}}\n',
                            headers={"content-type": "application/json"})
    assert [(e["row"], e["column"]) for e in nested.json()["detail"]["errors"]] == [(1, "alcohol"), (3, "alcohol")]
    assert (await dam.get("/documents")).json() == []
    doc = await import_wine(dam)
    r = await dam.post("/labelling-tasks", json={"document_id": doc["id"], "labels": ["0", "1", "2"]})
    assert r.status_code == 422 and "table rows with no file" in r.json()["detail"], r.text


async def test_a_repeated_column_or_an_infinite_number_is_a_422_not_a_lost_column_or_a_500(
        dam: httpx.AsyncClient) -> None:
    """A CSV header naming a column twice would keep only the last column's values; a cell such as 1e999 reads as
    infinity, which PostgreSQL's JSON refuses (a 500)."""
    twice = await dam.post("/documents", params={"name": "t"}, content=b"alcohol,ash,alcohol,label\n9.4,2,9.9,1\n",
                           headers={"content-type": "text/csv"})
    assert twice.status_code == 422 and "['alcohol'] more than once" in twice.json()["detail"], twice.text
    files = await dam.post("/documents", params={"name": "t"}, content=b"md5,annotation,md5\n" + b"0" * 32 + b",1,x\n",
                           headers={"content-type": "text/csv"})
    assert files.status_code == 422 and "more than once" in files.json()["detail"], files.text
    huge = await dam.post("/documents", params={"name": "t"}, content=b"alcohol,ash,label\n9.4,1e999,1\n9.5,2,-1e400\n",
                          headers={"content-type": "text/csv"})
    assert huge.status_code == 422, huge.text
    assert [(e["row"], e["column"]) for e in huge.json()["detail"]["errors"]] == [(1, "ash"), (2, "label")]
    assert "out of range" in huge.text
    assert (await dam.get("/documents")).json() == []
