"""The cluster of scripts/cluster.py (three NATS nodes, two replicas of every API and worker, two gateways
behind HAProxy, a PostgreSQL of its own) on the S3 server of scripts/testenv.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from scripts.cluster import Cluster, start_cluster
from tests.support.objects import s3_env


@pytest.fixture(scope="session")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    started = await start_cluster(tmp_path_factory.mktemp("cluster"), s3_env())
    try:
        yield started
    finally:
        await started.stop()
