"""One rule for a function name wherever it enters (issue 12): BAM files badcases under it, DAM names a badcase
test set after it, MTT and MSM put it in tasks, models and URLs. A name with a slash, a control character or
over 100 characters is a 422 at every door, never a badcase DAM cannot file or a URL MSM cannot route."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.stack import Stack

BAD = ["digits/v2", "tab\there", "   ", "x" * 101]


@pytest.mark.parametrize("name", BAD)
async def test_a_bad_function_name_is_a_422_in_every_service(stack: Stack, name: str) -> None:
    h = stack.auth("maintainer")
    async with httpx.AsyncClient(base_url=stack.url, headers=h, timeout=30) as c:
        calls = [
            c.post("/api/bam/badcases", json={"function": name, "prediction": "a", "ground_truth": "b"}),
            c.post("/api/dam/datasets", json={"name": "n", "documents": [{"id": str(uuid.uuid4())}],
                                              "function": name}),
            c.post("/api/mtt/tasks", json={"kind": "test", "datasets": [{"dataset_id": str(uuid.uuid4())}],
                                           "function": name}),
            c.patch("/api/msm/models/no-such-model", json={"function": name}),
            c.post("/api/msm/deployments", json={"name": "d", "function": name,
                                                 "versions": [{"model_version_id": str(uuid.uuid4())}]}),
        ]
        for call in calls:
            r = await call
            assert r.status_code == 422, (r.request.method, r.request.url.path, r.text)
            assert "function" in r.text, r.text


async def test_a_good_function_name_with_spaces_is_taken(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, headers=stack.auth("maintainer"), timeout=30) as c:
        r = await c.post("/api/bam/badcases", json={"function": "expression recognition", "prediction": "happy",
                                                    "ground_truth": "sad"})
        assert r.status_code in (200, 201), r.text
        t = await c.put("/api/msm/functions/expression recognition/thresholds",
                        json={"thresholds": {"test_split.accuracy": {"min": 0.9}}})
        assert t.status_code == 200, t.text
        assert (await c.get("/api/msm/functions/expression recognition/thresholds")).json()["thresholds"] == {
            "test_split.accuracy": {"min": 0.9}}
