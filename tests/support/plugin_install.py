"""An outside plugin package made on the fly: a module and a `.dist-info` with its entry points in a folder put on
sys.path, found by `importlib.metadata` exactly as a pip-installed package would be; the process's plugin
registry starts afresh, so the services load it at their next start (and forget it once it is removed)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from mlife_shared.plugins import SEAMS
from mlife_shared.plugins import registry as plugin_registry


class InstalledPlugin:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def remove(self) -> None:
        """Uninstalled: off sys.path, the registry forgets it (the next load lists it absent)."""
        if str(self.folder) in sys.path:
            sys.path.remove(str(self.folder))
        plugin_registry._cache.clear()


def install_plugin(monkeypatch: pytest.MonkeyPatch, folder: Path, *, distribution: str, seam: str,
                   entries: dict[str, str], module: str, source: str) -> InstalledPlugin:
    """`entries`: entry point name → object in `module` (whose code is `source`), in the seam's group."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    info = folder / f"{distribution.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1.0\n")
    lines = "".join(f"{name} = {module}:{obj}\n" for name, obj in entries.items())
    (info / "entry_points.txt").write_text(f"[{SEAMS[seam].group}]\n{lines}")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(plugin_registry, "_cache", {})  # restored afterwards: other tests see the usual registry
    return InstalledPlugin(folder)
