"""BAM benchmark: bulk import through the API against COPY, and list, search and stats latency at 1M badcases
against the same SQL run directly.

(a) import: `--rows` distinct reports (realistic vocabulary, an MD5 data reference each) streamed as one
    `POST /api/bam/badcases/import` (JSON lines, or CSV with `--format csv`) to `python -m bam api` running as
    a subprocess on a fresh migrated database; it writes badcases, tags, occurrences and one outbox event per
    badcase. Peer: asyncpg `copy_records_to_table` of the same rows, as complete `badcase` records (fingerprint,
    labels, priority and search text computed beforehand, not timed), into the `badcase` table of another
    fresh migrated database. rows/s of both and their ratio (goal >= 0.3), over `--import-rounds` alternating
    rounds (the peer first, then the API first; fresh databases each time), each side's best round compared.
(b) queries: `--query-rows` badcases (and their tags) loaded with COPY into a third fresh database (indexes
    dropped during the load and recreated as the migrations define them, then ANALYZE), with a realistic mix
    of functions, labels, statuses, severities, tags, dates and descriptions. p50/p95 over `--runs` calls of
    `GET /badcases?q=<word>` (a common and a rare word), `GET /badcases?function=&status=&sort=-priority`,
    and `GET /stats?group_by=function` and `group_by=label,prediction` through the API (one API call and one SQL
    replay alternately, so both sides see the same load on a shared machine); against the SQL those calls
    run, captured by running BAM's own service code in this process (a SQLAlchemy cursor hook) and replayed
    with asyncpg on the same database (goal: API p95 - SQL p95 <= 10 ms). The API is called as the gateway
    calls it in production, with the gateway's own HTTP/1.1 keep-alive client (gateway.proxy.upstream):
    httpx spent 2-3 ms of the bench's own CPU per call on a 2-core VM (measured: `--client httpx`), which
    would be counted as BAM's; each figure also prints the client's CPU per call.
Databases on MLIFE_TEST_PG_HOST/PORT/USER (127.0.0.1:5432 postgres), dropped at the end; the API subprocesses
are stopped. Run: .venv/bin/python -m bench.bam [--rows 100000] [--query-rows 1000000] [--runs 100]
[--budget 60] [--format jsonl|csv] [--explain] [--json] [--quick] [--out PATH]. --quick: 5k import rows,
50k query badcases, 20 calls. It prints the numbers and whether the goals are met;
it never exits non-zero on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
from sqlalchemy import event

from bam.badcase import dedup, priority
from bam.badcase.filters import BadcaseFilter
from bam.badcase.models import Badcase
from bam.badcase.service import BadcaseService, search_text
from bam.config import Settings
from bench._support import add_report_args, figure, service_api, write_figures
from gateway.proxy.upstream import UpstreamPool
from mlife_shared.auth import IDENTITY_HEADER, Identity, sign_identity
from mlife_shared.db import Database
from mlife_shared.migrations import upgrade

GOAL_RATIO, GOAL_OVERHEAD_MS = 0.3, 10.0
PG = dict(host=os.environ.get("MLIFE_TEST_PG_HOST", "127.0.0.1"),
          port=int(os.environ.get("MLIFE_TEST_PG_PORT", "5432")), user=os.environ.get("MLIFE_TEST_PG_USER", "postgres"))
COLUMNS = [c.name for c in Badcase.__table__.columns]
JSON_COLUMNS = {"tags", "data_refs", "prediction", "ground_truth"}

# ---- a small, skewed vocabulary ------------------------------------------------------------------------------

FUNCTIONS = {  # function: (weight, labels)
    "expression recognition": (22, ["happy", "sad", "angry", "neutral", "surprised", "disgusted", "afraid"]),
    "drowsiness detection": (14, ["awake", "drowsy", "asleep", "yawning"]),
    "ocr": (12, [str(d) for d in range(10)] + list("ABCDEFHKLMNPRTXYZ")),
    "traffic sign recognition": (10, ["stop", "yield", "speed 30", "speed 50", "speed 80", "no entry", "priority"]),
    "gesture recognition": (9, ["swipe left", "swipe right", "thumbs up", "palm", "fist", "point"]),
    "seat occupancy": (8, ["empty", "adult", "child", "child seat", "object"]),
    "speech command": (8, ["call", "navigate", "play", "stop", "volume up", "volume down", "cancel"]),
    "pedestrian detection": (7, ["pedestrian", "cyclist", "none"]),
    "face id": (6, ["match", "no match", "spoof"]),
    "lane detection": (4, ["solid", "dashed", "double", "none"]),
}
WORDS = [
    "driver", "mask", "night", "glare", "sunglasses", "blurry", "rain", "partial", "occluded", "tunnel", "backlight",
    "hat", "scarf", "beard", "profile", "tilted", "motion", "low", "light", "reflection", "window", "child",
    "passenger", "rear", "seat", "camera", "dirty", "lens", "overexposed", "underexposed", "snow", "fog", "dusk",
    "dawn", "headlights", "shadow", "crop", "small", "far", "near", "edge", "rotated", "mirror", "screen", "phone",
    "hand", "cigarette", "coffee", "yawning", "talking", "singing", "laughing", "crying", "frowning", "squint",
    "eyes", "closed", "glasses", "tinted", "helmet", "hood", "bandana", "makeup", "tattoo", "scar", "wrinkles",
    "elderly", "teenager", "toddler", "dog", "cat", "bag", "box", "jacket", "blanket", "sticker", "graffiti",
    "faded", "worn", "construction", "detour", "temporary", "handwritten", "stamp", "watermark", "noise",
    "compression", "artefact", "flicker", "vibration", "bump", "accent", "whisper", "echo", "wind", "music", "siren",
    "horn",
]
COMMON_WORD, RARE_WORD, RARE_SHARE = "dusk", "aquaplaning", 1e-4  # in ~5 % of descriptions; in ~0.01 %
TAGS = ["night", "glare", "occlusion", "rain", "tunnel", "child", "backlight", "motion-blur", "low-res", "fog",
        "snow", "mask", "sunglasses", "profile", "far", "edge-case", "new-camera", "fleet-a", "fleet-b", "beta",
        "regression-suite", "customer", "long-tail", "synthetic", "relabel", "dup-suspect", "hard", "easy",
        "audio", "video"]
STATUSES = (["new", "triaged", "in_progress", "fixed", "wont_fix", "regressed"], [40, 18, 10, 22, 5, 5])
SEVERITIES = (["low", "medium", "high", "critical"], [20, 50, 25, 5])
SOURCES = (["manual", "import", "testing", "serving"], [15, 25, 40, 20])
OWNERS = ["ana", "bo", "chen", "dario", "eva", "femi", "gus", "hana"]
QUERY_FUNCTION, QUERY_STATUS = "drowsiness detection", "new"


class Vocabulary:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.functions = list(FUNCTIONS)
        self.function_weights = [FUNCTIONS[f][0] for f in self.functions]
        self.word_weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(WORDS))]

    def report(self, i: int) -> dict[str, Any]:
        """One report as `POST /badcases` takes it; `i` makes its data (and so its fingerprint) unique."""
        rng = self.rng
        function = rng.choices(self.functions, self.function_weights)[0]
        labels = FUNCTIONS[function][1]
        truth, predicted = rng.sample(labels, 2)
        if function in ("pedestrian detection", "lane detection") and rng.random() < 0.5:
            truth = {"label": truth, "boxes": [[rng.randrange(640), rng.randrange(480), 32, 64]]}
        md5 = uuid.UUID(int=rng.getrandbits(128)).hex
        media = "audio" if function == "speech command" else "image"
        return {"function": function, "system_version": rng.choice(["dms-2.3", "dms-2.4", "dms-3.0"]),
                "model_name": function.split()[0] + "-net", "model_version": rng.choice(["1.0", "1.1", "2.0"]),
                "data": [{"kind": "md5", "value": md5, "media_type": media}], "prediction": predicted,
                "ground_truth": truth, "description": self.description(),
                "tags": list(dict.fromkeys(rng.choices(TAGS, k=rng.choice([0, 1, 1, 2, 2, 3])))),
                "severity": rng.choices(*SEVERITIES)[0], "device_id": f"car-{i % 5000}"}


    def description(self) -> str:
        words = self.rng.choices(WORDS, self.word_weights, k=self.rng.randint(4, 12))
        if self.rng.random() < RARE_SHARE:
            words.insert(self.rng.randrange(len(words)), RARE_WORD)
        return " ".join(words)


def badcase_record(report: dict[str, Any], *, now: datetime, reporter: str, source: str = "import",
                   status: str = "new", frequency: int = 1, first_seen: datetime | None = None,
                   last_seen: datetime | None = None, owner: str | None = None) -> dict[str, Any]:
    """The `badcase` row BAM stores for this report, computed the way `BadcaseService` computes it."""
    refs = report["data"]
    md5 = next((r["value"] for r in refs if r["kind"] == "md5"), None)
    first_seen, last_seen = first_seen or now, last_seen or now
    norm = dedup.normalise_text(report["description"])
    score = priority.score(frequency=frequency, severity=report["severity"], last_seen=last_seen, now=now)
    return {
        "id": uuid.uuid4(), "function": report["function"], "system_version": report["system_version"],
        "model_name": report["model_name"], "model_version": report["model_version"], "source": source,
        "reporter": reporter, "client_id": None, "device_id": report["device_id"],
        "description": report["description"], "description_norm": norm, "tags": report["tags"], "data_refs": refs,
        "data_md5": md5, "media_type": refs[0].get("media_type"), "phash": None, "prediction": report["prediction"],
        "ground_truth": report["ground_truth"], "prediction_label": dedup.label_of(report["prediction"]),
        "ground_truth_label": dedup.label_of(report["ground_truth"]),
        "fingerprint": dedup.fingerprint(report["function"], md5, refs, report["ground_truth"], report["prediction"]),
        "match_key": dedup.match_key(report["function"], report["ground_truth"], report["prediction"]),
        "status": status, "severity": report["severity"], "priority": score, "priority_score": score,
        "priority_override": None, "owner": owner, "frequency": frequency, "first_seen": first_seen,
        "last_seen": last_seen, "created_at": first_seen, "updated_at": last_seen,
        "fixed_at": last_seen if status == "fixed" else None,
        "regressed_at": last_seen if status == "regressed" else None, "test_data_requested_at": None,
        "search_text": search_text(norm, report["tags"]), "data_stored": False}


def as_copy_tuple(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(json.dumps(record[c]) if c in JSON_COLUMNS else record.get(c) for c in COLUMNS)


# ---- databases and the API process ---------------------------------------------------------------------------

@asynccontextmanager
async def databases(count: int) -> AsyncIterator[list[str]]:
    """Fresh PostgreSQL databases migrated with BAM's migrations; dropped afterwards."""
    names = [f"mlife_bench_bam_{uuid.uuid4().hex[:10]}" for _ in range(count)]
    admin = await asyncpg.connect(database="postgres", **PG)
    try:
        urls = []
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
            urls.append(f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{name}")
            await asyncio.to_thread(upgrade, "bam.migrations", urls[-1])
        yield urls
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def connect(url: str) -> Awaitable[asyncpg.Connection]:
    # JIT off, as in the services' own sessions (mlife_shared.db.make_engine): the same SQL, the same settings.
    return asyncpg.connect(database=url.rsplit("/", 1)[1], server_settings={"jit": "off"}, **PG)


def bam_api(database_url: str, secret: str) -> AbstractAsyncContextManager[str]:
    """`python -m bam api` on a free port; its base URL."""
    return service_api("bam", database_url, secret)


def identity(secret: str) -> dict[str, str]:
    return {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), "bench", "tester"), secret, ttl_seconds=6 * 3600)}


