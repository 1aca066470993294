"""CSV/TSV exports do not carry spreadsheet formulas (CSV injection): a text cell starting with =, +, -,
@, a tab or CR is written with a leading single quote; real numbers stay numbers; the imported document
keeps the original text. DAM on real PostgreSQL, a real document imported as CSV."""

from __future__ import annotations

import csv
import io

import httpx

from mlife_shared.csvsafe import safe_cell
from tests.dam.helpers import png

HOSTILE = ["=1+1", '=HYPERLINK("http://evil","x")', "+cmd|' /C calc'!A0", "@SUM(1)", "-2+3", "\t=1", "  =1+1",
           "\r=1"]
NUMBERS = ["-1.5", "1e3", "+3", "-7", "0.25"]


def _csv(rows: list[list[str]], header: list[str]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


def test_the_rule() -> None:
    for value in HOSTILE:
        assert safe_cell(value) == "'" + value
    for value in [*NUMBERS, "plain", "a=b", "", "mail@example.org", "' quoted"]:
        assert safe_cell(value) == value


async def test_document_exports_escape_formulas_and_keep_numbers(dam: httpx.AsyncClient) -> None:  # noqa: F811
    md5s = [(await dam.post("/files", content=png(4, 4, seed=900 + i))).json()["md5"] for i in range(len(HOSTILE))]
    rows = [[m, "@cat" if i == 0 else "cat", h, NUMBERS[i % len(NUMBERS)]]
            for i, (m, h) in enumerate(zip(md5s, HOSTILE, strict=True))]
    r = await dam.post("/documents", params={"name": "hostile"}, content=_csv(rows, ["md5", "annotation", "note", "amount"]),
                       headers={"content-type": "text/csv"})
    assert r.status_code == 201, r.text
    doc = r.json()["id"]
    stored = (await dam.get(f"/documents/{doc}/rows", params={"limit": 100})).json()["items"]
    assert [x["extra"]["note"] for x in stored] == HOSTILE  # the import keeps the original text
    assert stored[0]["annotation"] == "@cat"
    for fmt, delimiter, ctype in [("csv", ",", "text/csv"), ("tsv", "\t", "text/tab-separated-values")]:
        exported = await dam.get(f"/documents/{doc}/export", params={"format": fmt})
        assert exported.status_code == 200 and exported.headers["content-type"].startswith(ctype), exported.text
        table = list(csv.reader(io.StringIO(exported.text, newline=""), delimiter=delimiter))
        header, body = table[0], table[1:]
        note, amount, annotation = header.index("note"), header.index("amount"), header.index("annotation")
        assert [row[note] for row in body] == ["'" + h for h in HOSTILE], fmt
        assert [row[amount] for row in body] == [NUMBERS[i % len(NUMBERS)] for i in range(len(HOSTILE))], fmt
        assert body[0][annotation] == "'@cat" and body[1][annotation] == "cat"
        for row in body:  # no cell a spreadsheet would run as a formula
            for cell in row:
                if cell not in NUMBERS:
                    assert not cell.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r")) or cell.startswith("'"), cell


async def test_a_table_keeps_its_real_numbers(dam: httpx.AsyncClient) -> None:  # noqa: F811
    body = _csv([["-1.5", "1e3", "=1+1"], ["2", "-0.5", "ok"]], ["x", "y", "label"])
    r = await dam.post("/documents", params={"name": "numbers", "kind": "table", "label_column": "label"},
                       content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 201, r.text
    exported = await dam.get(f"/documents/{r.json()['id']}/export", params={"format": "csv"})
    table = list(csv.reader(io.StringIO(exported.text, newline="")))
    assert table[0] == ["x", "y", "label"]
    assert [float(v) for v in table[1][:2]] == [-1.5, 1000.0] and table[1][2] == "'=1+1"
    assert [float(v) for v in table[2][:2]] == [2.0, -0.5] and table[2][2] == "ok"
