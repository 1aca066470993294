"""The plugin packages of tests/plugins, installed as an operator would install an outside package — but with
`pip install --no-deps --target <dir>`, never into the shared .venv (other tests run at the same time): the services
of a dedicated platform get `<dir>` on PYTHONPATH, where entry points are found as in site-packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugins"

# A second distribution whose plugins each fail their own way: a module that is not installed, an import that
# raises, an API range this MLife is not in. None of them may keep a service from starting.
BROKEN = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=77"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "mlife-broken-plugins"
        version = "0.0.1"

        [project.entry-points."mlife.cleaners"]
        needs-missing = "mlife_broken_plugins.needs_missing:Cleaner"
        raises = "mlife_broken_plugins.raises:Cleaner"

        [project.entry-points."mlife.evaluators"]
        from-the-future = "mlife_broken_plugins.future:Future"
    """,
    "mlife_broken_plugins/__init__.py": "",
    "mlife_broken_plugins/needs_missing.py": """
        import mlife_no_such_module_for_tests  # noqa: F401 - the dependency nobody installed
    """,
    "mlife_broken_plugins/raises.py": """
        raise RuntimeError("this cleaner is broken on purpose")
    """,
    "mlife_broken_plugins/future.py": """
        class Future:
            name = "from-the-future"
            api = ">=2,<3"
            description = "an evaluator made for plugin API 2"
            model_formats = ("onnx",)

            def files(self, item, params): return {}
            def incompatibility(self, request): return None
            def evaluate(self, request): raise AssertionError("never called")
            def example(self, folder): raise AssertionError("never called")
    """,
}


def write_broken(folder: Path) -> Path:
    for name, text in BROKEN.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    return folder


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package and the broken one, `pip install --no-deps --target`-ed into a folder of their own
    (from copies: a build leaves files in its source folder)."""
    src = tmp_path_factory.mktemp("plugin-src")
    example = shutil.copytree(EXAMPLE, src / "example", ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                                        "__pycache__", "tests"))
    broken = write_broken(src / "broken")
    target = tmp_path_factory.mktemp("plugins")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(example), str(broken)], check=True)
    return target
