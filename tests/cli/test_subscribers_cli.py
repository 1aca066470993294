"""`mlife subscribers create|list|replay|rotate|delete` against the real platform (the gateway process and its
NATS): each command is its own process; only maintainers manage subscribers."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.support.cli import mlife, ok
from tests.support.stack import Stack


def test_a_maintainer_manages_a_subscriber_from_the_command_line(stack: Stack, tmp_path: Path) -> None:
    name = f"cli-sub-{uuid.uuid4().hex[:6]}"
    denied = mlife(stack, tmp_path, "subscribers", "create", name, "--subject", "model.>", role="engineer")
    assert denied.returncode == 2 and "maintainer" in denied.stderr

    made = ok(mlife(stack, tmp_path, "subscribers", "create", name, "--subject", "model.>", "--filter",
                    "function=digits", "--json", role="maintainer"))
    assert made["nats_user"] == f"sub-{name}" and made["credentials"]["password"]  # type: ignore[index]
    shown = mlife(stack, tmp_path, "subscribers", "create", f"{name}-2", "--subject", "badcase.created", "--new",
                  role="maintainer")
    assert shown.returncode == 0 and f"user sub-{name}-2  password " in shown.stdout

    table = mlife(stack, tmp_path, "subscribers", "list", role="maintainer")
    assert table.returncode == 0 and name in table.stdout and "MLIFE_MSM: " in table.stdout and " pending" in table.stdout

    replayed = mlife(stack, tmp_path, "subscribers", "replay", name, "--since", "2026-01-01T00:00:00Z",
                     role="maintainer")
    assert replayed.returncode == 0 and "re-delivered from 2026-01-01" in replayed.stdout, replayed.stderr
    bad = mlife(stack, tmp_path, "subscribers", "replay", name, "--stream", "MLIFE_BAM", "--sequence", "1",
                role="maintainer")
    assert bad.returncode == 2 and "no durable on 'MLIFE_BAM'" in bad.stderr

    rotated = json.loads(mlife(stack, tmp_path, "subscribers", "rotate", name, "--json", role="maintainer").stdout)
    assert rotated["password"] != made["credentials"]["password"]  # type: ignore[index]
    for gone in (name, f"{name}-2"):
        assert mlife(stack, tmp_path, "subscribers", "delete", gone, role="maintainer").returncode == 0
    missing = mlife(stack, tmp_path, "subscribers", "delete", name, role="maintainer")
    assert missing.returncode == 2 and "no subscriber named" in missing.stderr
