"""MLife scaled out on one machine, without Docker: a three-node NATS JetStream cluster (streams and consumers
with 3 replicas), a PostgreSQL, a SeaweedFS S3 and an MLflow server of its own, two replicas of every service's
API and worker, two MTT runners, and two gateways behind HAProxy (health checks on /healthz). HAProxy also fronts
each service's two API replicas: the gateways reach a service through it.

    python scripts/cluster.py up [--home DIR]      start, print the gateway's URL and admin token; Ctrl-C stops
    python scripts/cluster.py status [--home DIR]  readiness through the load balancer and of every replica
    python scripts/cluster.py down [--home DIR]    stop the cluster `up` runs in DIR

tests/cluster imports `Cluster` (the test brings the S3 server of scripts/testenv.py). Everything binds to
127.0.0.1 on free ports; logs are <home>/<process>.log."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repository's packages (tests.support) import from its root
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from mlife_shared.messaging import natsauth  # noqa: E402
from tests.support import processes  # noqa: E402
from tests.support.nats import deploy_config, new_passwords  # noqa: E402
from tests.support.platform import SERVICES, Processes  # noqa: E402
from tests.support.processes import READY_TIMEOUT, free_port, wait_port  # noqa: E402

APPS = (*SERVICES, "gateway")  # every service with an API and a worker; the gateway last (it fronts the others)
REPLICAS = 2
NATS_NODES = 3
STATE = "cluster.json"


@dataclass
class NatsNode:
    name: str
    port: int
    route: int
    monitor: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@dataclass
class Cluster(Processes):
    """The processes (Processes.procs: nats-1..3, haproxy, <app>-api-<n>, <app>-worker-<n>, mtt-runner-<n>), their
    ports and secrets. PostgreSQL runs under pg_ctl (not a child): `restart_postgres` stops and starts it."""

    token: str = ""
    secret: str = ""
    nodes: list[NatsNode] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)
    callout_seed: str = ""
    pg_port: int = 0
    pg_dir: Path = Path(".")  # outside home: the postgres user must reach it (a test's tmp dir is root's, 0700)
    api_ports: dict[str, list[int]] = field(default_factory=dict)  # app -> its replicas' ports
    lb_ports: dict[str, int] = field(default_factory=dict)  # app -> HAProxy's port for it
    s3: dict[str, str] = field(default_factory=dict)
    mlflow_url: str = ""
    argv: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)  # to restart a process
    cleanups: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The load balancer in front of the two gateways."""
        return f"http://127.0.0.1:{self.lb_ports['gateway']}"

    @property
    def nats_url(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def replica_urls(self) -> dict[str, str]:
        return {f"{app}-api-{i}": f"http://127.0.0.1:{port}" for app, ports in self.api_ports.items()
                for i, port in enumerate(ports, 1)}

    def database_url(self, app: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.pg_port}/mlife_{app}"

    # --- processes -------------------------------------------------------------------------------------------

    def launch(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.argv[name] = (argv, env)
        return self.start(name, argv, env)

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        argv, env = self.argv[name]
        return self.start(name, argv, env)

    # --- PostgreSQL ------------------------------------------------------------------------------------------

    def _pg(self, *args: str) -> list[str]:
        bindir = max(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name)).parent
        as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return [*as_pg, str(bindir / args[0]), *args[1:]]

    async def start_postgres(self) -> None:
        """initdb a data folder of its own (trust on loopback, fsync off: test data), then start it."""
        folder = self.pg_dir = Path(tempfile.mkdtemp(prefix="mlife-cluster-pg-"))
        self.cleanups.append(lambda: shutil.rmtree(folder, ignore_errors=True))
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        self.pg_port = free_port()
        await asyncio.to_thread(subprocess.run, self._pg("initdb", "-D", str(folder / "data"), "-A", "trust",
                                                         "-U", "postgres"), check=True, capture_output=True, cwd=folder)
        self.cleanups.append(lambda: subprocess.run(self._pg("pg_ctl", "-D", str(folder / "data"), "-m", "immediate",
                                                             "stop"), capture_output=True, cwd=folder))
        await self._pg_ctl_start()
        conn = await asyncpg.connect(host="127.0.0.1", port=self.pg_port, user="postgres", database="postgres")
        try:
            for app in APPS:
                await conn.execute(f'CREATE DATABASE "mlife_{app}"')
        finally:
            await conn.close()

    async def _pg_ctl_start(self) -> None:
        folder = self.pg_dir
        opts = (f"-p {self.pg_port} -k {folder / 'data'} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=400")
        await asyncio.to_thread(subprocess.run, self._pg("pg_ctl", "-D", str(folder / "data"), "-l",
                                                         str(folder / "postgres.log"), "-o", opts, "-w", "-t", "60",
                                                         "start"), check=True, capture_output=True, cwd=folder,
                                start_new_session=True)

    async def restart_postgres(self) -> float:
        """Stopped at once (`immediate`: every connection cut, crash recovery at the start, as a killed server)
        and started again; returns the time.monotonic() when it accepts connections again."""
        folder = self.pg_dir
        await asyncio.to_thread(subprocess.run, self._pg("pg_ctl", "-D", str(folder / "data"), "-m", "immediate",
                                                         "-w", "stop"), check=True, capture_output=True, cwd=folder)
        await self._pg_ctl_start()
        return time.monotonic()

    # --- NATS ------------------------------------------------------------------------------------------------

    async def start_nats_cluster(self) -> None:
        self.nodes = [NatsNode(f"mlife-nats-{i}", free_port(), free_port(), free_port()) for i in range(1, 4)]
        routes = [n.route for n in self.nodes]
        self.callout_seed = natsauth.new_callout_seed()
        env = dict(os.environ, **{natsauth.CALLOUT_ISSUER_ENV: natsauth.callout_issuer(self.callout_seed)})
        for i, node in enumerate(self.nodes, 1):
            conf = self.home / f"nats-{i}.conf"
            conf.write_text(deploy_config(node.port, self.home / f"nats-{i}-store", node.monitor,
                                          server_name=node.name, cluster=(node.route, routes)))
            self.passwords = self.passwords or new_passwords(conf.read_text())
            env.update({natsauth.password_env(u): p for u, p in self.passwords.items()})
            from mlife.launcher import nats_binary

            self.launch(f"nats-{i}", [nats_binary(), "-c", str(conf)], env)
        for i in range(1, NATS_NODES + 1):
            await self.wait_nats(i)

    async def wait_nats(self, i: int, timeout: float = 60) -> None:
        """Node `i` accepts clients and its JetStream has a meta leader (/healthz?js-enabled-only answers ok)."""
        node = self.nodes[i - 1]
        if not await wait_port(node.port, timeout):
            raise RuntimeError(f"nats-{i} did not start:\n{self.log(f'nats-{i}')}")
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as c:
            while time.monotonic() < deadline:
                try:
                    if (await c.get(f"http://127.0.0.1:{node.monitor}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise RuntimeError(f"nats-{i}'s JetStream was not ready:\n{self.log(f'nats-{i}')}")

    async def jsz(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every consumer of the cluster, as its leader reports it: (stream, durable) -> consumer info."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        async with httpx.AsyncClient(timeout=5) as c:
            for node in self.nodes:
                try:
                    r = await c.get(f"http://127.0.0.1:{node.monitor}/jsz",
                                    params={"accounts": "true", "streams": "true", "consumers": "true", "config": "true"})
                except httpx.HTTPError:
                    continue
                for account in r.json().get("account_details") or []:
                    for stream in account.get("stream_detail") or []:
                        for consumer in stream.get("consumer_detail") or []:
                            if (consumer.get("cluster") or {}).get("leader") == node.name:
                                out[(stream["name"], consumer["name"])] = consumer
        return out

    async def stream_replicas(self) -> dict[str, int]:
        async with httpx.AsyncClient(timeout=5) as c:
            r = await c.get(f"http://127.0.0.1:{self.nodes[0].monitor}/jsz?accounts=true&streams=true&config=true")
        return {s["name"]: s["config"].get("num_replicas", 1) for a in r.json().get("account_details") or []
                for s in a.get("stream_detail") or []}

    # --- MLflow ----------------------------------------------------------------------------------------------

    async def start_mlflow(self) -> None:
        """`mlflow server` from its own venv (services/mtt/scripts/mlflow-venv.sh makes it when missing), SQLite
        backend and proxied artifacts under home; MTT's runs go to it."""
        venv = ROOT / ".venv-mlflow"
        with processes.exclusive("venv-mlflow"):  # another test run may be making it
            if not (venv / "bin" / "mlflow").exists():
                await asyncio.to_thread(subprocess.run, ["sh", str(ROOT / "services/mtt/scripts/mlflow-venv.sh")],
                                        check=True, capture_output=True)
        port, folder = free_port(), self.home / "mlflow"
        folder.mkdir()
        quiet = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                 "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false"}
        argv = [str(venv / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                "--artifacts-destination", str(folder / "artifacts")]
        # its web server forks workers: a process group of its own, stopped as a group
        proc = processes.start(self.home, "mlflow", argv, {**os.environ, **quiet}, group=True)
        self.cleanups.append(lambda: processes.stop([proc], group=True))
        self.mlflow_url = f"http://127.0.0.1:{port}"
        why = await processes.wait_ready(self.mlflow_url, proc, self.home / "mlflow.log", READY_TIMEOUT,
                                         path="/health")
        if why is not None:
            raise RuntimeError(f"mlflow server did not start: {why}")

    # --- HAProxy ---------------------------------------------------------------------------------------------

    def haproxy_config(self) -> str:
        """Round robin over the two replicas, checked on /healthz every second (out after 3 failures, back after
        2 successes; a check may take 5 s: on a busy machine a probe is slow, not down). A connection refused is
        retried on the other replica (`redispatch`): never a request that reached a replica, which may have
        written. Liveness, not /readyz: both replicas share their database, so when it restarts /readyz fails on
        both at once, and a balancer that took them out would go on refusing requests (503) for its `rise` checks
        after the database is back; live replicas answer a 503 with Retry-After themselves while it is down, and
        serve again the moment it is up. A replica that is killed fails its check on the refused connection."""
        lines = ["global", "  maxconn 4096", "defaults", "  mode http", "  timeout connect 2s",
                 "  timeout client 120s", "  timeout server 120s", "  timeout check 5s", "  retries 3", "  option redispatch 1",
                 "  retry-on conn-failure", ""]
        for app, ports in self.api_ports.items():
            lines += [f"frontend {app}", f"  bind 127.0.0.1:{self.lb_ports[app]}", f"  default_backend {app}_api",
                      f"backend {app}_api", "  balance roundrobin", "  option httpchk",
                      # HTTP/1.1 with a Host the gateway allows (it refuses requests for other hosts)
                      "  http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host 127.0.0.1",
                      "  default-server inter 1s fall 3 rise 2",
                      *(f"  server {app}-api-{i} 127.0.0.1:{port} check" for i, port in enumerate(ports, 1)), ""]
        return "\n".join(lines)

    def start_haproxy(self) -> None:
        haproxy = shutil.which("haproxy")
        if haproxy is None:  # from Debian, as scripts/testenv.py installs PostgreSQL when missing
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.run(["apt-get", "install", "-y", "-qq", "haproxy"], env=env, capture_output=True, check=False)
            if (haproxy := shutil.which("haproxy")) is None:
                subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
                subprocess.run(["apt-get", "install", "-y", "-qq", "haproxy"], env=env, capture_output=True,
                               check=True)
                haproxy = shutil.which("haproxy") or "haproxy"
        conf = self.home / "haproxy.cfg"
        conf.write_text(self.haproxy_config())
        self.launch("haproxy", [haproxy, "-db", "-f", str(conf)], dict(os.environ))

    # --- the services ----------------------------------------------------------------------------------------

    def app_env(self, app: str) -> dict[str, str]:
        prefix = f"MLIFE_{app.upper()}_"
        (self.home / app).mkdir(exist_ok=True)
        env = dict(os.environ, MLIFE_ENVIRONMENT="test", MLIFE_IDENTITY_SECRET=self.secret,
                   MLIFE_NATS_URL=self.nats_url, MLIFE_NATS_REPLICAS=str(NATS_NODES), MLIFE_DATABASE_POOL_SIZE="3",
                   MLFLOW_DISABLE_TELEMETRY="true", ORT_DISABLE_TELEMETRY="1", MLIFE_HOME=str(self.home / app),
                   MLIFE_LOG_LEVEL=os.environ.get("MLIFE_CLUSTER_LOG_LEVEL", "WARNING"), **self.s3,
                   **{f"{prefix}DATABASE_URL": self.database_url(app), f"{prefix}NATS_PASSWORD": self.passwords[app]})
        if app == "mtt":
            env[f"{prefix}MLFLOW_TRACKING_URI"] = self.mlflow_url
        if app == "gateway":
            env.update({f"{prefix}ADMIN_TOKEN": self.token, f"{prefix}AUTH_CALLOUT_SEED": self.callout_seed,
                        f"{prefix}ALLOWED_HOSTS": json.dumps(["127.0.0.1", "localhost"]),
                        **{f"{prefix}{s.upper()}_URL": f"http://127.0.0.1:{self.lb_ports[s]}" for s in SERVICES}})
        return env

    async def migrate(self) -> None:
        """`python -m <app> migrate` of every app, as a deployment's migration job runs before the rollout (the
        gateway's also creates the admin token)."""
        async def one(app: str) -> None:
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", app, "migrate", env=self.app_env(app),
                                                        stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=processes.log_file(self.home, f"{app}-migrate"))
            if await proc.wait() != 0:
                raise RuntimeError(f"{app} migrate failed:\n{self.log(f'{app}-migrate')}")
        await asyncio.gather(*(one(app) for app in APPS))

    def start_app(self, app: str) -> None:
        env = self.app_env(app)
        for i, port in enumerate(self.api_ports[app], 1):
            self.launch(f"{app}-api-{i}", ["-m", app, "api", "--port", str(port)], env)
        for i in range(1, REPLICAS + 1):
            self.launch(f"{app}-worker-{i}", ["-m", app, "worker"], env)
        if app == "mtt":  # runners log in as `mtt-runner`: the run queue and nothing else of the bus
            runner = dict(env, MLIFE_MTT_NATS_USER=natsauth.MTT_RUNNER,
                          MLIFE_MTT_NATS_PASSWORD=self.passwords[natsauth.MTT_RUNNER])
            for i in range(1, REPLICAS + 1):
                self.launch(f"mtt-runner-{i}", ["-m", "mtt", "runner", "--id", f"cluster-runner-{i}"], runner)

    async def wait_ready(self, timeout: float = 2 * READY_TIMEOUT) -> dict[str, str]:
        """Every API replica, then the load balancer, answers /readyz with 200; {} or what is not ready. The
        timeout bounds a hang: 24 Python processes starting at once on a busy 2-core machine once took more
        than 3 minutes."""
        async def one(name: str, url: str) -> tuple[str, str | None]:
            return name, await processes.wait_ready(url, self.procs[name], self.home / f"{name}.log", timeout,
                                                    path="/readyz")
        results = await asyncio.gather(*(one(n, u) for n, u in self.replica_urls().items()),
                                       one("haproxy", self.url))
        return {name: why for name, why in results if why is not None}

    async def readiness(self) -> dict[str, int | str]:
        """/readyz of the load balancer and of every replica: status code, or the error."""
        out: dict[str, int | str] = {}
        async with httpx.AsyncClient(timeout=5) as c:
            for name, url in {"load balancer": self.url, **self.replica_urls()}.items():
                try:
                    out[name] = (await c.get(f"{url}/readyz")).status_code
                except httpx.HTTPError as exc:
                    out[name] = type(exc).__name__
        return out

    async def stop(self) -> None:
        """The services, HAProxy, then NATS; PostgreSQL and whatever else was started last."""
        nats = [p for n, p in self.procs.items() if n.startswith("nats-")]
        processes.stop([p for n, p in self.procs.items() if not n.startswith("nats-")], timeout=30)
        processes.stop(nats, timeout=15)
        while self.cleanups:
            self.cleanups.pop()()


async def start_cluster(home: Path, s3: dict[str, str]) -> Cluster:
    """Started and ready (every replica and the load balancer answer /readyz); on failure everything is stopped
    again. `s3`: the MLIFE_OBJECT_STORE/MLIFE_S3_* variables of the S3 server the services share."""
    cluster = Cluster(home=home, token="mlf_cluster_admin_" + uuid.uuid4().hex, secret=secrets.token_urlsafe(32),
                      s3=s3)
    try:
        cluster.api_ports = {app: [free_port() for _ in range(REPLICAS)] for app in APPS}
        cluster.lb_ports = {app: free_port() for app in APPS}
        await asyncio.gather(cluster.start_postgres(), cluster.start_nats_cluster(), cluster.start_mlflow())
        await cluster.migrate()
        cluster.start_haproxy()
        for app in APPS:
            cluster.start_app(app)
        not_ready = await cluster.wait_ready()
        if not_ready:
            raise RuntimeError(f"not ready: {not_ready}\n{cluster.logs()}")
    except BaseException:
        await cluster.stop()
        raise
    return cluster


# --- by hand -----------------------------------------------------------------------------------------------------

async def _up(home: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    import testenv  # the S3 server `make test` starts: SeaweedFS `weed mini` with a random key

    env: dict[str, str] = {}
    await testenv.start_s3(env)
    s3 = {"MLIFE_OBJECT_STORE": "s3", "MLIFE_S3_ENDPOINT": env["MLIFE_TEST_S3_ENDPOINT"],
          "MLIFE_S3_ACCESS_KEY": env["MLIFE_TEST_S3_ACCESS_KEY"], "MLIFE_S3_SECRET_KEY": env["MLIFE_TEST_S3_SECRET_KEY"],
          "MLIFE_S3_BUCKET": env["MLIFE_TEST_S3_BUCKET"]}
    try:
        cluster = await start_cluster(home, s3)
    except BaseException:
        testenv.Harness().cleanup()
        raise
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    (home / STATE).write_text(json.dumps({"pid": os.getpid(), "url": cluster.url, "token": cluster.token,
                                          "replicas": cluster.replica_urls(), "nats": cluster.nats_url,
                                          "postgres": f"127.0.0.1:{cluster.pg_port}"}, indent=2))
    print(f"MLife cluster up: {cluster.url}  (admin token {cluster.token})\nNATS {cluster.nats_url}\n"
          f"logs in {home}; Ctrl-C or `python scripts/cluster.py down --home {home}` stops it", flush=True)
    try:
        await stop.wait()
    finally:
        await cluster.stop()
        testenv.Harness().cleanup()
        (home / STATE).unlink(missing_ok=True)


async def _status(home: Path) -> int:
    state = json.loads((home / STATE).read_text())
    codes = {}
    async with httpx.AsyncClient(timeout=5) as c:
        for name, url in {"load balancer": state["url"], **state["replicas"]}.items():
            try:
                codes[name] = (await c.get(f"{url}/readyz")).status_code
            except httpx.HTTPError as exc:
                codes[name] = type(exc).__name__
    for name, code in codes.items():
        print(f"{name:20} {code}")
    return 0 if all(code == 200 for code in codes.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--home", type=Path, default=ROOT / ".mlife-cluster", help="logs, data and state")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    if args.command == "up":
        if home.exists() and any(home.iterdir()):
            sys.exit(f"{home} is not empty: a cluster runs there or was not cleaned up (remove it)")
        home.mkdir(parents=True, exist_ok=True)
        asyncio.run(_up(home))
        shutil.rmtree(home, ignore_errors=True)
        return 0
    if not (home / STATE).exists():
        sys.exit(f"no cluster runs in {home}")
    if args.command == "status":
        return asyncio.run(_status(home))
    os.kill(json.loads((home / STATE).read_text())["pid"], signal.SIGTERM)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
