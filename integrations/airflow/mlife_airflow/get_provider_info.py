"""What Airflow's providers manager reads (entry point `apache_airflow_provider`): provider.yaml, as a dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def get_provider_info() -> dict[str, Any]:
    info: dict[str, Any] = yaml.safe_load((Path(__file__).parent / "provider.yaml").read_text())
    return info
