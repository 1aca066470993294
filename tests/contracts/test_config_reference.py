"""docs/configuration.md is generated from the settings classes: it names every variable a service reads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_configuration_reference_is_current() -> None:
    script = _script()
    assert (ROOT / "docs" / "configuration.md").read_text() == script.render(), \
        "docs/configuration.md is stale: run .venv/bin/python scripts/config_reference.py"


def test_the_reference_names_every_setting_of_every_service() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    import importlib

    from mlife_shared.settings import ServiceSettings

    common = set(ServiceSettings.model_fields)
    for name in common:
        assert f"`MLIFE_{name.upper()}`" in text
    for service in ("bam", "dam", "mtt", "msm", "gateway"):
        fields = importlib.import_module(f"{service}.config").Settings.model_fields
        for name in set(fields) - common:
            assert f"`MLIFE_{service.upper()}_{name.upper()}`" in text
