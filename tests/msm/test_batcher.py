"""Micro-batching: concurrent requests to one session are concatenated into one run and split back."""

from __future__ import annotations

import asyncio

import numpy as np
import onnxruntime as ort
import pytest

from msm.serving.runtime import Batcher
from tests.msm.onnx_models import identity_classifier


@pytest.mark.parametrize("inline", [True, False])
async def test_concurrent_requests_share_one_run_and_get_their_own_rows(inline: bool) -> None:
    session = ort.InferenceSession(identity_classifier(4), providers=["CPUExecutionProvider"])
    batcher = Batcher(session, batchable=True, max_rows=64, wait_ms=0, inline=inline)
    try:
        requests = [np.eye(4, dtype=np.float32)[[i % 4] * (1 + i % 3)] for i in range(10)]
        results = await asyncio.gather(*(batcher.run({"x": r}) for r in requests))
        assert batcher.batches == 1 and batcher.rows == sum(len(r) for r in requests)
        for request, (probs,) in zip(requests, results, strict=True):
            assert probs.shape == (len(request), 4)
            assert np.argmax(probs, axis=1).tolist() == np.argmax(request, axis=1).tolist()
    finally:
        batcher.close()


async def test_max_rows_splits_batches_and_a_failure_reaches_every_waiter() -> None:
    session = ort.InferenceSession(identity_classifier(4), providers=["CPUExecutionProvider"])
    batcher = Batcher(session, batchable=True, max_rows=4, wait_ms=0, inline=True)
    try:
        await asyncio.gather(*(batcher.run({"x": np.eye(4, dtype=np.float32)[[0, 1]]}) for _ in range(6)))
        assert batcher.batches == 3 and batcher.rows == 12
        bad = [batcher.run({"x": np.zeros((1, 5), dtype=np.float32)}) for _ in range(2)]
        outcomes = await asyncio.gather(*bad, return_exceptions=True)
        assert all(isinstance(o, Exception) for o in outcomes)
    finally:
        batcher.close()


async def test_retire_answers_queued_requests_and_a_late_request_still_works() -> None:
    session = ort.InferenceSession(identity_classifier(4), providers=["CPUExecutionProvider"])
    for inline in (True, False):
        batcher = Batcher(session, batchable=True, max_rows=2, wait_ms=0, inline=inline)
        one = np.eye(4, dtype=np.float32)[[1]]
        pending = [asyncio.ensure_future(batcher.run({"x": one})) for _ in range(5)]
        await asyncio.sleep(0)
        batcher.retire()
        results = await asyncio.gather(*pending)
        assert all(int(np.argmax(r[0])) == 1 for r in results)
        assert batcher.task is not None
        await asyncio.wait_for(batcher.task, 5)  # the loop ended by itself
        late = await batcher.run({"x": one})
        assert int(np.argmax(late[0])) == 1
        batcher.close()
