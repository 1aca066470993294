"""Contract of the Kubernetes deployment: the Helm chart deploy/k8s/mlife and the NATS chart's values
deploy/k8s/nats-values.yaml.

No cluster runs these tests. The chart is rendered by Helm's own engine (the helm-python-sdk wheel ships it; no
`helm` binary here), every manifest is validated against the Kubernetes JSON schemas (kubernetes-validate ships
them), and the manifests are checked against the code: every setting a container gets is a real setting, each
service's settings load in production from exactly that environment, the commands are accepted by
`python -m <service>`, the probes point at real routes, only the gateway is reachable from outside.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "k8s" / "mlife"
NATS_VALUES = ROOT / "deploy" / "k8s" / "nats-values.yaml"
NATS_CONFIG = ROOT / "deploy" / "nats" / "nats.conf"
SERVICES = ("bam", "dam", "mtt", "msm", "gateway")
STORE_SERVICES = ("bam", "dam", "mtt", "msm")
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas kubernetes-validate has.
KUBE_VERSIONS = ("1.30.0", "1.37.0")
SECRET_SETTING = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|SEED|DATABASE_URL")
LOOPBACK = re.compile(r"127\.0\.0\.1|localhost|\[::1\]")
# Values that may name the loopback on purpose: the kubelet's probes send `Host: localhost` to the gateway; the
# From address of alert e-mail only matters once an SMTP host is set.
LOOPBACK_ALLOWED = {"allowed_hosts", "smtp_from"}

# Every other path through the templates: ingress off with a LoadBalancer, no autoscaling, no runner, the optional
# integrations on, network peers narrowed.
OTHER_VALUES: dict[str, Any] = {
    "image": {"registry": "registry.example.org/", "tag": "1.2.3"},
    "imagePullSecrets": [{"name": "registry"}],
    "ingress": {"enabled": False},
    "gatewayService": {"type": "LoadBalancer", "annotations": {"example.org/lb": "internal"}},
    "api": {"autoscaling": {"enabled": False}},
    "runner": {"enabled": False},
    "podDisruptionBudget": {"enabled": False},
    "topologySpread": False,
    "mlflow": {"trackingUri": "", "port": 5000},
    "services": {"dam": {"labelstudio": {"url": "http://labelstudio.tools.svc:8080",
                                         "webhookUrl": "http://mlife-dam-api.mlife.svc:8000/webhooks/labelstudio"}},
                 "gateway": {"smtpHost": "smtp.example.org", "eventsNatsUrl": "nats://nats.example.org:4222",
                             "trustedProxies": ["10.0.0.0/8"]},
                 "bam": {"env": {"MLIFE_BAM_PRIORITY_HALF_LIFE_DAYS": "7"}}},
    "networkPolicy": {"gatewayFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}],
                      "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                      "internetEgress": {"services": []},
                      "extraEgress": {"dam": [{"to": [{"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": "labelstudio"}}}], "ports": [{"protocol": "TCP", "port": 8080}]}]}},
    "postgresql": {"networkPeers": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]},
}


# ------------------------------------------------------------------------------------------------ rendering


def _helm() -> Any:
    if importlib.util.find_spec("helm_python") is None:
        pytest.fail("helm-python-sdk is not installed: pip install helm-python-sdk (Helm's engine, no binary needed)")
    return importlib.import_module("helm_python")


def _kubernetes_validate() -> Any:
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.fail("kubernetes-validate is not installed: pip install kubernetes-validate (ships the schemas)")
    return importlib.import_module("kubernetes_validate")


def render(values_json: str = "{}") -> list[dict[str, Any]]:
    return list(_render(values_json))


@functools.cache
def _render(values_json: str) -> tuple[dict[str, Any], ...]:
    helm = _helm()
    with helm.Chart.load(str(CHART)) as chart:
        files = chart.render(json.loads(values_json), name="mlife", namespace="mlife", is_upgrade=True)
    docs = []
    for name, text in sorted(files.items()):
        if name.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return tuple(docs)


def manifests() -> list[dict[str, Any]]:
    return render()


def of_kind(kind: str, docs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [d for d in (docs if docs is not None else manifests()) if d["kind"] == kind]


def workloads(docs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Deployments and Jobs: everything that runs an MLife container."""
    return of_kind("Deployment", docs) + of_kind("Job", docs)


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return workload["spec"]["template"]["spec"]["containers"]


