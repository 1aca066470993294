"""Test-environment harness used by `make test`.

Usage: testenv.py -- <command> [args...]

Makes sure PostgreSQL, NATS JetStream and S3 are available, exports their addresses
as MLIFE_TEST_* variables, runs the command, cleans up whatever it started (never
anything it found running) and exits with the command's exit code.

PostgreSQL (127.0.0.1:5432, user postgres, trust) and NATS (127.0.0.1:4222 with
JetStream) are reused when they answer; otherwise private ones are started on free
ports. S3 is always a private SeaweedFS `weed mini` with a random key per run.
For testing the harness, MLIFE_TESTENV_FORCE_OWN=pg,nats skips the reuse checks.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import nats
import urllib3  # minio's own HTTP library
from minio import Minio

HOST = "127.0.0.1"
BUCKET = "mlife-test"
BIN = Path(sys.executable).parent
FORCE_OWN = set(os.environ.get("MLIFE_TESTENV_FORCE_OWN", "").split(","))
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CLEANUPS: list[Callable[[], object]] = []  # run last-in first-out at exit
TAKEN: set[int] = set()  # ports already handed out in this run


class SetupError(Exception):
    """A server could not be found or started."""


class Interrupted(BaseException):
    """A signal arrived while the harness itself was busy; args[0] is its number."""


def log(msg: str) -> None:
    print(f"testenv: {msg}", file=sys.stderr, flush=True)


def make_tmpdir(name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"mlife-{name}-"))
    CLEANUPS.append(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def free_port(plus_10000: bool = False) -> int:
    """A currently free port on HOST; with plus_10000, port+10000 is free too."""
    for _ in range(200):
        with socket.socket() as s, socket.socket() as s2, contextlib.suppress(OSError, OverflowError):
            s.bind((HOST, 0))
            port = s.getsockname()[1]
            if plus_10000:
                s2.bind((HOST, port + 10000))
            if not TAKEN & {port, port + 10000}:
                TAKEN.update({port, port + 10000} if plus_10000 else {port})
                return port
    raise SetupError("no free port found")


def spawn(argv: list[str], logfile: Path, **kw) -> subprocess.Popen:
    """Start a server in its own process group; the group is killed at cleanup."""
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, **kw)
    CLEANUPS.append(lambda: stop(proc, group=True))
    return proc


def stop(proc: subprocess.Popen, group: bool) -> None:
    """SIGTERM, then SIGKILL, the process (or its whole process group) until it exits."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if proc.poll() is not None:  # reaped: its group id may belong to someone else now
            return
        os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)


def remove_stale_sockets(paths: list[Path]) -> None:
    """Delete unix sockets nobody listens on any more (weed leaves some in /tmp)."""
    for path in paths:
        with socket.socket(socket.AF_UNIX) as s:
            if s.connect_ex(str(path)) == errno.ECONNREFUSED:
                path.unlink(missing_ok=True)


async def run(argv: list[str], **kw) -> None:
    """Run a one-shot command to completion (in a thread, so cancelling does not kill it)."""
    res = await asyncio.to_thread(subprocess.run, argv, stdin=subprocess.DEVNULL, capture_output=True, **kw)
    if res.returncode != 0:
        out = (res.stdout + res.stderr).decode(errors="replace")[-2000:]
        raise SetupError(f"{' '.join(argv)} failed ({res.returncode}):\n{out}")


async def wait_until(what: str, check: Callable[[], Awaitable[bool]], proc: subprocess.Popen | None,
                     logfile: Path, timeout: float) -> None:
    """Poll check() until it is true; fail with the log tail on timeout or if proc exits."""
    deadline = time.monotonic() + timeout
    while not await check():
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            tail = logfile.read_text(errors="replace")[-3000:] if logfile.exists() else ""
            raise SetupError(f"{what} did not become ready; log tail:\n{tail}")
        await asyncio.sleep(0.25)


async def pg_ok(port: int) -> bool:
    try:
        conn = await asyncpg.connect(host=HOST, port=port, user="postgres", database="postgres", timeout=3)
        await conn.close()
        return True
    except Exception:  # noqa: BLE001 - any failure of the probe means: not usable (yet)
        return False


