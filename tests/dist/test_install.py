"""`make dist` for real: the sdist and wheel of every package (scripts/dist.sh), then `pip install` of the wheels
into a clean virtualenv outside the checkout and `mlife up` from a folder outside it too, as a user does
(`pip install mlflow; mlflow ui`): the platform becomes ready, the UI and its assets load, a login works, and
it stops cleanly. Whatever a wheel forgets (migrations, the UI's files, a module) shows here."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from mlife.launcher import free_port
from tests.support.processes import alive, descendants

ROOT = Path(__file__).resolve().parents[2]
# (source folder, import package, distribution name)
PACKAGES = [("shared", "mlife_shared", "mlife-shared"), ("services/bam", "bam", "mlife-bam"),
            ("services/dam", "dam", "mlife-dam"), ("services/mtt", "mtt", "mlife-mtt"),
            ("services/msm", "msm", "mlife-msm"), ("services/gateway", "gateway", "mlife-gateway"),
            (".", "mlife", "mlife")]
PASSWORD = "a-long-admin-password-for-the-wheel-test"
# Run by the installed interpreter: where each module comes from, then each distribution's license.
WHERE = """import importlib, importlib.metadata as m, sys
for p in sys.argv[1:]:
    print(importlib.import_module(p).__file__)
for d in ("mlife", "mlife-shared", "mlife-bam", "mlife-dam", "mlife-mtt", "mlife-msm", "mlife-gateway"):
    print(d, m.metadata(d)["License-Expression"])
"""


def wheel_of(dist: Path, name: str) -> Path:
    found = list(dist.glob(f"{name.replace('-', '_')}-*.whl"))
    assert len(found) == 1, f"one wheel of {name} in {sorted(p.name for p in dist.iterdir())}"
    return found[0]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make dist` builds, into a folder of this test (the checkout's dist/ is left alone)."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(["sh", str(ROOT / "scripts" / "dist.sh"), str(out)], env=dict(os.environ, PY=sys.executable),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for _, _, name in PACKAGES:
        wheel_of(out, name)
        assert len(list(out.glob(f"{name.replace('-', '_')}-*.tar.gz"))) == 1, f"the sdist of {name}"
    return out


@pytest.mark.timeout(900)  # its set-up builds the distributions: a bound on a hang, not on time
def test_every_wheel_holds_its_package_and_the_license(dist: Path) -> None:
    for folder, package, name in PACKAGES:
        tracked = subprocess.run(["git", "ls-files", "--", package], cwd=ROOT / folder, capture_output=True,
                                 text=True, check=True).stdout.split()
        assert tracked, f"git knows the files of {folder}/{package}"
        with zipfile.ZipFile(wheel_of(dist, name)) as wheel:
            members = set(wheel.namelist())
            info = next(m for m in members if m.endswith(".dist-info/METADATA")).removesuffix("METADATA")
            metadata = wheel.read(info + "METADATA").decode()
            license_text = wheel.read(info + "licenses/LICENSE")
        missing = [f for f in tracked if f not in members]
        assert not missing, f"{name}'s wheel lacks {missing}: add them to its package-data"
        assert "License-Expression: Apache-2.0" in metadata.splitlines(), name
        assert license_text == (ROOT / "LICENSE").read_bytes(), name


def outside_env(home: Path, venv: Path, **extra: str) -> dict[str, str]:
    """Nothing of the checkout, of the test's virtualenv nor of the test servers: a user's shell."""
    return {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **extra}


def pip_env() -> dict[str, str]:
    """The machine's pip set-up (index, cache, certificates) without this test's virtualenv or import path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
            and not k.startswith("MLIFE_")}


def wait_until_up(proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "MLife is up" in text:
            return
        assert proc.poll() is None, f"mlife up exited with {proc.returncode}:\n{text[-4000:]}"
        time.sleep(0.2)
    raise AssertionError("mlife up was not ready in time:\n" + log.read_text(errors="replace")[-4000:])


@pytest.mark.timeout(1200)  # a bound on a hang (pip may fetch from the registry), never an assertion on time
def test_pip_install_then_mlife_up_outside_the_checkout(dist: Path, tmp_path: Path) -> None:
    venv, user_home, work = tmp_path / "venv", tmp_path / "user", tmp_path / "work"
    user_home.mkdir()
    work.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    wheels = [str(wheel_of(dist, name)) for _, _, name in PACKAGES]
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-compile",
                                "--disable-pip-version-check", "--find-links", str(dist), *wheels],
                               cwd=work, env=pip_env(), capture_output=True, text=True, check=False)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]

    where = subprocess.run(
        [str(python), "-c", WHERE, *[p for _, p, _ in PACKAGES], "mlife.tracking"],
        cwd=work, env=outside_env(user_home, venv), capture_output=True, text=True, check=False)
    assert where.returncode == 0, where.stderr
    lines = where.stdout.splitlines()
    for path in lines[:len(PACKAGES) + 1]:
        assert Path(path).is_relative_to(venv) and not Path(path).is_relative_to(ROOT), path
    assert all(line.endswith(" Apache-2.0") for line in lines[len(PACKAGES) + 1:]), lines

    port, log = free_port(), tmp_path / "mlife-up.log"
    env = outside_env(user_home, venv, MLIFE_HOME=str(tmp_path / "mlife-home"), MLIFE_PORT=str(port),
                      MLIFE_NATS_PORT=str(free_port()), MLIFE_ADMIN_PASSWORD=PASSWORD)
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(venv / "bin" / "mlife"), "up"], cwd=work, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    children: set[int] = set()
    try:
        wait_until_up(proc, log)
        children = descendants(proc.pid)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            ready = client.get("/readyz").json()
            assert ready["status"] == "ok" and {"bam", "dam", "mtt", "msm", "nats", "database"} <= set(ready["checks"])
            assert client.get("/api/gateway/healthz").status_code == 200
            for path, title in (("/", "MLife"), ("/docs", "MLife API")):  # the UI and the API docs, offline
                page = client.get(path)
                assert page.status_code == 200 and f"<title>{title}</title>" in page.text, path
                assets = re.findall(r'(?:src|href)="(/ui/[^"]+)"', page.text)
                assert assets, page.text
                for asset in assets:
                    assert client.get(asset).status_code == 200, asset
            paths = client.get("/openapi.json").json()["paths"]
            assert {f"/api/{s}/healthz" for s in ("bam", "dam", "mtt", "msm")} <= set(paths)
            login = client.post("/api/gateway/login", json={"username": "admin", "password": PASSWORD})
            assert login.status_code == 200, login.text
            me = client.get("/api/gateway/me")
            assert me.status_code == 200 and me.json()["username"] == "admin", me.text
            assert client.get("/api/bam/badcases").status_code == 200  # the session reaches a service
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(90)
    text = log.read_text(errors="replace")
    assert code == 0 and "mlife: stopped" in text, text[-3000:]
    assert not [pid for pid in children if alive(pid)], "no process outlives mlife up"
    assert str(ROOT) not in text, "nothing ran from the checkout"