# ---- (a) import ------------------------------------------------------------------------------------------------

def body_chunks(reports: list[dict[str, Any]], fmt: str, size: int = 64 * 1024) -> list[bytes]:
    out, chunks = io.StringIO(), []
    writer = csv.writer(out, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(["function", "system_version", "model_name", "model_version", "data", "prediction",
                         "ground_truth", "description", "tags", "severity", "device_id"])
    for r in reports:
        if fmt == "csv":
            writer.writerow([r["function"], r["system_version"], r["model_name"], r["model_version"],
                             ";".join(f"{d['kind']}:{d['value']}" for d in r["data"]), r["prediction"],
                             r["ground_truth"] if isinstance(r["ground_truth"], str) else json.dumps(r["ground_truth"]),
                             r["description"], ";".join(r["tags"]), r["severity"], r["device_id"]])
        else:
            out.write(json.dumps(r) + "\n")
        if out.tell() >= size:
            chunks.append(out.getvalue().encode())
            out.seek(0)
            out.truncate()
    chunks.append(out.getvalue().encode())
    return chunks


async def bench_import(args: argparse.Namespace, secret: str) -> dict[str, Any]:
    vocab = Vocabulary(seed=1)
    if args.format == "csv":  # CSV carries no media_type: compare like with like
        reports = [{**r, "data": [{"kind": "md5", "value": r["data"][0]["value"]}]}
                   for r in (vocab.report(i) for i in range(args.rows))]
    else:
        reports = [vocab.report(i) for i in range(args.rows)]
    chunks = body_chunks(reports, args.format)
    now = datetime.now(UTC)
    records = [as_copy_tuple(badcase_record(r, now=now, reporter="bench")) for r in reports]
    content_type = "text/csv" if args.format == "csv" else "application/x-ndjson"

    async def api_once() -> float:
        async with databases(1) as (api_url,), bam_api(api_url, secret) as base:

            async def body() -> AsyncIterator[bytes]:
                for chunk in chunks:
                    yield chunk

            async with httpx.AsyncClient(timeout=None) as client:
                start = time.perf_counter()
                r = await client.post(f"{base}/badcases/import", content=body(),
                                      headers={**identity(secret), "content-type": content_type})
                seconds = time.perf_counter() - start
            if r.status_code != 200 or r.json()["created"] != args.rows:
                raise RuntimeError(f"the import failed: {r.status_code} {r.text[:500]}")
            return seconds

    async def copy_once() -> float:
        async with databases(1) as (copy_url,):
            conn = await connect(copy_url)
            try:
                start = time.perf_counter()
                await conn.copy_records_to_table("badcase", records=records, columns=COLUMNS)
                return time.perf_counter() - start
            finally:
                await conn.close()

    # Alternating rounds (the peer first, then the API first): whichever runs second meets PostgreSQL still
    # writing back the first one's pages; each side's best round is compared.
    rounds: list[dict[str, float]] = []
    for k in range(args.import_rounds):
        first, second = (("copy", copy_once), ("api", api_once)) if k % 2 == 0 else (("api", api_once),
                                                                                       ("copy", copy_once))
        measured = {first[0]: await first[1](), second[0]: await second[1]()}
        rounds.append({"api_rows_per_s": args.rows / measured["api"], "copy_rows_per_s": args.rows / measured["copy"]})
    api, copy = max(r["api_rows_per_s"] for r in rounds), max(r["copy_rows_per_s"] for r in rounds)
    return {"rows": args.rows, "format": args.format, "body_bytes": sum(map(len, chunks)),
            "api_seconds": args.rows / api, "api_rows_per_s": api, "copy_seconds": args.rows / copy,
            "copy_rows_per_s": copy, "rounds": rounds, "ratio": api / copy, "goal_met": api / copy >= GOAL_RATIO}


# ---- (b) queries at scale ---------------------------------------------------------------------------------------

def population(n: int, now: datetime, batch: int = 50_000) -> Iterator[tuple[list[tuple[Any, ...]],
                                                                             list[tuple[Any, ...]]]]:
    """`n` badcases in batches: (badcase rows, tag rows) ready for COPY."""
    vocab = Vocabulary(seed=2)
    rng = vocab.rng
    rows: list[tuple[Any, ...]] = []
    tags: list[tuple[Any, ...]] = []
    for i in range(n):
        report = vocab.report(i)
        first = now - timedelta(days=rng.uniform(0, 365))
        last = first + (now - first) * rng.random() ** 3
        status = rng.choices(*STATUSES)[0]
        record = badcase_record(report, now=now, reporter=rng.choice(OWNERS), source=rng.choices(*SOURCES)[0],
                                status=status, frequency=min(int(rng.paretovariate(1.3)), 500), first_seen=first,
                                last_seen=last, owner=rng.choice(OWNERS) if status != "new" else None)
        rows.append(as_copy_tuple(record))
        tags += [(record["id"], t) for t in record["tags"]]
        if len(rows) == batch:
            yield rows, tags
            rows, tags = [], []
    if rows:
        yield rows, tags


async def load(url: str, n: int) -> float:
    """COPY `n` badcases with their indexes dropped, then recreate the indexes and ANALYZE. Seconds taken."""
    start = time.perf_counter()
    conn = await connect(url)
    try:
        indexes = await conn.fetch(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename IN ('badcase', 'badcase_tag') AND "
            "NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)")
        # Per-column statistics targets the migrations set on indexes (ix_badcase_search): kept across the rebuild.
        targets = await conn.fetch(
            "SELECT c.relname, a.attnum, a.attstattarget FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_index x ON x.indexrelid = c.oid JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE t.relname IN ('badcase', 'badcase_tag') AND a.attstattarget > 0")
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        now = datetime.now(UTC)
        for rows, tags in population(n, now):
            await conn.copy_records_to_table("badcase", records=rows, columns=COLUMNS)
            await conn.copy_records_to_table("badcase_tag", records=tags, columns=["badcase_id", "tag"])
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for index in indexes:
            await conn.execute(index["indexdef"])
        for t in targets:
            await conn.execute(f'ALTER INDEX "{t["relname"]}" ALTER COLUMN {t["attnum"]} SET STATISTICS {t["attstattarget"]}')
        await conn.execute("VACUUM ANALYZE badcase")
        await conn.execute("VACUUM ANALYZE badcase_tag")
    finally:
        await conn.close()
    return time.perf_counter() - start


Call = Callable[[Any], Awaitable[Any]]


def queries() -> list[tuple[str, str, dict[str, str], Call]]:
    """(name, API path, query parameters, the same request as a call of BAM's service code with a session)."""
    settings = Settings(environment="test", identity_secret="unused", database_url="postgresql+asyncpg://unused")

    def page(**f: str) -> Call:
        return lambda session: BadcaseService(session, settings).page(BadcaseFilter(**f), sort="-priority", limit=50,
                                                                       cursor=None)

    def stats(group_by: str) -> Call:
        from bam.stats.service import StatsService  # present once the stats routes are

        return lambda session: StatsService(session).group(BadcaseFilter(), group_by, 50)

    both = {"function": QUERY_FUNCTION, "status": QUERY_STATUS}
    return [(f"list q={COMMON_WORD}", "/badcases", {"q": COMMON_WORD}, page(q=COMMON_WORD)),
            (f"list q={RARE_WORD}", "/badcases", {"q": RARE_WORD}, page(q=RARE_WORD)),
            ("list function+status", "/badcases", {**both, "sort": "-priority"}, page(**both)),
            ("stats by function", "/stats", {"group_by": "function"}, stats("function")),
            ("stats by label,prediction", "/stats", {"group_by": "label,prediction"}, stats("label,prediction"))]


async def captured_sql(url: str, call: Call) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements (as sent to asyncpg, with their parameters) that `call` runs."""
    db = Database(url)
    await db.ping()  # the dialect's first-connect queries are not the request's
    statements: list[tuple[str, tuple[Any, ...]]] = []

    def hook(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, tuple(parameters or ())))

    event.listen(db.engine.sync_engine, "before_cursor_execute", hook)
    try:
        async with db.transaction() as session:
            await call(session)
    finally:
        await db.dispose()
    return statements


def percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return s[len(s) // 2] * 1000, s[min(len(s) - 1, int(0.95 * len(s)))] * 1000


async def timed(runs: int, budget: float, once: Callable[[], Awaitable[None]]) -> tuple[float, float, int]:
    """p50 and p95 in ms over `runs` calls after a warm-up, or over as many as fit in `budget` seconds."""
    deadline = time.perf_counter() + budget
    for _ in range(max(3, runs // 10)):  # warm: connections, prepared statements, caches
        await once()
        if time.perf_counter() > deadline:
            break
    samples: list[float] = []
    while len(samples) < runs and (len(samples) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        await once()
        samples.append(time.perf_counter() - start)
    return (*percentiles(samples), len(samples))


async def timed_pair(runs: int, budget: float, api: Callable[[], Awaitable[None]],
                     sql: Callable[[], Awaitable[None]]) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
    """`timed` for the API call and its SQL, alternating one call of each, so that both see the same load on a
    shared machine: (p50, p95, runs) of each."""
    deadline = time.perf_counter() + 2 * budget
    for _ in range(max(3, runs // 10)):
        await api()
        await sql()
        if time.perf_counter() > deadline:
            break
    samples: tuple[list[float], list[float]] = ([], [])
    while len(samples[0]) < runs and (len(samples[0]) < 3 or time.perf_counter() < deadline):
        for side, once in zip(samples, (api, sql), strict=True):
            start = time.perf_counter()
            await once()
            side.append(time.perf_counter() - start)
    a, q = samples
    return (*percentiles(a), len(a)), (*percentiles(q), len(q))


class LeanClient:
    """GETs with the gateway's client to the services (one keep-alive connection), or with httpx."""

    def __init__(self, base: str, headers: dict[str, str], kind: str) -> None:
        self.base, self.kind = base, kind
        self.httpx = httpx.AsyncClient(headers=headers, timeout=120)
        self.pool = UpstreamPool(base, max_connections=1, keepalive_expiry=60.0, connect_timeout=10.0,
                                 read_timeout=120.0)
        self.headers = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

    async def get(self, path: str, params: dict[str, str] | None = None) -> None:
        if self.kind == "httpx":
            (await self.httpx.get(self.base + path, params=params)).raise_for_status()
            return
        answer = await self.pool.request(b"GET", self.pool.target(path.encode(), urlencode(params or {}).encode()),
                                         self.headers)
        body = await answer.read()
        if answer.status != 200:
            raise RuntimeError(f"GET {path} {params}: {answer.status} {body[:300]!r}")

    async def aclose(self) -> None:
        await self.pool.close()
        await self.httpx.aclose()


async def bench_queries(args: argparse.Namespace, secret: str) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    async with databases(1) as (url,):
        load_seconds = await load(url, args.query_rows)
        conn = await connect(url)
        async with bam_api(url, secret) as base, httpx.AsyncClient(headers=identity(secret), timeout=120) as client:
            paths = (await client.get(base.removesuffix("/api/bam") + "/openapi.json")).json()["paths"]
            lean = LeanClient(base, identity(secret), args.client)

            async def healthz() -> None:
                await lean.get("/healthz")

            floor = await timed(args.runs, args.budget, healthz)  # HTTP, middleware, client: no auth, no database
            for name, path, params, call in queries():
                if f"/api/bam{path}" not in paths:
                    print(f"skipped {name}: BAM has no {path} route", file=sys.stderr)
                    continue
                statements = await captured_sql(url, call)

                client_cpu: list[float] = []

                async def api(path: str = path, params: dict[str, str] = params,
                              client_cpu: list[float] = client_cpu) -> None:
                    start = time.process_time()  # this process's CPU: the client's side of the call alone
                    await lean.get(path, params)
                    client_cpu.append(time.process_time() - start)

                async def sql(statements: list[tuple[str, tuple[Any, ...]]] = statements) -> None:
                    for statement, parameters in statements:
                        await conn.fetch(statement, *parameters)

                (api_p50, api_p95, api_runs), (sql_p50, sql_p95, sql_runs) = await timed_pair(
                    args.runs, args.budget, api, sql)
                results.append({"query": name, "path": path, "params": params, "statements": len(statements),
                                "api_p50": api_p50, "api_p95": api_p95, "sql_p50": sql_p50, "sql_p95": sql_p95,
                                "overhead_p95": api_p95 - sql_p95, "runs": min(api_runs, sql_runs),
                                "client_cpu_ms": 1000 * sum(client_cpu) / len(client_cpu)})
                if args.explain:
                    for statement, parameters in statements:
                        plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *parameters)
                        print(f"-- {name}\n{statement}\n" + "\n".join(r[0] for r in plan) + "\n", file=sys.stderr)
            await lean.aclose()
        await conn.close()
    return {"badcases": args.query_rows, "load_seconds": load_seconds, "runs": args.runs, "results": results,
            "client": args.client,
            "healthz_p50": floor[0], "healthz_p95": floor[1],
            "goal_met": all(r["overhead_p95"] <= GOAL_OVERHEAD_MS for r in results)}


