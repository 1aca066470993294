"""DAM benchmark: uploads through the API to the S3 backend against the `minio` client writing straight to
the same S3 server, dedup re-upload against the first upload, and the server's MD5 against hashlib.

(a) `--images` files of ~`--image-kb` KB (a small PNG padded with random bytes), `--concurrency` at a time,
    as raw `POST /api/dam/files` (urllib3 from `--concurrency` threads: the peer's own HTTP client, so both sides
    pay the same client cost on the shared cores) to `python -m dam api` (a subprocess on a fresh migrated PostgreSQL
    database, object store = the S3 server of scripts/testenv.py). Peer: `Minio.put_object` of the same
    bytes with the same concurrency (threads) into the same bucket. objects/s and ratio (goal >= 0.7).
(b) one file of `--big-mb` MB (random, from a temporary file) streamed as one `POST /files?md5=<its MD5>` with
    its Content-Length (the SDK's way after `/files/check`: DAM streams it straight to `dam/files/<md5>` in
    whole parts) vs `Minio.fput_object` of
    the same file (16 MiB parts); MB/s and ratio, the worst of the rounds (goal >= 0.8 every run). The same
    upload without `md5` (a temporary key, then a server-side copy to `files/<md5>`, the content address being
    known only at the end) is printed beside it.
(c) dedup: the same image set again, the client's way (`POST /files/check` with every MD5, upload the
    missing: none), and naively (every file re-sent; the server answers `duplicate`), against (a)
    (goal: check-based re-upload >= 10x faster than the first upload).
(d) MD5: the store's streaming hasher (`mlife_shared.objectstore.base.Hasher`, 64 KiB chunks as the
    server receives them) vs `hashlib.md5` over the same bytes in one call; MB/s and ratio.
(a) and (b) run in `--rounds` alternating rounds (default 2; (b): the peer first in odd rounds, DAM first in
even ones) and print os.getloadavg(): the machine is shared, compare the ratios of one run only.
Run: .venv/bin/python scripts/testenv.py -- .venv/bin/python -m bench.dam [--images 2000] [--image-kb 100]
[--big-mb 1024] [--concurrency 8] [--rounds 2] [--quick] [--out PATH]. It prints the numbers and whether the
goals are met; never exits non-zero. --quick: 300 images, 64 MB, one round.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
import urllib3
from minio import Minio
from PIL import Image

from bench._support import PIDS, add_report_args, cpu_seconds, figure, service_api, write_figures
from mlife_shared.auth import IDENTITY_HEADER, Identity, sign_identity
from mlife_shared.migrations import upgrade
from mlife_shared.objectstore.base import Hasher

PG = dict(host=os.environ.get("MLIFE_TEST_PG_HOST", "127.0.0.1"),
          port=int(os.environ.get("MLIFE_TEST_PG_PORT", "5432")), user=os.environ.get("MLIFE_TEST_PG_USER", "postgres"))
S3 = dict(endpoint=os.environ.get("MLIFE_TEST_S3_ENDPOINT", ""), access_key=os.environ.get("MLIFE_TEST_S3_ACCESS_KEY", ""),
          secret_key=os.environ.get("MLIFE_TEST_S3_SECRET_KEY", ""), bucket=os.environ.get("MLIFE_TEST_S3_BUCKET", "mlife-test"))


def images(n: int, kb: int) -> list[bytes]:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 20, 30)).save(buf, format="PNG")
    head = buf.getvalue()
    return [head + os.urandom(max(kb * 1024 - len(head), 0)) for _ in range(n)]


@asynccontextmanager
async def database() -> AsyncIterator[str]:
    name = f"mlife_bench_dam_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database="postgres", **PG)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
        await asyncio.to_thread(upgrade, "dam.migrations", url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def dam_api(database_url: str, secret: str) -> AbstractAsyncContextManager[str]:
    """`python -m dam api` on a free port, on the S3 backend; its base URL."""
    return service_api("dam", database_url, secret, {
        "MLIFE_OBJECT_STORE": "s3", "MLIFE_S3_ENDPOINT": S3["endpoint"], "MLIFE_S3_ACCESS_KEY": S3["access_key"],
        "MLIFE_S3_SECRET_KEY": S3["secret_key"], "MLIFE_S3_BUCKET": S3["bucket"],
        "MLIFE_DAM_MAX_UPLOAD_BYTES": str(8 * 1024 ** 3)})


async def upload_all(client: httpx.AsyncClient, blobs: list[bytes], concurrency: int) -> tuple[float, list[int]]:
    sem = asyncio.Semaphore(concurrency)
    codes: list[int] = []

    async def one(b: bytes) -> None:
        async with sem:
            r = await client.post("/files", content=b, headers={"content-type": "application/octet-stream"})
            codes.append(r.status_code)

    start = time.perf_counter()
    await asyncio.gather(*[one(b) for b in blobs])
    return time.perf_counter() - start, codes


def api_put_all(base: str, headers: dict[str, str], blobs: list[bytes], concurrency: int) -> tuple[float, list[int]]:
    """(a)'s API side with the peer's HTTP client: urllib3 (what `minio` sends with) from `concurrency` threads,
    keep-alive, so both sides pay the same client cost on the shared cores (httpx cost ~2x more CPU a request)."""
    pool = urllib3.PoolManager(maxsize=concurrency, retries=False, timeout=600)
    head = {**headers, "content-type": "application/octet-stream"}
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as threads:
        codes = list(threads.map(lambda b: pool.request("POST", f"{base}/files", body=b, headers=head).status, blobs))
    return time.perf_counter() - start, codes


def minio_client() -> Minio:
    return Minio(S3["endpoint"], access_key=S3["access_key"], secret_key=S3["secret_key"], secure=False)


def peer_put_all(blobs: list[bytes], concurrency: int, prefix: str) -> float:
    mc = minio_client()
    if not mc.bucket_exists(S3["bucket"]):
        mc.make_bucket(S3["bucket"])
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda ib: mc.put_object(S3["bucket"], f"{prefix}/{ib[0]}", io.BytesIO(ib[1]), len(ib[1])),
                      enumerate(blobs)))
    return time.perf_counter() - start


def peer_cleanup(prefix: str) -> None:
    mc = minio_client()
    for o in mc.list_objects(S3["bucket"], prefix=prefix + "/", recursive=True):
        mc.remove_object(S3["bucket"], o.object_name)


def upload_big(base: str, headers: dict[str, str], path: Path, md5: str | None) -> float:
    """(b)'s API side the SDK's way (mlife.client.upload_file: the file streamed with its Content-Length), sent
    with the peer's HTTP client, urllib3, in 1 MiB writes (httpx cost twice its CPU on the client side: on
    saturated cores that is counted against DAM)."""

    def chunks() -> Iterator[bytes]:
        with open(path, "rb") as fh:
            while data := fh.read(1 << 20):
                yield data

    url = f"{base}/files" + (f"?md5={md5}" if md5 else "")
    start = time.perf_counter()
    r = urllib3.request("POST", url, body=chunks(), timeout=600, retries=False,
                        headers={**headers, "content-type": "application/octet-stream",
                                 "content-length": str(path.stat().st_size)})
    assert r.status == 201, r.data[:500]
    return time.perf_counter() - start


class CpuMeter:
    """CPU seconds of the bench process, the DAM API and the S3 server (MLIFE_TEST_S3_PID, when testenv
    started it) over a block: on 2 saturated cores the wall-clock ratio follows the ratio of CPU spent."""

    def __init__(self, dam_pid: int | None) -> None:
        s3 = os.environ.get("MLIFE_TEST_S3_PID")
        self.pids = {"dam": dam_pid, "s3": int(s3) if s3 else None}

    def now(self) -> dict[str, float]:
        return {"bench": time.process_time(),
                **{name: cpu_seconds(pid) if pid else 0.0 for name, pid in self.pids.items()}}

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float], wall: float) -> dict[str, float]:
        used = {name: after[name] - before[name] for name in before}
        return {**used, "total": sum(used.values()), "cores": sum(used.values()) / wall}


def write_big(path: Path, mb: int) -> str:
    h = hashlib.md5()
    with open(path, "wb") as fh:
        for _ in range(mb):
            block = os.urandom(1 << 20)
            h.update(block)
            fh.write(block)
    return h.hexdigest()


async def run(args: argparse.Namespace) -> None:
    assert S3["endpoint"], "MLIFE_TEST_S3_ENDPOINT is not set: run through scripts/testenv.py"
    secret = uuid.uuid4().hex
    headers = {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), "bench", "tester"), secret, ttl_seconds=6 * 3600)}
    rounds = max(1, args.rounds)
    blobs = images(args.images, args.image_kb)
    total_mb = sum(map(len, blobs)) / 1e6
    prefix = f"bench-peer/{uuid.uuid4().hex}"
    tmp = Path(tempfile.mkdtemp(prefix="mlife-bench-dam-big-"))
    figures: list[dict[str, object]] = []
    raw: dict[str, object] = {"load_start": os.getloadavg(), "rounds": rounds}
    print(f"load {os.getloadavg()}")
    try:
        async with database() as url, dam_api(url, secret) as base, \
                httpx.AsyncClient(base_url=base, headers=headers, timeout=600,
                                  limits=httpx.Limits(max_connections=args.concurrency * 2)) as client:
            # (a) many images, in alternating rounds (each round its own slice: the API must store new content)
            await upload_all(client, images(args.concurrency * 4, args.image_kb), args.concurrency)  # warm up
            await asyncio.to_thread(peer_put_all, blobs[: args.concurrency * 4], args.concurrency, prefix + "/warm")
            api_s = peer_s = 0.0
            per_round: list[tuple[float, float]] = []
            for r in range(rounds):
                part = blobs[r::rounds]
                p = await asyncio.to_thread(peer_put_all, part, args.concurrency, f"{prefix}/{r}")
                a, codes = await asyncio.to_thread(api_put_all, base, headers, part, args.concurrency)
                assert codes.count(201) == len(part), f"unexpected answers: {set(codes)}"
                per_round.append((len(part) / a, len(part) / p))
                api_s, peer_s = api_s + a, peer_s + p
            a_api, a_peer = len(blobs) / api_s, len(blobs) / peer_s
            small = a_api / a_peer
            print(f"(a) {len(blobs)} files of ~{args.image_kb} KB ({total_mb:.0f} MB), {args.concurrency} at a time, "
                  f"{rounds} alternating rounds")
            print(f"    DAM API -> S3 : {api_s:6.2f} s  {a_api:8.1f} objects/s  {total_mb / api_s:7.1f} MB/s")
            print(f"    minio -> S3   : {peer_s:6.2f} s  {a_peer:8.1f} objects/s  {total_mb / peer_s:7.1f} MB/s")
            print(f"    per round (API, peer objects/s): {[(round(x), round(y)) for x, y in per_round]}")
            print(f"    ratio {small:.2f}  (goal >= 0.7: {'met' if small >= 0.7 else 'MISSED'})  load {os.getloadavg()}")
            figures.append(figure("DAM: 100 KB uploads API/minio", round(small, 3), "x", ">= 0.7x", small >= 0.7,
                                  peer=round(a_peer, 1), peer_name="minio put_object, same concurrency",
                                  detail=f"{a_api:.0f} vs {a_peer:.0f} objects/s, {len(blobs)} x {args.image_kb} KB, "
                                         f"concurrency {args.concurrency}"))
            raw["small"] = {"api_objects_s": a_api, "peer_objects_s": a_peer, "rounds": per_round}
            # (c) dedup
            md5s = [hashlib.md5(b).hexdigest() for b in blobs]
            start = time.perf_counter()
            check = (await client.post("/files/check", json={"md5s": md5s})).json()
            missing = set(check["missing"])
            await upload_all(client, [b for b, m in zip(blobs, md5s, strict=True) if m in missing], args.concurrency)
            check_s = time.perf_counter() - start
            naive_s, ncodes = await upload_all(client, blobs, args.concurrency)
            assert not missing and ncodes.count(200) == len(blobs)
            speedup = api_s / check_s
            print(f"(c) re-upload of the same {len(blobs)} files")
            print(f"    check first (POST /files/check, {len(missing)} to send): {check_s:6.3f} s  "
                  f"{speedup:7.1f}x faster than the first upload (goal >= 10x: {'met' if speedup >= 10 else 'MISSED'})")
            print(f"    naive (every file re-sent, server answers duplicate): {naive_s:6.2f} s  "
                  f"{api_s / naive_s:5.2f}x faster than the first upload")
            figures.append(figure("DAM: dedup re-upload (check first) speed-up", round(speedup, 1), "x", ">= 10x",
                                  speedup >= 10, detail=f"naive re-send {api_s / naive_s:.2f}x"))
            # (b) one big file, alternating rounds: peer, API with ?md5= (straight to files/<md5>), API without
            # (temporary key + server-side copy)
            mc = minio_client()
            ratios: list[float] = []
            plain: list[float] = []
            meter = CpuMeter(PIDS.get(base))
            cpu: dict[str, list[dict[str, float]]] = {"peer": [], "api": []}
            for r in range(rounds):
                big = tmp / f"big{r}.bin"
                md5 = await asyncio.to_thread(write_big, big, args.big_mb)
                big_mb = big.stat().st_size / 1e6

                def peer(r: int = r, big: Path = big) -> float:
                    start = time.perf_counter()
                    mc.fput_object(S3["bucket"], f"{prefix}/big{r}.bin", str(big), part_size=16 * 1024 * 1024)
                    return time.perf_counter() - start

                def api(big: Path = big, md5: str = md5) -> float:
                    return upload_big(base, headers, big, md5)

                # Alternating which side goes first: the second one shares the disk with the store still
                # writing back the first one's gigabyte.
                for side in (("peer", "api") if r % 2 == 0 else ("api", "peer")):
                    before = meter.now()
                    took = await asyncio.to_thread(peer if side == "peer" else api)
                    cpu[side].append(meter.spent(before, meter.now(), took))
                    if side == "peer":
                        peer_big = took
                    else:
                        api_big = took
                big.unlink()
                big = tmp / f"plain{r}.bin"
                await asyncio.to_thread(write_big, big, args.big_mb)
                api_plain = await asyncio.to_thread(upload_big, base, headers, big, None)
                big.unlink()
                ratios.append(peer_big / api_big)
                plain.append(peer_big / api_plain)
                print(f"(b) round {r + 1}: one file of {big_mb:.0f} MB: minio fput_object {big_mb / peer_big:6.1f} MB/s; "
                      f"DAM API with ?md5= {big_mb / api_big:6.1f} MB/s (ratio {ratios[-1]:.2f}); without md5 "
                      f"(temporary key + server-side copy) {big_mb / api_plain:6.1f} MB/s (ratio {plain[-1]:.2f}); "
                      f"load {os.getloadavg()}")
                for side in ("peer", "api"):
                    c = cpu[side][-1]
                    print(f"    CPU seconds, {side:4}: bench {c['bench']:5.2f}  DAM {c['dam']:5.2f}  S3 server "
                          f"{c['s3']:5.2f}  total {c['total']:5.2f} ({c['cores']:.2f} of {os.cpu_count()} cores busy)")
                print(f"    CPU ratio peer/API {cpu['peer'][-1]['total'] / cpu['api'][-1]['total']:.2f} (with every "
                      "core busy, the wall-clock ratio can be no better)")
            worst = min(ratios)
            print(f"    worst ratio {worst:.2f} (goal >= 0.8 every run: {'met' if worst >= 0.8 else 'MISSED'})")
            figures.append(figure(f"DAM: {args.big_mb} MB upload API/fput_object (worst round)", round(worst, 3), "x",
                                  ">= 0.8x every run", worst >= 0.8, peer_name="minio fput_object, 16 MiB parts",
                                  detail="client sends ?md5= and its Content-Length (as after /files/check); "
                                         "CPU ratio peer/API " + ", ".join(
                                             f"{p['total'] / a['total']:.2f}" for p, a in zip(cpu["peer"], cpu["api"],
                                                                                             strict=True))
                                         + f"; without md5 (temporary key + copy): {', '.join(f'{x:.2f}' for x in plain)}"))
            raw["big"] = {"mb": args.big_mb, "ratios_md5": ratios, "ratios_plain": plain, "cpu": cpu}
        # (d) MD5
        data = os.urandom(min(args.big_mb, 512) * 1024 * 1024)
        start = time.perf_counter()
        h = Hasher(None)
        view = memoryview(data)
        for i in range(0, len(data), 64 * 1024):
            h.update(view[i:i + 64 * 1024])  # type: ignore[arg-type]
        server_s = time.perf_counter() - start
        start = time.perf_counter()
        ref = hashlib.md5(data).hexdigest()
        lib_s = time.perf_counter() - start
        assert ref == h.hexdigest()
        mb = len(data) / 1e6
        print(f"(d) MD5 of {mb:.0f} MB: server hasher (64 KiB chunks) {mb / server_s:7.1f} MB/s, "
              f"hashlib one call {mb / lib_s:7.1f} MB/s, ratio {lib_s / server_s:.2f}")
        figures.append(figure("DAM: MD5 streaming hasher / hashlib", round(lib_s / server_s, 3), "x", "informational",
                              None, peer=round(mb / lib_s, 1), peer_name="hashlib.md5 one call"))
        raw["load_end"] = os.getloadavg()
        write_figures(args.out, "dam", figures, raw, quick=args.quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        with suppress(Exception):
            await asyncio.to_thread(peer_cleanup, prefix)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=None, help="default 2000 (300 with --quick)")
    p.add_argument("--image-kb", type=int, default=100)
    p.add_argument("--big-mb", type=int, default=None, help="default 1024 (64 with --quick)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds, default 2 (1 with --quick)")
    add_report_args(p)
    args = p.parse_args()
    args.images = args.images or (300 if args.quick else 2000)
    args.big_mb = args.big_mb or (64 if args.quick else 1024)
    args.rounds = args.rounds or (1 if args.quick else 2)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