def role_of(workload: dict[str, Any]) -> tuple[str, str]:
    labels = pod_labels(workload)
    return labels["mlife.io/service"], labels["mlife.io/role"]


def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


# ------------------------------------------------------------------------------------------------ the chart


def test_the_chart_lints_without_warnings() -> None:
    result = _helm().lint(str(CHART), strict=True)
    assert not result["errors"], result
    # severity 1 is INFO (e.g. "icon is recommended"); WARNING and ERROR fail
    assert not [m for m in result["messages"] if m["severity"] > 1], result["messages"]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("variant", ["defaults", "other values"])
def test_every_manifest_matches_the_kubernetes_schema(version: str, variant: str) -> None:
    kv = _kubernetes_validate()
    docs = manifests() if variant == "defaults" else render(json.dumps(OTHER_VALUES))
    assert docs
    for doc in docs:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']} is not valid Kubernetes {version}: {exc}")


def test_the_schema_check_rejects_a_broken_manifest() -> None:
    kv = _kubernetes_validate()
    deployment = json.loads(json.dumps(of_kind("Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/readyz"
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, KUBE_VERSIONS[-1], strict=True)
    deployment = json.loads(json.dumps(of_kind("Deployment")[0]))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, KUBE_VERSIONS[-1], strict=True)


def test_the_values_schema_takes_the_defaults_and_refuses_misspelt_or_wrong_values() -> None:
    helm = _helm()
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema({})
        chart.validate_schema(json.loads(json.dumps(OTHER_VALUES)))
        for bad in ({"servics": {"bam": {}}}, {"nats": {"replicas": 0}}, {"runner": {"concurency": 2}},
                    {"services": {"bam": {"env": {"BAM_FUNCTION_WEIGHTS": "{}"}}}}, {"environment": "prod"}):
            with pytest.raises(helm.HelmValuesError):
                chart.validate_schema(bad)


def test_every_service_runs_an_api_a_worker_and_a_migration_job_and_mtt_runners() -> None:
    deployments = {role_of(d) for d in of_kind("Deployment")}
    assert deployments == {(s, r) for s in SERVICES for r in ("api", "worker")} | {("mtt", "runner")}
    jobs = {role_of(j) for j in of_kind("Job")}
    assert jobs == {(s, "migrate") for s in SERVICES}


def test_migrations_run_as_hooks_before_install_and_upgrade() -> None:
    for job in of_kind("Job"):
        notes = job["metadata"].get("annotations") or {}
        assert set(notes.get("helm.sh/hook", "").split(",")) == {"pre-install", "pre-upgrade"}, job["metadata"]
        assert "before-hook-creation" in notes.get("helm.sh/hook-delete-policy", "")
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        service, _ = role_of(job)
        assert containers(job)[0]["command"] == ["python", "-m", service, "migrate"]


def test_workers_and_runners_are_replicated_and_apis_autoscaled() -> None:
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind("HorizontalPodAutoscaler")}
    for deployment in of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        _, role = role_of(deployment)
        if role == "api":
            assert name in hpas, f"{name}: an API without a HorizontalPodAutoscaler"
            assert hpas[name]["spec"]["minReplicas"] >= 2
            assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns the replica count"
        else:
            assert deployment["spec"]["replicas"] >= 2, f"{name}: one replica is one point of failure"
    assert set(hpas) == {d["metadata"]["name"] for d in of_kind("Deployment") if role_of(d)[1] == "api"}


def test_every_deployment_has_a_disruption_budget_that_selects_it() -> None:
    budgets = of_kind("PodDisruptionBudget")
    for deployment in of_kind("Deployment"):
        labels = pod_labels(deployment)
        matching = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        assert len(matching) == 1, f"{deployment['metadata']['name']}: {len(matching)} PodDisruptionBudgets"
        assert matching[0]["spec"].get("maxUnavailable") == 1