async def nats_ok(url: str) -> bool:
    async def quiet(_err: Exception) -> None:
        pass
    try:
        nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False, error_cb=quiet)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()
        return True
    except Exception:  # noqa: BLE001 - any failure of the probe means: not usable (yet)
        return False


def pg_bindir() -> Path | None:
    dirs = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")
            if p.parent.parent.name.isdigit() and (p.parent / "pg_ctl").exists()]
    return max(dirs, key=lambda d: int(d.parent.name), default=None)


async def ensure_pg(env: dict[str, str]) -> None:
    port = 5432
    if "pg" in FORCE_OWN or not await pg_ok(port):
        if (bindir := pg_bindir()) is None:
            log("postgres: binaries not found, installing them with apt-get")
            await run(["apt-get", "update"])
            await run(["apt-get", "install", "-y", "postgresql"],
                      env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
            if (bindir := pg_bindir()) is None:
                raise SetupError("postgresql installed but initdb/pg_ctl not found")
        tmp = make_tmpdir("pg")
        data, pglog, port = tmp / "data", tmp / "server.log", free_port()
        shutil.chown(tmp, "postgres", "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
        pg_ctl = [*as_pg, str(bindir / "pg_ctl"), "-D", str(data)]
        await run([*as_pg, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"], cwd=tmp)
        CLEANUPS.append(lambda: (data / "postmaster.pid").exists() and subprocess.run(
            [*pg_ctl, "-m", "fast", "-w", "stop"], cwd=tmp, capture_output=True, timeout=120))
        opts = f"-p {port} -k {data} -c listen_addresses={HOST} -c fsync=off"
        await run([*pg_ctl, "-l", str(pglog), "-o", opts, "-w", "-t", "60", "start"], cwd=tmp,
                  start_new_session=True)
        await wait_until("postgres", lambda: pg_ok(port), None, pglog, timeout=30)
        log(f"postgres: started own server at {HOST}:{port} (data {data})")
    else:
        log(f"postgres: found running at {HOST}:{port}")
    env.update(MLIFE_TEST_PG_HOST=HOST, MLIFE_TEST_PG_PORT=str(port), MLIFE_TEST_PG_USER="postgres")


async def ensure_nats(env: dict[str, str]) -> None:
    url = f"nats://{HOST}:4222"
    if "nats" in FORCE_OWN or not await nats_ok(url):
        tmp = make_tmpdir("nats")
        port, natslog = free_port(), tmp / "nats.log"
        url = f"nats://{HOST}:{port}"
        proc = spawn([str(BIN / "nats-server"), "-a", HOST, "-p", str(port), "-js", "-sd", str(tmp / "js")],
                     natslog, cwd=tmp)
        await wait_until("nats-server", lambda: nats_ok(url), proc, natslog, timeout=30)
        log(f"nats: started own JetStream server at {HOST}:{port} (pid {proc.pid})")
    else:
        log(f"nats: found JetStream server running at {HOST}:4222")
    env["MLIFE_TEST_NATS_URL"] = url


def s3_roundtrip(endpoint: str, key: str, secret: str) -> bool:
    """Create the bucket if needed and put/get a small object."""
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=10), retries=False)
    client = Minio(endpoint, access_key=key, secret_key=secret, secure=False, http_client=http)
    try:
        if not client.bucket_exists(BUCKET):
            client.make_bucket(BUCKET)
        client.put_object(BUCKET, "testenv-probe", io.BytesIO(b"ok"), 2)
        return client.get_object(BUCKET, "testenv-probe").read() == b"ok"
    except Exception:  # noqa: BLE001 - not up yet: connection refused, 5xx, auth not loaded, ...
        return False
    finally:
        http.clear()


async def start_s3(env: dict[str, str]) -> None:
    tmp = make_tmpdir("s3")
    key, secret = f"mlife{secrets.token_hex(8)}", secrets.token_urlsafe(30)
    identity = {"name": "admin", "credentials": [{"accessKey": key, "secretKey": secret}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"]}
    (tmp / "s3.json").write_text(json.dumps({"identities": [identity]}))
    (tmp / "data").mkdir()
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ports}
    admin = free_port(plus_10000=True)  # mini's worker dials admin.port+10000, so keep that default
    # weed hard-codes /tmp/seaweedfs-<svc>-grpc-<port>.sock and does not always remove them
    sockets = [Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock")
               for name, port in [*grpc.items(), ("admin", admin + 10000)]]
    CLEANUPS.append(lambda: remove_stale_sockets(sockets))
    argv = [str(BIN / "weed"), "mini", f"-dir={tmp / 'data'}", f"-ip={HOST}", f"-ip.bind={HOST}",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-volume.preStopSeconds=0",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={tmp / 's3.json'}", f"-admin.port={admin}",
            f"-filer.localSocket={tmp / 'filer.sock'}", f"-s3.localSocket={tmp / 's3.sock'}",
            *(f"-{name}.port={port}" for name, port in ports.items()),
            *(f"-{name}.port.grpc={port}" for name, port in grpc.items())]
    endpoint, weedlog = f"{HOST}:{ports['s3']}", tmp / "weed.log"
    # TMPDIR keeps weed's own log files out of /tmp
    proc = spawn(argv, weedlog, cwd=tmp, env={**os.environ, "TMPDIR": str(tmp)})
    await wait_until("weed mini (S3)", lambda: asyncio.to_thread(s3_roundtrip, endpoint, key, secret),
                     proc, weedlog, timeout=60)
    log(f"s3: started own SeaweedFS at {endpoint} (pid {proc.pid}, bucket {BUCKET})")
    env.update(MLIFE_TEST_S3_ENDPOINT=endpoint, MLIFE_TEST_S3_ACCESS_KEY=key,
               MLIFE_TEST_S3_SECRET_KEY=secret, MLIFE_TEST_S3_BUCKET=BUCKET,
               MLIFE_TEST_S3_PID=str(proc.pid))  # the benches count the S3 server's CPU


class Harness:
    """Starts the servers, runs the command, cleans up; owns the signal policy."""

    def __init__(self) -> None:
        self.setup: tuple[asyncio.AbstractEventLoop, asyncio.Task] | None = None
        self.child: subprocess.Popen | None = None
        self.forwarded = False
        self.signum = 0

    def on_signal(self, signum: int, _frame: object) -> None:
        """During setup: cancel it. While the command runs: forward once, then stop waiting."""
        self.signum = signum
        if self.setup is not None:
            loop, task = self.setup
            loop.call_soon_threadsafe(task.cancel)
        elif self.child is not None and self.child.poll() is None and not self.forwarded:
            self.forwarded = True
            try:
                tty_fg = os.tcgetpgrp(0) == os.getpgrp()
            except OSError:  # stdin is not our terminal
                tty_fg = False
            if not (signum == signal.SIGINT and tty_fg):  # a terminal ^C reached the command already
                self.child.send_signal(signum)
        else:
            raise Interrupted(signum)

    async def start_servers(self, env: dict[str, str]) -> None:
        self.setup = (asyncio.get_running_loop(), asyncio.current_task())
        try:
            async with asyncio.TaskGroup() as tg:
                for ensure in (ensure_pg, ensure_nats, start_s3):
                    tg.create_task(ensure(env))
        except* Exception as group:  # noqa: BLE001 - every failure of the group is reported
            raise SetupError("\n".join(str(e) if isinstance(e, SetupError) else repr(e)
                                       for e in group.exceptions)) from None
        finally:
            self.setup = None

    def main(self, cmd: list[str]) -> int:
        for sig in SIGNALS:
            signal.signal(sig, self.on_signal)
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "ORT_DISABLE_TELEMETRY": "1"}
        try:
            try:
                asyncio.run(self.start_servers(env))
            except asyncio.CancelledError:
                raise Interrupted(self.signum) from None
            self.child = subprocess.Popen(cmd, env=env)
            code = self.child.wait()
            return 128 - code if code < 0 else code  # killed by signal N -> 128+N
        except SetupError as err:
            log(f"setup failed: {err}")
            return 1
        except Interrupted as exc:
            log(f"interrupted by signal {exc.args[0]}, cleaning up")
            return 128 + exc.args[0]
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if self.child is not None:
            stop(self.child, group=False)
        while CLEANUPS:
            try:
                CLEANUPS.pop()()
            except Exception as exc:  # noqa: BLE001 - keep cleaning up the rest
                log(f"cleanup step failed: {exc!r}")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--":
        sys.exit(__doc__)
    sys.exit(Harness().main(sys.argv[2:]))
