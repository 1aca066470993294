"""Bulk import of CSV and JSON lines, on real PostgreSQL: streamed, deduplicated, per-row errors, all or nothing."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import sqlalchemy as sa

from mlife_shared.db import make_engine
from tests.support.auth import as_role

MD5 = "0123456789abcdef0123456789abcdef"
CSV = {"content-type": "text/csv"}
JSONL = {"content-type": "application/x-ndjson"}
HEADER = ["function", "system_version", "model_name", "model_version", "data", "prediction", "ground_truth",
          "description", "tags", "severity", "client_id", "device_id"]


def report(**kw: Any) -> dict[str, Any]:
    body = {"function": "emotion", "data": [{"kind": "md5", "value": MD5}], "prediction": "happy",
            "ground_truth": "sad", "description": "Driver wears a mask", "model_name": "expr", "model_version": "1.0"}
    body.update(kw)
    return body


def jsonl(*rows: dict[str, Any] | str) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def csv_body(*rows: dict[str, str], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


async def scalar(db_url: str, sql: str) -> Any:
    engine = make_engine(db_url)
    async with engine.connect() as conn:
        value = (await conn.execute(sa.text(sql))).scalar()
    await engine.dispose()
    return value


async def subjects(db_url: str) -> dict[str, int]:
    engine = make_engine(db_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT subject, count(*) FROM outbox GROUP BY subject"))).all()
    await engine.dispose()
    return {s: n for s, n in rows}


async def items(bam: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    r = await bam.get("/badcases", params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_csv_rows_become_imported_badcases_reported_by_the_caller(bam: httpx.AsyncClient, bam_db: str) -> None:
    body = csv_body(
        {"function": "emotion", "data": f"md5:{MD5}; url:https://cdn.example.com/a.jpg?x=1", "prediction": "happy",
         "ground_truth": "sad", "description": "  Driver wears a mask", "tags": "mask; night", "severity": "high",
         "model_name": "expr", "model_version": "1.0", "system_version": "dms-2.3", "client_id": "car-7"},
        {"function": "detection", "data": "key:frames/0001.png", "ground_truth": '{"boxes": [[1, 2, 3, 4]]}',
         "prediction": '{"boxes": []}', "description": "missed pedestrian"},
        {"function": "ocr", "ground_truth": "7", "prediction": "1", "description": "blurry digit"},
    )
    r = await bam.post("/badcases/import", content=body, headers=CSV)
    assert r.status_code == 200, r.text
    assert r.json() == {"rows": 3, "created": 3, "merged": 0, "failed": 0, "errors": [], "errors_not_shown": 0}
    got = {b["function"]: b for b in await items(bam)}
    emotion = got["emotion"]
    assert emotion["source"] == "import" and emotion["reporter"] == "tess" and emotion["tags"] == ["mask", "night"]
    assert emotion["data"] == [{"kind": "md5", "value": MD5},
                               {"kind": "url", "value": "https://cdn.example.com/a.jpg?x=1"}]
    assert emotion["data_md5"] == MD5 and emotion["description"] == "  Driver wears a mask"
    assert emotion["priority"] == 40.0  # 10 × weight 2 (settings) × high 2
    assert emotion["system_version"] == "dms-2.3" and emotion["client_id"] == "car-7"
    assert got["detection"]["ground_truth"] == {"boxes": [[1, 2, 3, 4]]} and got["detection"]["prediction"] == {
        "boxes": []}
    assert got["ocr"]["ground_truth"] == "7" and got["ocr"]["priority"] == 10.0  # a label stays a string
    assert len(await items(bam, tag="night")) == 1
    assert await subjects(bam_db) == {"badcase.created": 3}
    assert await scalar(bam_db, "SELECT count(*) FROM occurrence WHERE source = 'import' AND reporter = 'tess'") == 3


async def test_jsonl_rows_become_badcases_and_blank_lines_are_skipped(bam: httpx.AsyncClient, bam_db: str) -> None:
    body = b"\xef\xbb\xbf" + jsonl(report(tags=["mask"]), "", report(ground_truth={"label": "angry"}), "   ",
                                   report(function="ocr", source="import"))
    r = await bam.post("/badcases/import", content=body, headers=JSONL)
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == 3 and r.json()["created"] == 3 and r.json()["failed"] == 0
    assert {b["source"] for b in await items(bam)} == {"import"}
    assert len(await items(bam, label="angry")) == 1
    # ?format= wins over a generic content type
    r = await bam.post("/badcases/import", params={"format": "jsonl"}, content=jsonl(report(function="asr")),
                       headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()["created"] == 1
    assert await subjects(bam_db) == {"badcase.created": 4}


async def test_bad_rows_are_reported_by_number_and_good_rows_committed(bam: httpx.AsyncClient, bam_db: str) -> None:
    body = jsonl(
        report(),                                              # row 1 ok
        report(function=""),                                   # row 2 empty function
        '{"function": "emotion", "prediction": ',               # row 3 malformed JSON
        "",                                                    # blank: not a row
        "[1, 2]",                                              # row 4 (line 5) not an object
        report(data=[{"kind": "md5", "value": "nope"}]),       # row 5 bad md5
        '{"function": "x", "prediction": NaN}',                # row 6 NaN
        report(model_name="a\u0000b"),                         # row 7 NUL
        report(unknown_field=1),                               # row 8 unknown field
        report(source="manual"),                               # row 9 source is always import
        report(ground_truth="other"),                          # row 10 ok
    )
    r = await bam.post("/badcases/import", content=body, headers=JSONL)
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["rows"], result["created"], result["merged"], result["failed"]) == (10, 2, 0, 8)
    errors = {e["row"]: e for e in result["errors"]}
    assert sorted(errors) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert errors[2]["error"].startswith("function:") and errors[2]["line"] == 2
    assert "malformed JSON" in errors[3]["error"]
    assert errors[4]["line"] == 5 and "JSON object" in errors[4]["error"]
    assert "md5" in errors[5]["error"] and "NaN" in errors[6]["error"] and "NUL" in errors[7]["error"]
    assert errors[8]["error"].startswith("unknown_field:") and "source" in errors[9]["error"]
    assert len(await items(bam)) == 2
    assert await subjects(bam_db) == {"badcase.created": 2}


async def test_duplicates_in_the_file_and_against_stored_badcases_are_merged(bam: httpx.AsyncClient,
                                                                             bam_db: str) -> None:
    stored = (await bam.post("/badcases", json=report(tags=["mask"]))).json()
    body = jsonl(
        report(description="second report", tags=["night"]),
        report(function="  EMOTION ", prediction={"label": "HAPPY"}),  # the same badcase, written differently
        report(ground_truth="angry", tags=["a"]),                       # new
        report(ground_truth="angry", tags=["b"], severity="critical"),  # merged into the new one of this file
        report(),
    )
    r = await bam.post("/badcases/import", content=body, headers=JSONL)
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["merged"], r.json()["failed"]) == (1, 4, 0)
    merged = (await bam.get(f"/badcases/{stored['id']}")).json()
    assert merged["frequency"] == 4 and merged["tags"] == ["mask", "night"]
    assert merged["description"] == "Driver wears a mask" and merged["source"] == "manual"
    assert merged["priority"] == 60.0  # 10 × 2 × medium 1 × (1 + log2 4): recomputed like BadcaseService.record
    occurrences = (await bam.get(f"/badcases/{stored['id']}/occurrences")).json()
    assert sorted(o["source"] for o in occurrences) == ["import", "import", "import", "manual"]
    assert "second report" in {o["description"] for o in occurrences}
    new = (await items(bam, label="angry"))[0]
    assert new["frequency"] == 2 and new["tags"] == ["a", "b"] and new["severity"] == "medium"
    assert len(await items(bam, tag="b")) == 1
    assert await subjects(bam_db) == {"badcase.created": 2, "badcase.merged": 4}
    again = await bam.post("/badcases/import", content=jsonl(report(ground_truth="angry")), headers=JSONL)
    assert again.json()["merged"] == 1
    assert (await bam.get(f"/badcases/{new['id']}")).json()["frequency"] == 3


async def test_bytes_that_are_not_utf8_fail_their_row_only(bam: httpx.AsyncClient) -> None:
    body = jsonl(report()) + b'{"function": "emotion", "description": "caf\xe9"}\n' + jsonl(report(function="ocr"))
    r = await bam.post("/badcases/import", content=body, headers=JSONL)
    assert r.json()["created"] == 2 and r.json()["failed"] == 1
    assert r.json()["errors"][0]["row"] == 2 and "not valid UTF-8" in r.json()["errors"][0]["error"]
    rows = csv_body({"function": "asr", "description": "ok"}, {"function": "asr", "description": "XX"},
                    {"function": "asr", "description": "fine", "ground_truth": "b"})
    r = await bam.post("/badcases/import", content=rows.replace(b"XX", b"\xff\xfe"), headers=CSV)
    assert (r.json()["created"], r.json()["merged"], r.json()["failed"]) == (2, 0, 1)
    assert r.json()["errors"] == [{"row": 2, "line": 3, "error": r.json()["errors"][0]["error"]}]
    assert "line 3 is not valid UTF-8" in r.json()["errors"][0]["error"]


async def test_malformed_csv_quotes_fail_their_rows(bam: httpx.AsyncClient, bam_db: str) -> None:
    body = (b"function,description,ground_truth\n"
            b'emotion,"a quoted\nmulti-line, description",sad\n'   # row 1, lines 2-3: fine
            b'emotion,"closed"then text,x\n'                        # row 2: text after a closing quote
            b"ocr,ok,7\n"                                           # row 3: fine
            b"ocr,too,many,cells\n"                                 # row 4: wrong number of cells
            b'ocr,"never closed,8\n'                                # row 5: swallows the rest of the file
            b"ocr,lost,9\n")
    r = await bam.post("/badcases/import", content=body, headers=CSV)
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["rows"], result["created"], result["failed"]) == (5, 2, 3)
    errors = {e["row"]: e for e in result["errors"]}
    assert errors[2]["line"] == 4 and "malformed CSV" in errors[2]["error"]
    assert "4 cells" in errors[4]["error"]
    assert errors[5]["line"] == 7 and "not closed" in errors[5]["error"] and "lines 7-8" in errors[5]["error"]
    descriptions = {b["description"] for b in await items(bam)}
    assert descriptions == {"a quoted\nmulti-line, description", "ok"}


async def test_a_quote_never_closed_over_a_megabyte_fails_the_whole_file(bam: httpx.AsyncClient, bam_db: str) -> None:
    good = b"".join(b"emotion,row %d,label-%d\n" % (i, i) for i in range(3000))  # more than a chunk of rows
    rest = b"".join(b"ocr,swallowed %d,x\n" % i for i in range(60_000))      # > 1 MiB inside the open quote
    r = await bam.post("/badcases/import", content=b"function,description,ground_truth\n" + good
                       + b'ocr,"never closed,1\n' + rest, headers=CSV)
    assert r.status_code == 400 and r.json()["error"] == "RowTooLong", r.text
    assert "line 3002" in r.json()["detail"]
    assert await scalar(bam_db, "SELECT count(*) FROM badcase") == 0 and await subjects(bam_db) == {}


async def test_a_json_line_over_the_row_limit_fails_that_row_only(bam: httpx.AsyncClient) -> None:
    body = jsonl(report(), report(description="x" * (1 << 20)), report(ground_truth="other"))
    r = await bam.post("/badcases/import", content=body, headers=JSONL)
    assert (r.json()["created"], r.json()["failed"]) == (2, 1)
    assert r.json()["errors"][0]["row"] == 2 and "longer than" in r.json()["errors"][0]["error"]


async def test_unknown_csv_columns_fail_the_whole_file(bam: httpx.AsyncClient, bam_db: str) -> None:
    body = b"Function,descripton,colour\nemotion,x,red\n"
    r = await bam.post("/badcases/import", content=body, headers=CSV)
    assert r.status_code == 400 and r.json()["error"] == "UnknownColumns"
    assert "'descripton', 'colour'" in r.json()["detail"] and "description" in r.json()["detail"]
    r = await bam.post("/badcases/import", content=b"description\nx\n", headers=CSV)
    assert r.status_code == 400 and "function" in r.json()["detail"]
    r = await bam.post("/badcases/import", content=b"", headers=CSV)
    assert r.status_code == 400 and r.json()["error"] == "InvalidImport"
    r = await bam.post("/badcases/import", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 415 and r.json()["error"] == "UnsupportedImportFormat"
    r = await bam.post("/badcases/import", content=b"function\nx\n",
                       headers={"content-type": "text/csv; charset=latin-1"})
    assert r.status_code == 415
    r = await bam.post("/badcases/import", content=jsonl(report()), headers={**JSONL, **as_role("viewer")})
    assert r.status_code == 403
    assert await items(bam) == [] and await subjects(bam_db) == {}


async def many_rows(n: int, *, chunk_rows: int = 500) -> AsyncIterator[bytes]:
    """JSON lines made as they are sent, never all in memory; the last 1,000 rows repeat the first 1,000."""
    buf: list[str] = []
    for i in range(n):
        key = i - (n - 1000) if i >= n - 1000 else i
        buf.append(json.dumps({"function": "emotion", "ground_truth": f"label-{key}", "prediction": "happy",
                               "description": f"row {i} <b>bold</b>", "tags": [f"t{key % 7}"]}))
        if len(buf) == chunk_rows:
            yield ("\n".join(buf) + "\n").encode()
            buf = []
    if buf:
        yield ("\n".join(buf) + "\n").encode()


async def test_a_body_over_the_limit_is_413_and_writes_nothing(bam: httpx.AsyncClient, bam_db: str) -> None:
    bam.app.state.settings.max_import_bytes = 400_000  # type: ignore[attr-defined]
    big = jsonl(*[report(ground_truth=f"l{i}") for i in range(5000)])
    r = await bam.post("/badcases/import", content=big, headers=JSONL)  # Content-Length says it at once
    assert r.status_code == 413 and r.json()["error"] == "ImportTooLarge"
    # Streamed without a length: a chunk of rows is written before the limit is crossed, then undone.
    r = await bam.post("/badcases/import", content=many_rows(10_000), headers=JSONL)
    assert r.status_code == 413 and r.json()["error"] == "ImportTooLarge"
    assert await scalar(bam_db, "SELECT count(*) FROM badcase") == 0
    assert await scalar(bam_db, "SELECT count(*) FROM occurrence") == 0
    assert await subjects(bam_db) == {}


async def test_html_and_sql_in_text_are_stored_as_inert_text(bam: httpx.AsyncClient) -> None:
    evil = "<script>alert(1)</script>'); DROP TABLE badcase; --"
    body = csv_body({"function": "emotion", "description": evil, "ground_truth": "<img src=x onerror=alert(1)>",
                     "model_name": "'; DELETE FROM outbox; --"})
    r = await bam.post("/badcases/import", content=body, headers=CSV)
    assert r.json()["created"] == 1
    got = await bam.get(f"/badcases/{(await items(bam))[0]['id']}")
    assert got.headers["content-type"] == "application/json"
    assert got.json()["description"] == evil and got.json()["ground_truth"] == "<img src=x onerror=alert(1)>"
    assert got.json()["model_name"] == "'; DELETE FROM outbox; --"
    r = await bam.post("/badcases/import", content=csv_body({"function": "x", "tags": "<b>"}), headers=CSV)
    assert r.json()["failed"] == 1 and r.json()["errors"][0]["error"].startswith("tags.0:")


async def test_csv_streamed_in_tiny_pieces_reads_the_same(bam: httpx.AsyncClient) -> None:
    body = (b"function,description,ground_truth,tags\n"
            + b"".join(b'emotion,"line one\nline ""two"", %d",g%d,a;b\r\n' % (i, i) for i in range(40)))

    async def pieces(size: int) -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i:i + size]

    r = await bam.post("/badcases/import", content=pieces(7), headers=CSV)
    assert r.status_code == 200, r.text
    assert (r.json()["rows"], r.json()["created"], r.json()["failed"]) == (40, 40, 0)
    assert {b["description"] for b in await items(bam)} == {f'line one\nline "two", {i}' for i in range(40)}


async def test_a_20k_row_import_is_streamed_in_chunks(bam: httpx.AsyncClient, bam_db: str) -> None:
    r = await bam.post("/badcases/import", content=many_rows(20_000), headers=JSONL)
    assert r.status_code == 200, r.text
    assert r.json() == {"rows": 20_000, "created": 19_000, "merged": 1_000, "failed": 0, "errors": [],
                        "errors_not_shown": 0}
    assert await scalar(bam_db, "SELECT count(*) FROM badcase") == 19_000
    assert await scalar(bam_db, "SELECT count(*) FROM occurrence") == 20_000
    assert await scalar(bam_db, "SELECT count(*) FROM badcase WHERE frequency = 2") == 1_000
    assert await scalar(bam_db, "SELECT count(*) FROM badcase_tag") == 19_000
    assert await subjects(bam_db) == {"badcase.created": 19_000, "badcase.merged": 1_000}


async def test_errors_beyond_the_first_thousand_are_counted(bam: httpx.AsyncClient) -> None:
    r = await bam.post("/badcases/import", content=b"[]\n" * 1500 + jsonl(report()), headers=JSONL)
    result = r.json()
    assert (result["rows"], result["created"], result["failed"]) == (1501, 1, 1500)
    assert len(result["errors"]) == 1000 and result["errors_not_shown"] == 500


async def test_import_takes_the_same_data_fields_as_a_report_features_and_ids_included(bam: httpx.AsyncClient,
                                                                                         bam_db: str) -> None:
    task, deployment, version = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    row = {"alcohol": 13.2, "hue": 1.04}
    body = jsonl(report(function="wine", data=[], features=row, ground_truth="7", prediction="5", task_id=str(task),
                        model_version_id=str(version)),
                 report(deployment_id=str(deployment)),
                 report(function="wine", data=[], features={"alcohol": "x", "hue": [1]}))
    r = await bam.post("/badcases/import", content=body, headers=JSONL)
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["failed"]) == (2, 1) and r.json()["errors"][0]["row"] == 3
    wine = (await items(bam, function="wine"))[0]
    assert wine["features"] == row and wine["task_id"] == str(task) and wine["model_version_id"] == str(version)
    served = (await items(bam, deployment_id=str(deployment)))[0]
    assert served["function"] == "emotion" and served["features"] is None
    occurrence = (await bam.get(f"/badcases/{served['id']}/occurrences")).json()[0]
    assert occurrence["deployment_id"] == str(deployment)

    header = [*HEADER, "features", "task_id", "deployment_id", "model_version_id"]
    body = csv_body({"function": "wine", "ground_truth": "7", "prediction": "5", "features": json.dumps(row),
                     "task_id": str(task), "model_version_id": str(version)},
                    {"function": "wine", "ground_truth": "7", "prediction": "5",
                     "features": json.dumps({**row, "hue": 0.9}), "deployment_id": str(deployment)},
                    {"function": "wine", "ground_truth": "7", "features": "[1, 2]"},
                    {"function": "wine", "ground_truth": "7", "features": "{oops"},
                    {"function": "wine", "ground_truth": "7", "task_id": "nope"},
                    header=header)
    r = await bam.post("/badcases/import", content=body, headers=CSV)
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["merged"], result["created"], result["failed"]) == (1, 1, 3), result
    errors = {e["row"]: e["error"] for e in result["errors"]}
    assert "features" in errors[3] and "JSON object" in errors[3] and "features" in errors[4]
    assert "task_id" in errors[5]
    assert len(await items(bam, function="wine")) == 2
    assert len(await items(bam, deployment_id=str(deployment))) == 2
    assert await subjects(bam_db) == {"badcase.created": 3, "badcase.merged": 1}