def test_every_container_has_resource_requests_and_limits() -> None:
    for workload in workloads():
        for container in containers(workload):
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind) or {}), (
                    f"{workload['metadata']['name']}: no {kind} for cpu and memory")


def test_pods_run_unprivileged_but_the_runner() -> None:
    for workload in workloads():
        spec = workload["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        if role_of(workload)[1] == "runner":
            continue
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]


# ------------------------------------------------------------------------------------------------ images and commands


def test_images_and_commands_are_the_services_own() -> None:
    """One image per service (deploy/Dockerfile.service, SERVICE=<service>), running `python -m <service>`."""
    tag = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    for workload in workloads():
        service, role = role_of(workload)
        for container in containers(workload):
            assert container["image"] == f"mlife/{service}:{tag}", container["image"]
            assert container["command"][:4] == ["python", "-m", service, role], container["command"]
            assert (ROOT / "services" / service / "pyproject.toml").is_file()
    other = render(json.dumps(OTHER_VALUES))
    assert {c["image"] for w in workloads(other) for c in containers(w)} == {
        f"registry.example.org/mlife/{s}:1.2.3" for s in SERVICES}


class _Parsed(Exception):
    """Raised right after the entry point's argument parser accepted the command line."""


def _accepts(command: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Runs `python -m <service> <args>` as `python -m` does (runpy, the package's __main__) until its argument
    parser has accepted the arguments, and stops it there (no settings read, no server started). Returns 0, or
    argparse's exit code, and what it wrote to stderr."""
    import argparse
    import contextlib
    import io
    import runpy

    assert command[:2] == ["python", "-m"], command
    parse_args = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        parse_args(self, *args, **kwargs)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [command[2], *command[3:]])
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            runpy.run_module(command[2], run_name="__main__", alter_sys=True)
        except _Parsed:
            return 0, err.getvalue()
        except SystemExit as exit_:
            return (exit_.code if isinstance(exit_.code, int) else 1), err.getvalue()
    pytest.fail(f"{command}: the entry point never parsed its arguments")


def test_every_command_is_accepted_by_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = {tuple(c["command"]) for w in workloads() for c in containers(w)}
    commands |= {tuple(c["command"]) for w in workloads(render(json.dumps({"runner": {"queue": "gpu"}})))
                 for c in containers(w)}
    for command in sorted(commands):
        code, err = _accepts(list(command), monkeypatch)
        assert code == 0, f"{' '.join(command)}: {err[-2000:]}"


def test_the_entry_point_check_refuses_an_unknown_role_or_option(monkeypatch: pytest.MonkeyPatch) -> None:
    code, err = _accepts(["python", "-m", "bam", "serve"], monkeypatch)
    assert code != 0 and "serve" in err
    code, err = _accepts(["python", "-m", "mtt", "runner", "--slots", "2"], monkeypatch)
    assert code != 0 and "--slots" in err


# ------------------------------------------------------------------------------------------------ probes


def _api_routes(service: str) -> set[str]:
    from fastapi.routing import APIRoute

    from mlife_shared.app import ops_router

    spec = importlib.import_module(f"{service}.app").SPEC
    return {r.path for r in ops_router(spec).routes if isinstance(r, APIRoute) and "GET" in r.methods}


def test_api_probes_point_at_real_routes_on_the_served_port() -> None:
    from gateway.edge.host import HostAllowList

    for deployment in of_kind("Deployment"):
        service, role = role_of(deployment)
        if role != "api":
            continue
        routes = _api_routes(service)
        (container,) = containers(deployment)
        command = container["command"]
        port = int(command[command.index("--port") + 1])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
        for kind, probe in probes.items():
            assert probe["path"] in routes, f"{service} {kind}: {probe['path']} is not a route of {sorted(routes)}"
            assert ports[probe["port"]] == port, f"{service} {kind}: port {probe['port']} is not {port}"
        assert probes["livenessProbe"]["path"] == "/healthz"
        # The gateway's /readyz fails with any one service: /healthz keeps its pods in the load balancer.
        assert probes["readinessProbe"]["path"] == ("/healthz" if service == "gateway" else "/readyz")
        if service == "gateway":
            env = {e["name"]: e.get("value") for e in container["env"]}
            allowed = HostAllowList(json.loads(env["MLIFE_GATEWAY_ALLOWED_HOSTS"]))
            for kind, probe in probes.items():
                host = {h["name"]: h["value"] for h in probe.get("httpHeaders", [])}.get("Host")
                assert host and allowed.check(host) is None, f"gateway {kind}: Host {host!r} would get 400"
            assert allowed.check(values()["ingress"]["host"]) is None, "the Ingress's host would get 400"


def _worker_probe(container: dict[str, Any]) -> list[str]:
    return container["livenessProbe"]["exec"]["command"]


def test_workers_and_runners_have_the_same_exec_probe_for_readiness_and_liveness() -> None:
    for deployment in of_kind("Deployment"):
        if role_of(deployment)[1] == "api":
            continue
        (container,) = containers(deployment)
        assert container["readinessProbe"]["exec"]["command"] == _worker_probe(container)
        assert _worker_probe(container)[:2] == ["python", "-c"]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server
    server.close()


def _run_probe(command: list[str], nats_url: str) -> int:
    env = {"PATH": os.environ.get("PATH", ""), "MLIFE_NATS_URL": nats_url}
    return subprocess.run([sys.executable, *command[1:]], env=env, timeout=30).returncode


def test_the_worker_probe_passes_only_while_a_connection_to_a_nats_node_is_open(listener: socket.socket) -> None:
    """The probe reads this machine's /proc/net/tcp like the pod's own: a listener stands in for one NATS node of
    the cluster URL (the probe looks at TCP only)."""
    worker = next(d for d in of_kind("Deployment") if role_of(d) == ("bam", "worker"))
    command = _worker_probe(containers(worker)[0])
    port = listener.getsockname()[1]
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    cluster_url = f"nats://127.0.0.1:{other.getsockname()[1]},nats://127.0.0.1:{port}"
    other.close()
    assert _run_probe(command, cluster_url) == 1, "no connection open, yet the probe passed"
    client = socket.create_connection(("127.0.0.1", port))
    try:
        accepted, _ = listener.accept()
        assert _run_probe(command, cluster_url) == 0
        accepted.close()
    finally:
        client.close()


# ------------------------------------------------------------------------------------------------ settings


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env") or []}


def settings_fields(service: str) -> set[str]:
    cls = importlib.import_module(f"{service}.config").Settings
    return set(cls.model_fields)


def setting_name(service: str, var: str) -> str | None:
    """The field a variable sets (`MLIFE_<SERVICE>_X` or the common `MLIFE_X`), or None."""
    fields = settings_fields(service)
    for prefix in (f"MLIFE_{service.upper()}_", "MLIFE_"):
        if var.startswith(prefix) and var[len(prefix):].lower() in fields:
            return var[len(prefix):].lower()
    return None


@pytest.mark.parametrize("variant", ["defaults", "other values"])
def test_every_variable_set_is_a_real_setting_of_that_service(variant: str) -> None:
    docs = manifests() if variant == "defaults" else render(json.dumps(OTHER_VALUES))
    for workload in workloads(docs):
        service, _role = role_of(workload)
        for container in containers(workload):
            for var in env_of(container):
                assert setting_name(service, var), (
                    f"{workload['metadata']['name']}: {var} is no setting of {service} (docs/configuration.md)")


def test_secret_settings_come_from_the_secret_and_nothing_else_does() -> None:
    secret_name = values()["secrets"]["name"]
    for workload in workloads(manifests()) + workloads(render(json.dumps(OTHER_VALUES))):
        for container in containers(workload):
            for var, entry in env_of(container).items():
                ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                if SECRET_SETTING.search(var):
                    assert ref and "value" not in entry, f"{workload['metadata']['name']}: {var} must be a secretKeyRef"
                    assert ref["name"] == secret_name
                else:
                    assert ref is None and "value" in entry, f"{workload['metadata']['name']}: {var}"


def _secret_stand_in(key: str) -> str:
    """A well-formed value for a key of the Secret, as an operator would store it."""
    from mlife_shared.messaging.natsauth import new_callout_seed

    if key.endswith("-database-url"):
        service = key.removesuffix("-database-url")
        return f"postgresql+asyncpg://{service}:pw@postgres.db.svc:5432/{service}"
    if key == values()["secrets"]["keys"]["authCalloutSeed"]:
        return new_callout_seed()
    return "s" * 32


def container_environment(container: dict[str, Any]) -> dict[str, str]:
    """What the container's process sees: literal values, required Secret keys (optional ones left out, as when
    the Secret lacks them)."""
    out = {}
    for var, entry in env_of(container).items():
        if "value" in entry:
            out[var] = str(entry["value"])
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        if not ref.get("optional"):
            out[var] = _secret_stand_in(ref["key"])
    return out


def load_settings(service: str, role: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    for var in list(os.environ):
        if var.startswith("MLIFE_"):
            monkeypatch.delenv(var)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    if role == "runner":
        from mtt.__main__ import runner_settings

        return runner_settings()
    return importlib.import_module(f"{service}.config").Settings()


def _loopback_values(service: str, settings: Any) -> dict[str, Any]:
    dumped = settings.model_dump(mode="json")
    unused = {k for k in dumped if k.startswith(("s3_", "object_store"))} if service not in STORE_SERVICES else set()
    return {k: v for k, v in dumped.items()
            if k not in LOOPBACK_ALLOWED | unused and k != "home" and LOOPBACK.search(json.dumps(v))}


@pytest.mark.parametrize("variant", ["defaults", "other values"])
def test_each_container_s_settings_load_in_production_and_point_nowhere_local(
        variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every setting a service requires in production is set (its settings class raises otherwise), and no
    address is left at its one-machine default (a database in SQLite, NATS or a service on 127.0.0.1)."""
    docs = manifests() if variant == "defaults" else render(json.dumps(OTHER_VALUES))
    chart = values()
    for workload in workloads(docs):
        service, role = role_of(workload)
        (container,) = containers(workload)
        env = container_environment(container)
        assert env.get("MLIFE_ENVIRONMENT") == "production"
        settings = load_settings(service, role, env, monkeypatch)
        name = workload["metadata"]["name"]
        assert settings.database_url.startswith("postgresql+asyncpg://"), f"{name}: {settings.database_url}"
        assert settings.nats_password.get_secret_value(), f"{name}: no NATS password"
        assert settings.nats_user == ("mtt-runner" if role == "runner" else service)
        assert settings.nats_replicas == chart["nats"]["replicas"] == 3
        assert len(settings.nats_url.split(",")) == 3
        if service in STORE_SERVICES:
            assert settings.object_store == "s3" and settings.s3_access_key.get_secret_value(), name
        if service == "gateway":
            assert settings.auth_callout_seed, f"{name}: outside subscribers could not log in"
            assert (settings.admin_token is not None) == (role == "migrate"), f"{name}: the admin's token"
        local = _loopback_values(service, settings)
        assert not local, f"{name}: left at a local default: {local}"


def test_the_settings_check_notices_a_missing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    api = next(d for d in of_kind("Deployment") if role_of(d) == ("bam", "api"))
    env = container_environment(containers(api)[0])
    del env["MLIFE_BAM_NATS_PASSWORD"]
    with pytest.raises(ValueError, match="NATS_PASSWORD"):
        load_settings("bam", "api", env, monkeypatch)
    env = container_environment(containers(api)[0])
    del env["MLIFE_BAM_DATABASE_URL"]
    settings = load_settings("bam", "api", env, monkeypatch)
    assert not settings.database_url.startswith("postgresql")  # what the test above would catch


def test_the_public_url_and_allowed_hosts_follow_the_ingress_host_unless_set() -> None:
    def gateway_and_dam_env(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        by_role = {role_of(d): d for d in of_kind("Deployment", docs)}
        return (env_of(containers(by_role[("gateway", "api")])[0]), env_of(containers(by_role[("dam", "api")])[0]))

    gateway, dam = gateway_and_dam_env(render(json.dumps({"ingress": {"host": "ml.corp.example"}})))
    assert json.loads(gateway["MLIFE_GATEWAY_ALLOWED_HOSTS"]["value"]) == ["ml.corp.example", "localhost"]
    assert dam["MLIFE_DAM_PUBLIC_URL"]["value"] == "https://ml.corp.example"
    gateway, dam = gateway_and_dam_env(render(json.dumps({
        "publicUrl": "https://mlife.corp.example/", "ingress": {"tls": {"enabled": False}},
        "services": {"gateway": {"allowedHosts": ["mlife.corp.example", "*.mlife.corp.example"]}}})))
    assert json.loads(gateway["MLIFE_GATEWAY_ALLOWED_HOSTS"]["value"]) == [
        "mlife.corp.example", "*.mlife.corp.example", "localhost"]
    assert dam["MLIFE_DAM_PUBLIC_URL"]["value"] == "https://mlife.corp.example/"


def test_the_runner_holds_no_identity_key_and_logs_in_as_mtt_runner() -> None:
    runner = next(d for d in of_kind("Deployment") if role_of(d) == ("mtt", "runner"))
    env = env_of(containers(runner)[0])
    assert not [v for v in env if "IDENTITY" in v]
    assert env["MLIFE_MTT_NATS_USER"]["value"] == "mtt-runner"
    assert env["MLIFE_MTT_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "nats-mtt-runner-password"
    context = containers(runner)[0]["securityContext"]
    assert context["capabilities"]["add"] == ["SYS_ADMIN"] and context["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("concurrency", [1, 4])
def test_in_a_user_namespace_every_runner_slot_s_task_uid_is_mapped(concurrency: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """hostUsers: false gives the pod uids 0-65535: a sandbox uid beyond them cannot be switched to."""
    docs = render(json.dumps({"runner": {"concurrency": concurrency}}))
    runner = next(d for d in of_kind("Deployment", docs) if role_of(d) == ("mtt", "runner"))
    assert runner["spec"]["template"]["spec"]["hostUsers"] is False
    (container,) = containers(runner)
    slots = int(container["command"][container["command"].index("--concurrency") + 1])
    assert slots == concurrency
    settings = load_settings("mtt", "runner", container_environment(container), monkeypatch)
    uids = [settings.sandbox_uid] + [settings.sandbox_slot_uid_base + k for k in range(1, slots)]
    assert all(0 < uid < 65536 for uid in uids), uids
    assert 10001 not in uids, "task code must not run as the image's own user"


def nats_users() -> set[str]:
    return set(re.findall(r'^\s*user:\s*"([^"]+)"\s*$', NATS_CONFIG.read_text(), re.M))


def test_each_container_gets_the_password_of_its_own_nats_user_only() -> None:
    users = nats_users()
    for workload in workloads():
        service, role = role_of(workload)
        env = env_of(containers(workload)[0])
        passwords = {v: e for v, e in env.items() if "NATS_PASSWORD" in v}
        assert list(passwords) == [f"MLIFE_{service.upper()}_NATS_PASSWORD"], workload["metadata"]["name"]
        user = "mtt-runner" if role == "runner" else service
        assert user in users
        assert passwords[f"MLIFE_{service.upper()}_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == (
            f"nats-{user}-password")


def test_only_the_gateway_migration_gets_the_admin_credentials() -> None:
    for workload in workloads():
        env = env_of(containers(workload)[0])
        has_admin = {"MLIFE_ADMIN_TOKEN", "MLIFE_ADMIN_PASSWORD"} & set(env)
        assert bool(has_admin) == (role_of(workload) == ("gateway", "migrate")), workload["metadata"]["name"]


# ------------------------------------------------------------------------------------------------ the network


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and the In / NotIn / Exists / DoesNotExist expressions)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, vals = expr["key"], expr["operator"], expr.get("values") or []
        ok = {"In": key in labels and labels[key] in vals, "NotIn": labels.get(key) not in vals,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


# A pod of another namespace (an ingress controller, Prometheus, anything) and the outside world.
OUTSIDE: dict[str, Any] = {"labels": {"app": "elsewhere"}, "namespace": {"kubernetes.io/metadata.name": "other"},
                           "ip": "203.0.113.7"}


def _peer_matches(peer: dict[str, Any], other: dict[str, Any]) -> bool:
    if "ipBlock" in peer:
        return "ip" in other and _in_block(other["ip"], peer["ipBlock"])
    if "namespaceSelector" in peer:
        ns = other.get("namespace")
        if ns is None or not selects(peer["namespaceSelector"], ns):
            return False
        return selects(peer.get("podSelector") or {}, other["labels"])
    return other.get("namespace") is None and selects(peer["podSelector"], other["labels"])  # same namespace


def _in_block(ip: str, block: dict[str, Any]) -> bool:
    import ipaddress

    addr = ipaddress.ip_address(ip)
    return addr in ipaddress.ip_network(block["cidr"]) and not any(
        addr in ipaddress.ip_network(e) for e in block.get("except") or [])


def _rule_allows(rule: dict[str, Any], other: dict[str, Any], port: int, direction: str) -> bool:
    ports = rule.get("ports")
    if ports and not any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports):
        return False
    peers = rule.get("from" if direction == "ingress" else "to")
    return not peers or any(_peer_matches(p, other) for p in peers)


def allowed(policies: list[dict[str, Any]], pod: dict[str, Any], other: dict[str, Any], port: int,
            direction: str) -> bool:
    """Whether `pod` may receive from (ingress) / send to (egress) `other` on a TCP port: a pod no policy of that
    direction selects is open; otherwise some rule of a selecting policy must allow it."""
    kind = "Ingress" if direction == "ingress" else "Egress"
    selecting = [p for p in policies if kind in p["spec"]["policyTypes"]
                 and pod.get("namespace") is None and selects(p["spec"]["podSelector"], pod["labels"])]
    if not selecting:
        return True
    return any(_rule_allows(r, other, port, direction) for p in selecting for r in p["spec"].get(direction) or [])


def connects(policies: list[dict[str, Any]], source: dict[str, Any], dest: dict[str, Any], port: int) -> bool:
    return allowed(policies, source, dest, port, "egress") and allowed(policies, dest, source, port, "ingress")


def pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod of the release by component, as a network peer of the release's own namespace."""
    return {pod_labels(w)["app.kubernetes.io/component"]: {"labels": pod_labels(w)} for w in workloads(docs)}


@pytest.mark.parametrize("variant", ["defaults", "other values"])
def test_only_the_gateway_is_reachable_from_outside(variant: str) -> None:
    docs = manifests() if variant == "defaults" else render(json.dumps(OTHER_VALUES))
    policies = of_kind("NetworkPolicy", docs)
    outsider = OUTSIDE
    if variant == "other values":  # gatewayFrom names the ingress controller's namespace
        outsider = {**OUTSIDE, "namespace": {"kubernetes.io/metadata.name": "ingress"}}
    for component, pod in pods(docs).items():
        reachable = allowed(policies, pod, outsider, 8000, "ingress")
        assert reachable == (component == "gateway-api"), f"{component}: reachable from outside: {reachable}"
    if variant == "other values":  # and nobody else
        assert not allowed(policies, pods(docs)["gateway-api"], OUTSIDE, 8000, "ingress")
    for service in of_kind("Service", docs):
        exposed = service["spec"].get("type", "ClusterIP") != "ClusterIP"
        assert not exposed or service["spec"]["selector"]["app.kubernetes.io/component"] == "gateway-api"
    for ingress in of_kind("Ingress", docs):
        backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
        assert backends == {"mlife-gateway-api"}


def test_the_gateway_reaches_every_service_api_and_nothing_else_does_but_dam_to_msm() -> None:
    policies = of_kind("NetworkPolicy")
    everyone = pods(manifests())
    for source_name, source in everyone.items():
        for service in ("bam", "dam", "mtt", "msm"):
            expected = source_name == "gateway-api" or (service == "msm" and source_name in {"dam-api", "dam-worker"})
            assert connects(policies, source, everyone[f"{service}-api"], 8000) == expected, (
                f"{source_name} -> {service}-api")


def test_every_pod_reaches_postgresql_and_nats_and_the_store_services_reach_s3() -> None:
    chart = values()
    policies = of_kind("NetworkPolicy")
    backend = {"labels": {}, "namespace": {"kubernetes.io/metadata.name": "db"}, "ip": "10.1.2.3"}
    for component, pod in pods(manifests()).items():
        service = pod["labels"]["mlife.io/service"]
        assert allowed(policies, pod, backend, chart["postgresql"]["port"], "egress"), component
        assert allowed(policies, pod, backend, chart["nats"]["port"], "egress"), component
        assert allowed(policies, pod, backend, chart["s3"]["port"], "egress") == (service in STORE_SERVICES), component
        assert allowed(policies, pod, backend, chart["mlflow"]["port"], "egress") == (service == "mtt"), component
        assert not allowed(policies, pod, backend, 6379, "egress"), f"{component}: egress beyond what it needs"


def test_webhooks_and_pre_labels_reach_the_internet_but_not_the_cluster_network() -> None:
    policies = of_kind("NetworkPolicy")
    internet = {"labels": {}, "ip": "203.0.113.7"}
    private = {"labels": {}, "ip": "10.9.8.7"}
    for component, pod in pods(manifests()).items():
        service = pod["labels"]["mlife.io/service"]
        assert allowed(policies, pod, internet, 443, "egress") == (service in {"gateway", "dam"}), component
        assert not allowed(policies, pod, private, 443, "egress"), component


def test_extra_egress_opens_only_what_it_names_for_its_service() -> None:
    docs = render(json.dumps(OTHER_VALUES))
    policies = of_kind("NetworkPolicy", docs)
    labelstudio = {"labels": {"app": "labelstudio"}, "namespace": {"kubernetes.io/metadata.name": "labelstudio"}}
    for component, pod in pods(docs).items():
        dam = pod["labels"]["mlife.io/service"] == "dam"
        assert allowed(policies, pod, labelstudio, 8080, "egress") == dam, component
        assert not allowed(policies, pod, labelstudio, 8081, "egress"), component


def test_the_network_check_sees_a_missing_default_deny() -> None:
    policies = [p for p in of_kind("NetworkPolicy") if not p["metadata"]["name"].endswith("default-deny")]
    assert allowed(policies, pods(manifests())["bam-worker"], OUTSIDE, 8000, "ingress")


# ------------------------------------------------------------------------------------------------ NATS


def test_the_nats_chart_values_make_a_three_node_jetstream_cluster_with_every_password() -> None:
    nats = yaml.safe_load(NATS_VALUES.read_text())
    config = nats["config"]
    assert config["cluster"]["enabled"] is True and config["cluster"]["replicas"] == 3
    assert config["jetstream"]["enabled"] is True
    referenced = set(re.findall(r"\$(MLIFE_NATS_[A-Z0-9_]+)", NATS_CONFIG.read_text()))
    env = nats["container"]["env"]
    assert referenced and referenced == set(env), f"the NATS pods need exactly {sorted(referenced)}"
    for var, entry in env.items():
        assert set(entry) == {"valueFrom"} and "secretKeyRef" in entry["valueFrom"], var
    # The authorization block is included from the ConfigMap mounted where the include points.
    include = config["merge"]["$include"]
    mount = nats["container"]["patch"][0]["value"]["mountPath"]
    assert os.path.normpath(os.path.join("/etc/nats-config", include)) == f"{mount}/auth.conf"


def test_the_chart_points_every_service_at_the_three_nodes() -> None:
    chart = values()
    nodes = chart["nats"]["url"].split(",")
    assert len(nodes) == 3 == chart["nats"]["replicas"]
    assert all(n.startswith("nats://") and n.endswith(":4222") for n in nodes)
