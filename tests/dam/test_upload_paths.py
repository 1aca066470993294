"""The upload paths chosen by size and by what the client sends: a large body with `?md5=` streamed straight to
`files/<md5>` (no temporary key, no copy), and what it leaves when it is wrong or too large; a small image's
cleaners reading the bytes in hand."""

from __future__ import annotations

import asyncio

import httpx

from tests.dam.helpers import md5, random_bytes

LARGE = 3 * 1024 * 1024  # above the fixtures' small_upload_bytes (1 MiB)


async def keys(client: httpx.AsyncClient, prefix: str = "") -> list[str]:
    store = client.app.state.store  # type: ignore[attr-defined]
    return [k async for k in store.list(prefix)]


async def test_large_upload_with_its_md5_goes_straight_to_its_address(dam_s3: httpx.AsyncClient) -> None:
    data = random_bytes(LARGE)
    m = md5(data)
    r = await dam_s3.post("/files", params={"md5": m, "name": "big/one.bin"}, content=data)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["md5"] == m and body["size"] == len(data) and body["path"] == "big/one.bin"
    assert await keys(dam_s3, f"files/{m}") == [f"files/{m}"]
    assert await keys(dam_s3, "incoming/") == []
    assert md5((await dam_s3.get(f"/files/{m}/content")).content) == m
    again = await dam_s3.post("/files", params={"md5": m}, content=data)
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["size"] == len(data)
    listed = (await dam_s3.get(f"/files/{m}")).json()
    assert listed["size"] == len(data)


async def test_concurrent_large_uploads_with_md5_make_one_object(dam_s3: httpx.AsyncClient) -> None:
    data = random_bytes(LARGE)
    m = md5(data)
    results = await asyncio.gather(*[dam_s3.post("/files", params={"md5": m}, content=data) for _ in range(4)])
    assert sorted(r.status_code for r in results) == [200, 200, 200, 201], [r.text for r in results]
    assert await keys(dam_s3, f"files/{m}") == [f"files/{m}"]
    assert await keys(dam_s3, "incoming/") == []


async def test_large_upload_with_a_wrong_md5_writes_nothing(dam_s3: httpx.AsyncClient) -> None:
    data, other = random_bytes(LARGE), random_bytes(16)
    claimed = md5(other)
    r = await dam_s3.post("/files", params={"md5": claimed}, content=data)
    assert r.status_code == 422 and r.json()["error"] == "Md5Mismatch", r.text
    assert await keys(dam_s3, f"files/{claimed}") == []
    assert await keys(dam_s3, f"files/{md5(data)}") == []
    assert await keys(dam_s3, "incoming/") == []
    check = (await dam_s3.post("/files/check", json={"md5s": [claimed, md5(data)]})).json()
    assert check["existing"] == []
    # the claimed content can still be uploaded afterwards (no row was left behind)
    assert (await dam_s3.post("/files", params={"md5": claimed}, content=other)).status_code == 201


async def test_oversize_large_upload_with_md5_writes_nothing(dam: httpx.AsyncClient) -> None:
    data = random_bytes(5 * 1024 * 1024)  # the `dam` fixture's limit is 4 MiB

    async def chunks():  # no Content-Length: the limit is found while streaming
        for i in range(0, len(data), 256 * 1024):
            yield data[i:i + 256 * 1024]

    r = await dam.post("/files", params={"md5": md5(data)}, content=chunks())
    assert r.status_code == 413, r.text
    assert await keys(dam) == []
    assert (await dam.post("/files/check", json={"md5s": [md5(data)]})).json()["existing"] == []
