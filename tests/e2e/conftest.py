"""The platform for the end-to-end loop, as real processes (tests.support.distributed): every service on its
own fresh PostgreSQL database, NATS JetStream as compose runs it (per-service users) and the S3 server from
`scripts/testenv.py`, the gateway in front. MTT runs split as in a distributed install (api, worker and two
runner processes); the others run `all`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.distributed import Platform, permission_violations, start_distributed
from tests.support.smtp import Mailbox, smtp_server

__all__ = ["Platform", "distributed", "mailbox"]


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    """The SMTP server the e2e platform's gateway sends alert e-mails to."""
    with smtp_server() as box:
        yield box


@pytest.fixture(scope="session")
async def distributed(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox) -> AsyncIterator[Platform]:
    platform = await start_distributed(tmp_path_factory.mktemp("e2e"), mailbox)
    try:
        yield platform
        # Every process ran under its own NATS user: none did anything its permissions refuse.
        refused = permission_violations(platform)
        assert not refused, f"NATS permissions violations in {refused}:\n{platform.logs()}"
    finally:
        await platform.stop()
