"""Documents: CSV/JSON/XML import with per-row errors and safe XML, versions, retrieval, search,
analysis, comparison and every export format."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.dam.helpers import png, to_csv


async def upload(dam: httpx.AsyncClient, data: bytes, name: str | None = None) -> str:
    r = await dam.post("/files", content=data, params={"name": name} if name else None)
    assert r.status_code in (200, 201), r.text
    return r.json()["md5"]


async def three_images(dam: httpx.AsyncClient) -> list[str]:
    return [await upload(dam, png(10 + i, 20, seed=i), f"set/img{i}.png") for i in range(3)]


async def test_csv_import_with_paths_extra_columns_and_structured_annotations(dam: httpx.AsyncClient) -> None:
    m = await three_images(dam)
    body = to_csv(["md5", "path", "annotation", "place", "device"],
                  [[m[0], "", "cat", "Paris", "cam1"],
                   ["", "set/img1.png", "dog", "Lyon", "cam2"],
                   [m[2], "set/img2.png", json.dumps({"boxes": [{"label": "cat", "x": 1, "y": 2, "width": 3, "height": 4}]}),
                    "Paris", "cam1"]])
    r = await dam.post("/documents", params={"name": "pets"}, content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["columns"] == ["place", "device"] and doc["current_version"] == 1 and doc["row_count"] == 3
    rows = (await dam.get(f"/documents/{doc['id']}/rows")).json()
    assert rows["total"] == 3
    assert [x["md5"] for x in rows["items"]] == m
    assert rows["items"][2]["annotation"]["boxes"][0]["label"] == "cat" and rows["items"][2]["label"] == "cat"
    assert rows["items"][0]["media_type"] == "image" and rows["items"][0]["width"] == 10
    # filters: by annotation, column, type, size, keyword
    f = (await dam.get(f"/documents/{doc['id']}/rows", params={"labels": "cat"})).json()
    assert f["total"] == 2
    f = (await dam.get(f"/documents/{doc['id']}/rows", params={"column": "place=Lyon"})).json()
    assert [x["md5"] for x in f["items"]] == [m[1]]
    f = (await dam.get(f"/documents/{doc['id']}/rows", params={"media_types": "video"})).json()
    assert f["total"] == 0
    f = (await dam.get(f"/documents/{doc['id']}/rows", params={"q": "cam2"})).json()
    assert f["total"] == 1
    bad = await dam.get(f"/documents/{doc['id']}/rows", params={"column": "colour=red"})
    assert bad.status_code == 422 and bad.json()["error"] == "UnknownColumn"
    dup = await dam.post("/documents", params={"name": "pets"}, content=body, headers={"content-type": "text/csv"})
    assert dup.status_code == 409
    reserved = await dam.post("/documents", params={"name": "Badcase Test Set"}, content=body,
                              headers={"content-type": "text/csv"})
    assert reserved.status_code == 409


async def test_invalid_rows_are_reported_each_and_nothing_is_written(dam: httpx.AsyncClient) -> None:
    m = await three_images(dam)
    body = to_csv(["md5", "path", "annotation"],
                  [[m[0], "", "cat"], ["nothex", "", "dog"], ["0" * 32, "", "dog"], ["", "../etc/passwd", "x"],
                   ["", "nowhere.png", "x"], [m[1], "", "{broken"]])
    r = await dam.post("/documents", params={"name": "bad"}, content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]["errors"]
    assert [e["row"] for e in errors] == [2, 3, 4, 5, 6]
    assert (await dam.get("/documents")).json() == []
    for payload, ctype in [(b"", "text/csv"), (b"md5\n" + b"a,b\n", "text/csv"), (b"[1, 2]", "application/json"),
                           (b"\xff\xfe\x00", "text/csv"), (b"<rows><row>", "application/xml"),
                           (b"name,x\nfoo,bar\n", "text/csv")]:
        r = await dam.post("/documents", params={"name": "bad"}, content=payload, headers={"content-type": ctype})
        assert r.status_code == 422, (payload, r.text)
    big = b"md5\n" + b"0" * (70 * 1024 * 1024)
    r = await dam.post("/documents", params={"name": "big"}, content=big, headers={"content-type": "text/csv"})
    assert r.status_code == 413
    assert (await dam.get("/documents")).json() == []


async def test_xml_entities_and_external_dtds_are_refused(dam: httpx.AsyncClient) -> None:
    m = await three_images(dam)
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            b"<rows><row><md5>" + m[0].encode() + b"</md5><annotation>&lol2;</annotation></row></rows>")
    external = (b'<?xml version="1.0"?><!DOCTYPE rows SYSTEM "http://127.0.0.1:1/evil.dtd">'
                b"<rows><row><md5>" + m[0].encode() + b"</md5></row></rows>")
    xxe = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b"<rows><row><md5>" + m[0].encode() + b"</md5><annotation>&x;</annotation></row></rows>")
    for doc in (bomb, external, xxe):
        r = await dam.post("/documents", params={"name": "x"}, content=doc, headers={"content-type": "application/xml"})
        assert r.status_code == 422 and r.json()["error"] == "InvalidDocument", r.text
    good = (b"<rows><row><md5>" + m[0].encode() + b"</md5><annotation>cat</annotation><place>Nice</place></row>"
            b"<row><path>set/img1.png</path><annotation>{\"label\": \"dog\"}</annotation></row></rows>")
    r = await dam.post("/documents", params={"name": "x"}, content=good, headers={"content-type": "application/xml"})
    assert r.status_code == 201, r.text
    rows = (await dam.get(f"/documents/{r.json()['id']}/rows")).json()["items"]
    assert [x["label"] for x in rows] == ["cat", "dog"] and rows[0]["extra"] == {"place": "Nice"}


async def test_versions_stay_readable_and_compare(dam: httpx.AsyncClient) -> None:
    m = await three_images(dam)
    v1 = [{"md5": m[0], "annotation": "cat", "place": "Paris"}, {"md5": m[1], "annotation": "dog", "place": "Lyon"}]
    r = await dam.post("/documents", params={"name": "animals"}, json=v1)
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    v2 = [{"md5": m[1], "annotation": "cat", "place": "Lyon"}, {"md5": m[2], "annotation": "dog", "place": "Nice"}]
    r = await dam.post(f"/documents/{doc_id}/versions", json=v2)
    assert r.status_code == 201 and r.json()["current_version"] == 2
    unknown = await dam.post(f"/documents/{doc_id}/versions", json=[{"md5": m[0], "annotation": "x", "colour": "red"}])
    assert unknown.status_code == 422 and unknown.json()["error"] == "UnknownColumn"
    r = await dam.post(f"/documents/{doc_id}/versions", params={"mode": "append"}, json=[{"md5": m[0], "annotation": "bird"}])
    assert r.json()["current_version"] == 3 and r.json()["row_count"] == 3
    versions = (await dam.get(f"/documents/{doc_id}/versions")).json()
    assert [v["row_count"] for v in versions] == [2, 2, 3]
    old = (await dam.get(f"/documents/{doc_id}/rows", params={"version": 1})).json()["items"]
    assert [(x["md5"], x["label"]) for x in old] == [(m[0], "cat"), (m[1], "dog")]
    assert (await dam.get(f"/documents/{doc_id}/rows", params={"version": 9})).status_code == 404
    cmp = (await dam.get("/documents/compare", params={"a": doc_id, "a_version": 1, "b": doc_id, "b_version": 2})).json()
    assert cmp["added"] == [m[2]] and cmp["removed"] == [m[0]] and cmp["changed"] == [m[1]]
    assert {c["label"]: (c["a"], c["b"]) for c in cmp["classes"]} == {"cat": (1, 1), "dog": (1, 1)}
    stats = (await dam.get(f"/documents/{doc_id}/stats")).json()
    assert stats["by_class"] == {"cat": 1, "dog": 1, "bird": 1}
    assert stats["by_media_type"] == {"image": 3} and stats["by_column"]["place"]["(none)"] == 1
    assert sum(stats["by_dimensions"].values()) == 3 and stats["by_size"] == {"<10KB": 3}
    sel = (await dam.get(f"/documents/{doc_id}/stats", params={"labels": "cat"})).json()
    assert sel["row_count"] == 1


async def test_exports_round_trip_and_label_studio_and_coco(dam: httpx.AsyncClient) -> None:
    m = await three_images(dam)
    rows = [{"md5": m[0], "path": "set/img0.png", "annotation": "cat", "place": "Paris"},
            {"md5": m[1], "annotation": {"boxes": [{"label": "dog", "x": 1, "y": 2, "width": 5, "height": 6}]},
             "place": "Lyon"}]
    doc_id = (await dam.post("/documents", params={"name": "ex"}, json=rows)).json()["id"]
    for fmt, ctype in [("csv", "text/csv"), ("json", "application/json"), ("xml", "application/xml")]:
        r = await dam.get(f"/documents/{doc_id}/export", params={"format": fmt})
        assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
        back = await dam.post("/documents", params={"name": f"ex-{fmt}", "format": fmt}, content=r.content)
        assert back.status_code == 201, (fmt, back.text)
        again = (await dam.get(f"/documents/{back.json()['id']}/rows")).json()["items"]
        assert [(x["md5"], x["annotation"], x["extra"]) for x in again] == [
            (m[0], "cat", {"place": "Paris"}), (m[1], rows[1]["annotation"], {"place": "Lyon"})], fmt
    ls = (await dam.get(f"/documents/{doc_id}/export", params={"format": "labelstudio"})).json()
    assert ls[0]["data"]["image"].endswith(f"/api/dam/files/{m[0]}/content")
    assert ls[0]["predictions"][0]["result"][0]["value"] == {"choices": ["cat"]}
    rect = ls[1]["predictions"][0]["result"][0]
    assert rect["type"] == "rectanglelabels" and rect["value"]["x"] == 1 * 100 / 11
    coco = (await dam.get(f"/documents/{doc_id}/export", params={"format": "coco"})).json()
    assert coco["categories"] == [{"id": 1, "name": "dog"}]
    assert coco["annotations"][0]["bbox"] == [1, 2, 5, 6] and coco["images"][1]["width"] == 11
    assert (await dam.get(f"/documents/{doc_id}/export", params={"format": "pdf"})).status_code == 422


async def test_search_across_documents(dam: httpx.AsyncClient) -> None:
    m = await three_images(dam)
    await dam.post("/documents", params={"name": "d1"}, json=[{"md5": m[0], "annotation": "cat", "device": "cam1"}])
    await dam.post("/documents", params={"name": "d2"}, json=[{"md5": m[1], "annotation": "cat", "device": "cam2"},
                                                              {"md5": m[2], "annotation": "dog", "device": "cam1"}])
    r = (await dam.post("/search", json={"labels": ["cat"]})).json()
    assert r["total"] == 2 and {x["md5"] for x in r["items"]} == {m[0], m[1]}
    r = (await dam.post("/search", json={"q": "cam1", "columns": {"device": "cam1"}})).json()
    assert {x["md5"] for x in r["items"]} == {m[0], m[2]}
    r = (await dam.post("/search", json={"labels": ["dog"], "min_size": 1, "media_types": ["image"]})).json()
    assert [x["md5"] for x in r["items"]] == [m[2]] and r["items"][0]["document_version"] == 1
    assert (await dam.post("/search", json={"columns": {"nope": "x"}})).status_code == 422
    assert (await dam.post("/search", json={"unknown_field": 1})).status_code == 422
    docs = (await dam.get("/documents", params={"q": "d2"})).json()
    assert [d["name"] for d in docs] == ["d2"]


async def test_values_postgresql_cannot_store_are_422(dam: httpx.AsyncClient) -> None:
    m = await three_images(dam)
    for rows in ([{"md5": m[0], "annotation": "a\u0000b"}], [{"md5": m[0], "annotation": "x", "place": "\ud800"}],
                 [{"md5": m[0], "annotation": {"score": float("nan")}}]):
        body = json.dumps(rows).encode()  # NaN and lone surrogates are what a careless client sends
        r = await dam.post("/documents", params={"name": "weird"}, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, (rows, r.text)
    deep = b"[" * 100_000 + b"]" * 100_000
    r = await dam.post("/documents", params={"name": "deep"}, content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 422
    deep_cell = b'md5,annotation\n' + m[0].encode() + b',"' + b"[" * 50_000 + b']"\n'
    r = await dam.post("/documents", params={"name": "deep"}, content=deep_cell, headers={"content-type": "text/csv"})
    assert r.status_code == 422
    r = await dam.post("/documents", params={"name": "nul\u0000name"}, json=[{"md5": m[0]}])
    assert r.status_code == 422
    assert (await dam.post("/search", json={"q": "a\u0000"})).status_code == 422
    for path, params in [("/documents", {"q": "\u0000"}), ("/datasets", {"name": "\u0000"}),
                         ("/files", {"media_type": "\u0000"}), ("/labelling-tasks", {"status": "\u0000"})]:
        assert (await dam.get(path, params=params)).status_code == 422, path
    assert (await dam.post("/datasets", json={"name": "x\u0000", "documents": [{"id": str(uuid.uuid4())}]})).status_code == 422
    assert (await dam.get("/documents")).json() == []
