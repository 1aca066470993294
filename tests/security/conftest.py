"""The security suite (issue 13): the whole platform as processes (tests.gateway.stack, shared with
tests/gateway, tests/ui and tests/cli in one session) plus servers each test starts for itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.stack import Stack, acquire_stack, release_stack


@pytest.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """Every service with an API and the gateway, as processes, shared by the session's tests."""
    s = await acquire_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield s
    finally:
        await release_stack()
