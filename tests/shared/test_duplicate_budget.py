"""The duplicate-code budget `make lint` enforces (scripts/duplicate_budget.py), on a checkout of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import duplicate_budget  # noqa: E402

BODY = "\n".join(f"    total = total + {i} * weight  # step {i}" for i in range(7))
COPIED = f"def f(weight):\n    total = 0\n{BODY}\n    return total\n"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    imports = "import os\nimport sys\nimport json\nfrom pathlib import (\n    Path,\n    PurePath,\n)\nimport re\n"
    (tmp_path / "a.py").write_text(imports + COPIED)
    (tmp_path / "b.py").write_text(imports + "X = 1\n" + COPIED.replace("def f", "def g"))
    (tmp_path / "pkg" / "migrations").mkdir(parents=True)
    (tmp_path / "pkg" / "migrations" / "0001.py").write_text(COPIED)  # migrations repeat by nature
    (tmp_path / "c.py").write_text(imports + "Y = 2\n")  # the same imports alone are no copy
    return tmp_path


def test_a_copy_is_counted_and_over_budget_fails(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert duplicate_budget.main(["--root", str(checkout), "--budget", "0"]) == 1
    out = capsys.readouterr().out
    assert "a.py:10 ~ b.py:11  9 lines" in out and "1 pairs" in out and "migrations" not in out.split("\n")[0]
    assert duplicate_budget.main(["--root", str(checkout), "--budget", "1"]) == 0


def test_a_renamed_copy_is_a_shape_not_an_identical_copy(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (checkout / "b.py").write_text(COPIED.replace("total", "acc").replace("weight", "w"))
    assert duplicate_budget.main(["--root", str(checkout), "--budget", "0"]) == 0
    assert duplicate_budget.main(["--root", str(checkout), "--budget", "0", "--shapes"]) == 1
    assert "0 pairs" in capsys.readouterr().out


def test_the_checkout_is_within_its_budget() -> None:
    assert duplicate_budget.main([]) == 0
