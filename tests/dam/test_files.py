"""Upload: streaming with server MD5, dedup, concurrency on S3, check, size limit, content sniffing,
multipart, interrupted uploads, unsafe names; archives with safe extraction."""

from __future__ import annotations

import asyncio
import zipfile

import httpx
import pytest

from tests.dam.helpers import md5, png, random_bytes, tar_bytes, zip_bytes


async def keys(client: httpx.AsyncClient, prefix: str = "") -> list[str]:
    store = client.app.state.store  # type: ignore[attr-defined]
    return [k async for k in store.list(prefix)]


async def test_raw_upload_sniffs_type_and_dedups(dam: httpx.AsyncClient) -> None:
    data = png(20, 10)
    r = await dam.post("/files", params={"name": "pics/cat.txt"}, content=data,
                       headers={"content-type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["md5"] == md5(data) and body["size"] == len(data) and not body["duplicate"]
    assert body["media_type"] == "image" and body["content_type"] == "image/png"
    assert (body["width"], body["height"]) == (20, 10)
    assert body["key"] == f"dam/files/{md5(data)}"
    again = await dam.post("/files", params={"name": "other.png"}, content=data)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    got = await dam.get(f"/files/{md5(data)}/content")
    assert got.content == data and got.headers["content-type"] == "image/png"
    assert await keys(dam) == [f"files/{md5(data)}"]


async def test_multipart_upload_streams_the_file_part(dam: httpx.AsyncClient) -> None:
    data = b'{"text": "hello"}'
    r = await dam.post("/files", files={"file": ("notes/a.bin", data, "image/png")}, data={"comment": "x"})
    assert r.status_code == 201, r.text
    assert r.json()["media_type"] == "json" and r.json()["path"] == "notes/a.bin"
    assert r.json()["md5"] == md5(data)
    nofile = await dam.post("/files", files={"comment": (None, "x")})
    assert nofile.status_code in (400, 422)


async def test_check_tells_which_md5s_exist(dam: httpx.AsyncClient) -> None:
    data = random_bytes(1000)
    await dam.post("/files", content=data)
    r = await dam.post("/files/check", json={"md5s": [md5(data), "0" * 32]})
    assert r.json() == {"existing": [md5(data)], "missing": ["0" * 32]}
    bad = await dam.post("/files/check", json={"md5s": ["xyz"]})
    assert bad.status_code == 422 and bad.json()["error"] == "InvalidMd5"


async def test_size_limit_is_413_and_leaves_nothing(dam: httpx.AsyncClient) -> None:
    big = random_bytes(5 * 1024 * 1024)
    r = await dam.post("/files", content=big)
    assert r.status_code == 413 and r.json()["error"] == "UploadTooLarge"

    async def chunked():  # no Content-Length: the limit is enforced while streaming
        for i in range(0, len(big), 1 << 20):
            yield big[i:i + (1 << 20)]

    r = await dam.post("/files", content=chunked())
    assert r.status_code == 413
    assert await keys(dam) == []
    assert (await dam.post("/files/check", json={"md5s": [md5(big)]})).json()["existing"] == []


async def test_wrong_md5_and_unsafe_names_write_nothing(dam: httpx.AsyncClient) -> None:
    data = random_bytes(100)
    r = await dam.post("/files", params={"md5": "0" * 32}, content=data)
    assert r.status_code == 422 and r.json()["error"] == "Md5Mismatch"
    for name in ["../etc/passwd", "%2e%2e/x", "%252e%252e%252fx", "a\\b", "/abs/path", "a\x00b", "C:/x"]:
        r = await dam.post("/files", params={"name": name}, content=data)
        assert r.status_code == 422, (name, r.text)
    assert await keys(dam) == []
    for bad in ["../x", "ZZ" * 16]:
        assert (await dam.get(f"/files/{bad}")).status_code in (404, 422)


@pytest.mark.parametrize("sent", [100_000, 2 * 1024 * 1024])
async def test_interrupted_upload_leaves_nothing(dam_s3: httpx.AsyncClient, sent: int) -> None:
    async def broken():
        yield random_bytes(sent)
        raise ConnectionResetError("client went away")

    try:
        r = await dam_s3.post("/files", content=broken())
        assert r.status_code >= 400
    except ConnectionResetError:
        pass
    assert await keys(dam_s3, "incoming/") == []


@pytest.mark.parametrize("size", [pytest.param(200_000, id="small-hashed-first"),
                                  pytest.param(3 * 1024 * 1024, id="large-streamed")])
async def test_concurrent_uploads_of_one_content_on_s3_make_one_object(dam_s3: httpx.AsyncClient, size: int) -> None:
    data = random_bytes(size)
    results = await asyncio.gather(*[dam_s3.post("/files", content=data) for _ in range(5)])
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 200, 200, 200, 201], [r.text for r in results]
    assert {r.json()["md5"] for r in results} == {md5(data)}
    assert await keys(dam_s3, f"files/{md5(data)}") == [f"files/{md5(data)}"]
    assert await keys(dam_s3, "incoming/") == []
    got = await dam_s3.get(f"/files/{md5(data)}/content")
    assert md5(got.content) == md5(data)


async def test_archive_of_a_folder_is_extracted_with_paths(dam: httpx.AsyncClient) -> None:
    a, b = png(seed=1), png(seed=2)
    r = await dam.post("/files/archive", params={"prefix": "batch1"},
                       content=zip_bytes({"imgs/": b"", "imgs/a.png": a, "imgs/b.png": b, "imgs/a-copy.png": a}))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["count"] == 3 and body["new"] == 2 and body["duplicates"] == 1
    assert {f["path"] for f in body["files"]} == {"batch1/imgs/a.png", "batch1/imgs/b.png", "batch1/imgs/a-copy.png"}
    t = await dam.post("/files/archive", content=tar_bytes({"dir/c.txt": b"hello"}, gz=True))
    assert t.status_code == 201 and t.json()["files"][0]["media_type"] == "text"


@pytest.mark.parametrize("archive", [
    pytest.param(lambda: zip_bytes({"ok.txt": b"fine", "../evil.txt": b"x"}), id="zip-slip"),
    pytest.param(lambda: zip_bytes({"ok.txt": b"fine", "/etc/evil": b"x"}), id="zip-absolute"),
    pytest.param(lambda: zip_bytes({"ok.txt": b"fine", "a\\..\\..\\evil": b"x"}), id="zip-backslash"),
    pytest.param(lambda: tar_bytes({"ok.txt": b"fine"}, links={"link": "/etc/passwd"}), id="tar-symlink"),
    pytest.param(lambda: tar_bytes({"ok.txt": b"fine", "../../evil": b"x"}), id="tar-slip"),
    pytest.param(lambda: zip_bytes({"ok.txt": b"fine", "bomb.bin": b"\0" * (6 * 1024 * 1024)}), id="zip-bomb"),
    pytest.param(lambda: zip_bytes({f"f{i}.txt": str(i).encode() for i in range(60)}), id="too-many-entries"),
    pytest.param(lambda: b"PK\x03\x04 this is not a zip", id="malformed"),
])
async def test_unsafe_archives_are_refused_and_write_nothing(dam: httpx.AsyncClient, archive) -> None:  # type: ignore[no-untyped-def]
    r = await dam.post("/files/archive", content=archive())
    assert r.status_code in (400, 413, 422), r.text
    assert "detail" in r.json()
    assert await keys(dam) == []
    assert (await dam.post("/files/check", json={"md5s": [md5(b"fine")]})).json()["existing"] == []


async def test_archive_expanding_past_the_limit_removes_what_it_stored(dam: httpx.AsyncClient) -> None:
    # Stored (not compressed) entries: no ratio alarm; the expanded total passes the 8 MiB limit.
    entries = {f"part{i}.bin": random_bytes(3 * 1024 * 1024) for i in range(3)}
    r = await dam.post("/files/archive", content=zip_bytes(entries, compression=zipfile.ZIP_STORED))
    assert r.status_code == 413, r.text
    assert await keys(dam) == []


@pytest.mark.parametrize("size", [1000, 2 * 1024 * 1024])
async def test_traversal_in_a_multipart_filename_or_an_archive_prefix_writes_nothing(dam: httpx.AsyncClient,
                                                                                    size: int) -> None:
    data = random_bytes(size)
    for filename in ["../../etc/passwd", "..\\..\\evil", "/abs", "%2e%2e/x"]:
        r = await dam.post("/files", files={"file": (filename, data, "application/octet-stream")})
        assert r.status_code == 422, (filename, r.text)
    for prefix in ["../up", "%252e%252e", "/root"]:
        r = await dam.post("/files/archive", params={"prefix": prefix}, content=zip_bytes({"a.txt": b"a"}))
        assert r.status_code == 422, (prefix, r.text)
    assert await keys(dam) == []
    assert (await dam.post("/files/check", json={"md5s": [md5(data)]})).json()["existing"] == []


async def test_archive_entry_names_that_are_not_utf8_are_refused(dam: httpx.AsyncClient) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tf:
        info = tarfile.TarInfo("caf\xe9.txt")  # written as one latin-1 byte: not UTF-8
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    r = await dam.post("/files/archive", content=buf.getvalue())
    assert r.status_code == 422, r.text
    assert await keys(dam) == []


async def test_a_browser_folder_upload_with_many_file_parts(dam: httpx.AsyncClient) -> None:
    a, b, big = png(seed=5), png(seed=6), random_bytes(2 * 1024 * 1024)  # big: past the small-body size
    files = [("files", ("trip/day1/a.png", a, "image/png")), ("files", ("trip/day1/b.png", b, "image/png")),
             ("files", ("trip/raw.bin", big, "application/octet-stream")), ("files", ("trip/a-again.png", a, "image/png"))]
    r = await dam.post("/files", params={"many": "true", "prefix": "u1"}, files=files, data={"note": "hello"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["count"] == 4 and body["new"] == 3 and body["duplicates"] == 1
    assert [f["path"] for f in body["files"]] == ["u1/trip/day1/a.png", "u1/trip/day1/b.png", "u1/trip/raw.bin",
                                                   "u1/trip/a-again.png"]
    assert [f["md5"] for f in body["files"]] == [md5(a), md5(b), md5(big), md5(a)]
    assert (await dam.get(f"/files/{md5(big)}/content")).content == big
    # one unsafe name: nothing of the form is kept
    bad = [("files", ("ok.bin", random_bytes(10), "x/y")), ("files", ("../evil", b"x", "x/y"))]
    r = await dam.post("/files", params={"many": "true"}, files=bad)
    assert r.status_code == 422
    assert len(await keys(dam, "files/")) == 3


PART = b'--b1\r\ncontent-disposition: form-data; name="file"; filename="a.bin"\r\n\r\n' + b"x" * 1000


@pytest.mark.parametrize(("many", "ctype", "body", "says"), [
    pytest.param(False, "multipart/form-data", PART, "no boundary", id="no-boundary"),
    pytest.param(False, "multipart/form-data; boundary=b1", b"not a multipart body", "malformed", id="malformed"),
    pytest.param(True, "multipart/form-data; boundary=b1", b"--b1\r\nnot a header line", "malformed",
                 id="many-malformed"),
    pytest.param(True, "multipart/form-data; boundary=b1", PART, "ended inside a file part", id="many-cut-short"),
])
async def test_a_broken_multipart_body_is_refused_and_stores_nothing(dam: httpx.AsyncClient, many: bool, ctype: str,
                                                                     body: bytes, says: str) -> None:
    r = await dam.post("/files", params={"many": "true"} if many else {}, content=body,
                       headers={"content-type": ctype})
    assert r.status_code == 400 and r.json()["error"] == "InvalidUpload", r.text
    assert says in r.json()["detail"]
    assert await keys(dam) == []


@pytest.mark.parametrize("small", [pytest.param(8 * 1024 * 1024, id="buffered"), pytest.param(64 * 1024, id="streamed")])
async def test_a_client_that_disconnects_mid_upload_leaves_nothing(dam_db: str, nats_url: str, tmp_path,  # type: ignore[no-untyped-def]
                                                                   small: int) -> None:
    from tests.dam.helpers import dam_settings, serve_dam
    from tests.support.auth import as_role
    from tests.support.objects import s3_settings
    from tests.support.processes import free_port

    port = free_port()
    settings = dam_settings(dam_db, nats_url, tmp_path, small_upload_bytes=small, **s3_settings())
    async for client in serve_dam(settings, port):
        store = client.app.state.store  # type: ignore[attr-defined]
        before = [k async for k in store.list("incoming/")]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (f"POST /api/dam/files?name=cut.bin HTTP/1.1\r\nHost: dam\r\nContent-Length: {4 * 1024 * 1024}\r\n"
                "Content-Type: application/octet-stream\r\n")
        head += "".join(f"{k}: {v}\r\n" for k, v in as_role("tester").items()) + "\r\n"
        writer.write(head.encode() + random_bytes(1024 * 1024))
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()  # the client goes away with 3 MiB unsent
        await asyncio.sleep(1.0)
        assert [k async for k in store.list("incoming/")] == before
        page = (await client.get("/files", params={"limit": 10})).json()
        assert page == []


async def test_numpy_tensor_files_are_tensors(dam: httpx.AsyncClient) -> None:
    """A served model input kept as a .npy (or an .npz of several inputs) is a file like any other: type `tensor`."""
    import io

    import numpy as np

    one, several = io.BytesIO(), io.BytesIO()
    np.save(one, np.arange(12, dtype=np.float32).reshape(1, 12))
    np.savez(several, image=np.zeros((1, 3, 8, 8), dtype=np.float32), meta=np.ones((1, 2)))
    for data, ctype in ((one.getvalue(), "application/x-npy"), (several.getvalue(), "application/x-npz")):
        r = await dam.post("/files", content=data, params={"name": "input.bin"})
        assert r.status_code == 201, r.text
        assert (r.json()["media_type"], r.json()["content_type"]) == ("tensor", ctype)
        listed = (await dam.get("/files", params={"media_type": "tensor"})).json()
        assert r.json()["md5"] in {f["md5"] for f in listed}
    plain_zip = zip_bytes({"a.txt": b"hello"})
    assert (await dam.post("/files", content=plain_zip)).json()["media_type"] == "archive"