def report(summary: dict[str, Any]) -> None:
    if (a := summary.get("import")) is not None:
        print(f"(a) import of {a['rows']} distinct reports ({a['format']}, {a['body_bytes'] / 1e6:.1f} MB) in one "
              f"streamed POST /badcases/import: {a['api_seconds']:.1f} s, {a['api_rows_per_s']:.0f} rows/s")
        print(f"    asyncpg COPY of the same {a['rows']} badcase rows: {a['copy_seconds']:.1f} s, "
              f"{a['copy_rows_per_s']:.0f} rows/s")
        print(f"    ratio API/COPY = {a['ratio']:.3f}  (goal >= {GOAL_RATIO}: {'met' if a['goal_met'] else 'MISSED'}); "
              "each side's best of " + ", ".join(f"{r['api_rows_per_s']:.0f}/{r['copy_rows_per_s']:.0f}"
                                                  for r in a["rounds"]) + " rows/s (API/COPY by round)")
    if (q := summary.get("queries")) is not None:
        print(f"(b) {q['badcases']} badcases (COPY + indexes + ANALYZE in {q['load_seconds']:.0f} s); up to "
              f"{q['runs']} sequential calls each (fewer when a query exceeds the time budget); ms")
        print(f"    {'query':<28}{'API p50':>9}{'API p95':>9}{'SQL p50':>9}{'SQL p95':>9}{'API-SQL p95':>13}"
              f"{'runs':>6}{'client CPU':>12}")
        print(f"    {'GET /healthz (no database)':<28}{q['healthz_p50']:>9.1f}{q['healthz_p95']:>9.1f}")
        for r in q["results"]:
            print(f"    {r['query']:<28}{r['api_p50']:>9.1f}{r['api_p95']:>9.1f}{r['sql_p50']:>9.1f}"
                  f"{r['sql_p95']:>9.1f}{r['overhead_p95']:>13.1f}{r['runs']:>6}{r['client_cpu_ms']:>12.2f}")
        print(f"    client: {q['client']} (client CPU: ms of the bench process's CPU per API call)")
        print(f"    API p95 - SQL p95 <= {GOAL_OVERHEAD_MS:g} ms for every query: "
              f"{'met' if q['goal_met'] else 'MISSED'}")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    secret = uuid.uuid4().hex + uuid.uuid4().hex
    summary: dict[str, Any] = {"args": vars(args)}
    if args.rows:
        summary["import"] = await bench_import(args, secret)
    if args.query_rows:
        summary["queries"] = await bench_queries(args, secret)
    summary["load"] = list(os.getloadavg())
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        report(summary)
        print(f"    load average: {' '.join(f'{x:.2f}' for x in summary['load'])}")
    write_figures(args.out, "bam", figures(summary), summary, quick=args.quick)
    return summary


