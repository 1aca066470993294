"""The pipelines suites (issue 16): MLife driven from Apache Airflow 3 and from Kubeflow Pipelines, against the
session's running platform (`stack`: every service with MTT's embedded runners, and the gateway).

Airflow runs from its own venv `.venv-airflow` (integrations/airflow/venv.sh installs it on first use, as
.venv-mlflow and Label Studio's venv are), with a fresh AIRFLOW_HOME and a SQLite metadata database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import exclusive
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_VENV = ROOT / ".venv-airflow"
EXAMPLE_DAGS = ROOT / "integrations" / "airflow" / "mlife_airflow" / "example_dags"
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "ORT_DISABLE_TELEMETRY": "1", "SCARF_ANALYTICS": "false",
         "DO_NOT_TRACK": "1"}


@pytest.fixture(scope="session")
def digits_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """800 digits as PNGs plus manifest.jsonl (examples/digits/make_dataset.py), the data the pipelines import
    (fewer than the demo's 1,797: a shorter upload; the weak model still gets enough of them wrong)."""
    out = tmp_path_factory.mktemp("digits")
    subprocess.run([sys.executable, str(ROOT / "examples" / "digits" / "make_dataset.py"), str(out), "--limit", "800"],
                   check=True, capture_output=True)
    return out


@dataclass
class Airflow:
    home: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
        """`airflow <args>` with this home; its output kept in home/<first arg>.log as well."""
        proc = subprocess.run([str(AIRFLOW_VENV / "bin" / "airflow"), *args], env=self.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        (self.home / f"{args[0]}-{args[1] if len(args) > 1 else ''}.log").write_text(proc.stdout)
        return proc


@pytest.fixture(scope="session")
def airflow_venv() -> Path:
    with exclusive("venv-airflow"):  # pytest-xdist workers: one installs, the other waits
        built = subprocess.run(["sh", str(ROOT / "integrations" / "airflow" / "venv.sh")], capture_output=True,
                               text=True, check=False)
    assert built.returncode == 0, f"integrations/airflow/venv.sh failed:\n{built.stdout[-2000:]}{built.stderr[-3000:]}"
    return AIRFLOW_VENV


@pytest.fixture
def airflow(airflow_venv: Path, stack: Stack, tmp_path: Path) -> Airflow:
    """A fresh AIRFLOW_HOME (SQLite, migrated, no examples) whose `mlife_default` connection is the stack's gateway
    with the admin's token (deploying and moving `production` need a maintainer)."""
    home = tmp_path / "airflow"
    home.mkdir()
    conn = {"conn_type": "mlife", "host": stack.url, "password": stack.admin_token}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(QUIET, AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__DAGS_FOLDER=str(EXAMPLE_DAGS), AIRFLOW__CORE__UNIT_TEST_MODE="False",
               AIRFLOW_CONN_MLIFE_DEFAULT=json.dumps(conn), PYTHONPATH="")
    af = Airflow(home, env)
    migrated = af.run("db", "migrate", timeout=300)
    assert migrated.returncode == 0, migrated.stdout[-3000:]
    return af