def figures(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The bench-table rows: the import ratio, and API p95 - SQL p95 of each query."""
    rows = []
    if (a := summary.get("import")) is not None:
        rows.append(figure("bam: import rows/s API/COPY", a["ratio"], "x", f">= {GOAL_RATIO}x", a["goal_met"],
                           peer=a["copy_rows_per_s"], peer_name="asyncpg copy_records_to_table",
                           detail=f"{a['rows']} rows ({a['format']}), API {a['api_rows_per_s']:.0f} rows/s, best of "
                                  f"{len(a['rounds'])} alternating rounds each"))
    for r in (summary.get("queries") or {}).get("results", []):
        rows.append(figure(f"bam: {r['query']} API p95 - SQL p95", r["overhead_p95"], "ms",
                           f"<= {GOAL_OVERHEAD_MS:g} ms", r["overhead_p95"] <= GOAL_OVERHEAD_MS, peer=r["sql_p95"],
                           peer_name="the same SQL with asyncpg",
                           detail=f"{summary['queries']['badcases']} badcases, API p95 {r['api_p95']:.1f} ms, "
                                  f"{r['runs']} runs, {summary['queries'].get('client', 'httpx')} client "
                                  f"{r.get('client_cpu_ms', 0):.1f} ms CPU a call"))
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000, help="reports in the import run (0: skip it)")
    p.add_argument("--query-rows", type=int, default=1_000_000, help="badcases for the query run (0: skip it)")
    p.add_argument("--runs", type=int, default=100,
                   help="timed calls of each query (a p95 of 50 calls of a 100 ms stats query swung by 5-10 ms)")
    p.add_argument("--budget", type=float, default=60.0, help="seconds at most per query and side (min. 3 calls)")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="the import body's format")
    p.add_argument("--import-rounds", type=int, default=None,
                   help="alternating import rounds, each side's best compared (default 2, quick 1)")
    p.add_argument("--client", choices=["gateway", "httpx"], default="gateway",
                   help="the HTTP client of the query run: the gateway's own (as in production) or httpx")
    p.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of every query's SQL to stderr")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the text")
    add_report_args(p)
    args = p.parse_args(argv)
    if args.quick:  # a smoke run: 5k imported rows, 50k queried badcases, a few calls each
        given = {a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:])}
        if "--rows" not in given:
            args.rows = min(args.rows, 5_000)
        if "--query-rows" not in given:
            args.query_rows = min(args.query_rows, 50_000)
        if "--runs" not in given:
            args.runs = min(args.runs, 20)
        if "--budget" not in given:
            args.budget = min(args.budget, 5.0)
    if args.import_rounds is None:
        args.import_rounds = 1 if args.quick else 2
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
