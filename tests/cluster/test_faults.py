"""Faults under load (issue 18): while two clients report badcases with their pictures and add them to the
test data, DAM's client uploads, imports and groups, two call predictions of a live model (MSM), one submits
testing tasks (MTT's built-in ONNX evaluator), one training tasks (a tiny train.py uploaded with each) and one
requests deployments, all through the load balancer, one fault after another — a NATS node killed (-9) and
restarted, a worker of every service SIGKILLed, an API replica and a gateway SIGKILLed, PostgreSQL restarted —
each restarted as a supervisor would. Then, with the load stopped:

- every event in a producer's outbox took effect exactly once: it is in the inbox of every consumer of its
  subject (none lost), and each add-to-test-data request made exactly one version of DAM's badcase test set
  (none lost, none duplicated); every acknowledged request is in BAM's outbox;
- every acknowledged testing task ended, with one task.finished/failed and one testing.completed/failed event,
  and each of its mispredictions (every sample) filed once in BAM as a badcase occurrence; every acknowledged
  training task ended with one task.finished/failed event; every acknowledged
  deployment request was decided once (live, superseded, ...: one deployment.succeeded/failed);
- no request failed (5xx, or no answer) unless a fault explains it: in flight at a kill (started before it,
  ended after it), or in flight during PostgreSQL's outage (from its stop until it accepts connections
  again: no write can commit then). Anything else, and any 4xx but a deployment the gate blocks (409, a
  decision), fails the test;
- every consumer's lag (num_pending + num_ack_pending) comes back to zero, every outbox is published.

The figures (recovery to ready per fault, failures in flight, lag and effect counts) are printed, written to
the test's tmp dir (and to bench/results/cluster-faults.json with MLIFE_KEEP_BENCH_RESULTS=1). Times are
reported, never asserted. A second test shows the count can fail: an inbox row removed and a test set version
relabelled are seen as lost and duplicated."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from mlife_shared.messaging.bus import connect, provision_streams
from scripts.cluster import Cluster
from tests.support.cluster import (
    Fault,
    Workload,
    effects,
    figures,
    lag,
    measure_ready,
    outbox_rows,
    query,
    serving_effects,
    set_up_serving,
    table,
)
from tests.support.processes import READY_TIMEOUT
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.xdist_group("cluster"), pytest.mark.timeout(1500)]

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "cluster-faults.json"
STEADY_SECONDS = 4  # load without a fault before the next one


async def kill_nats_node(cluster: Cluster) -> Fault:
    at = time.monotonic()
    cluster.kill("nats-2")
    await asyncio.sleep(2)
    cluster.restart("nats-2")
    await cluster.wait_nats(2)
    return Fault("NATS node killed (-9) and restarted", at, time.monotonic())


async def kill_workers(cluster: Cluster) -> Fault:
    at = time.monotonic()
    names = [f"{app}-worker-1" for app in ("bam", "dam", "mtt", "msm", "gateway")]
    for name in names:
        cluster.kill(name)
    for name in names:
        cluster.restart(name)
    return Fault("one worker of every service SIGKILLed", at, time.monotonic())


async def kill_api(cluster: Cluster, name: str, what: str) -> Fault:
    at = time.monotonic()
    cluster.kill(name)
    cluster.restart(name)
    return Fault(what, at, time.monotonic())


async def restart_postgres(cluster: Cluster) -> Fault:
    at = time.monotonic()
    back = await cluster.restart_postgres()
    return Fault("PostgreSQL restarted (immediate stop)", at, back, outage=True)


async def inject_all(cluster: Cluster) -> list[Fault]:
    faults = []
    for inject in (kill_nats_node, kill_workers,
                   lambda c: kill_api(c, "bam-api-1", "BAM API replica SIGKILLed"),
                   lambda c: kill_api(c, "gateway-api-1", "gateway SIGKILLed"),
                   restart_postgres):
        await asyncio.sleep(STEADY_SECONDS)
        fault = await inject(cluster)
        fault.ready_s = await measure_ready(cluster, fault.at, READY_TIMEOUT)
        faults.append(fault)
    await asyncio.sleep(STEADY_SECONDS)
    return faults


async def test_every_event_takes_effect_once_through_faults_under_load(cluster: Cluster, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=cluster.url, headers={"Authorization": f"Bearer {cluster.token}"},
                                 timeout=60) as client:
        load = Workload(client, serving=await set_up_serving(client))
        running = asyncio.create_task(load.run())
        try:
            faults = await inject_all(cluster)
        finally:
            load.stop.set()
            await running
    stopped = time.monotonic()
    lag_at_stop, (_, unpublished_at_stop) = await lag(cluster), await outbox_rows(cluster)

    try:
        # The bound is for a failing run only: before DAM froze its test set once per consumer batch, ~100
        # requests behind at the load's stop took 70 s here alone and more than 180 s beside the rest of make test
        _last_behind.clear()
        await wait_for(lambda: _drained(cluster), 600, "every outbox published and every consumer's lag at zero")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; still behind: {_last_behind}") from None
    drained_s = round(time.monotonic() - stopped, 2)
    await wait_for(lambda: _tasks_ended(cluster, load), 300, "every acknowledged testing task ended")
    counted = await effects(cluster)
    served = await serving_effects(cluster, load)
    unexplained = [c for c in load.calls if c.failed and not any(f.excuses(c) for f in faults)]
    refused = [c for c in load.calls if c.status is not None and 400 <= c.status < 500
               and (c.kind, c.status) != ("deployment", 409)]  # blocked by the gate: a decision
    summary = {
        "requests": len(load.calls), "acknowledged_test_data_requests": len(load.request_ids),
        "acknowledged_datasets_grouped": len(load.datasets),
        "failed": sum(1 for c in load.calls if c.failed), "failed_unexplained": len(unexplained),
        "events_applied": counted["events_applied"], "effects_lost": sum(counted["lost_by_consumer"].values()),
        "test_data_requests": counted["test_data_requests"], "test_data_lost": counted["test_data_lost"],
        "test_data_duplicated": counted["test_data_duplicated"], "seconds_to_zero_lag_after_load": drained_s,
        "lag_at_load_stop": lag_at_stop, "unpublished_at_load_stop": unpublished_at_stop,
        **served,
    }
    result = figures(faults, load.calls, summary)
    print("\n" + table(faults, load.calls, summary))
    keep = os.environ.get("MLIFE_KEEP_BENCH_RESULTS") == "1"  # a measuring run keeps its figures; make test does not
    for path in (tmp_path / "cluster-faults.json", *([RESULTS] if keep else [])):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")

    assert load.request_ids and counted["events_applied"], "the workload wrote nothing"
    assert not counted["lost_by_consumer"], (counted["lost_by_consumer"], counted["lost_detail"])
    assert counted["test_data_lost"] == 0 and counted["test_data_duplicated"] == 0, counted
    assert set(load.request_ids) <= counted["requests_in_outbox"], "an acknowledged request left no event"
    assert set(load.datasets) <= counted["datasets_grouped"], "an acknowledged group left no event"
    assert len(load.tasks) >= 2 and load.deployments, served
    assert load.trainings and not served["trainings_not_ended_once"], served
    assert not served["tasks_not_ended_once"] and not served["tasks_misfiled"], served
    assert not served["deployments_not_decided_once"], served
    assert not unexplained, [vars(c) for c in unexplained[:10]]
    assert not refused, [vars(c) for c in refused[:10]]


async def _tasks_ended(cluster: Cluster, load: Workload) -> bool:
    assert load.serving is not None
    ended = await serving_effects(cluster, load)
    final = {"succeeded", "failed", "cancelled"}
    return set(ended["tasks_by_status"]) | set(ended["trainings_by_status"]) <= final and await _drained(cluster)


_last_behind: dict[str, object] = {}


async def _drained(cluster: Cluster) -> bool:
    """Every outbox published and no consumer behind, twice in a row with no outbox row added in between. One look
    is not enough: a consumer commits the events its handler adds, then acks; an outbox looked at before that
    commit and the lag after that ack both read zero while the new event is still to be published and applied
    (CI saw a `dataset.grouped` counted lost so). What was left at the last look stays in _last_behind (a
    timed-out wait names it)."""
    rows, not_published = await outbox_rows(cluster)
    behind = await lag(cluster)
    settled = not_published == 0 and not behind
    steady = settled and _last_behind.get("settled_at_rows") == rows
    _last_behind.clear()
    _last_behind.update(unpublished=not_published, lag=behind, settled_at_rows=rows if settled else None)
    return steady


async def test_the_count_sees_an_effect_lost_and_one_duplicated(cluster: Cluster) -> None:
    """The measurement above can fail: an inbox row removed is an event lost; a test set version relabelled
    with another request's id is one request lost and another duplicated."""
    async with httpx.AsyncClient(base_url=cluster.url, headers={"Authorization": f"Bearer {cluster.token}"},
                                 timeout=60) as client:
        load = Workload(client, clients=1)
        running = asyncio.create_task(load.run())
        await wait_for(lambda: len(load.request_ids) >= 2, 120, "two add-to-test-data requests")
        load.stop.set()
        await running
    _last_behind.clear()
    await wait_for(lambda: _drained(cluster), 180, "every outbox published and every consumer's lag at zero")
    before = await effects(cluster)
    assert not before["lost_by_consumer"] and before["test_data_duplicated"] == 0, {
        k: before[k] for k in ("lost_by_consumer", "lost_detail", "test_data_duplicated")}

    await query(cluster, "dam", "DELETE FROM inbox WHERE ctid = (SELECT ctid FROM inbox WHERE consumer = "
                                "'dam-test-data-requested' LIMIT 1)")
    await query(cluster, "dam", "UPDATE document_version SET message = 'relabelled (request ' || $1 || ')' WHERE ctid ="
                                " (SELECT ctid FROM document_version WHERE created_by = 'bam' AND message NOT LIKE "
                                "'%' || $1 || '%' LIMIT 1)", load.request_ids[0])
    after = await effects(cluster)
    assert after["lost_by_consumer"] == {"dam-test-data-requested": 1}, after
    assert (after["test_data_lost"], after["test_data_duplicated"]) == (1, 1), after


async def test_streams_have_three_replicas_and_a_stream_of_one_is_scaled_up(cluster: Cluster) -> None:
    """MLIFE_NATS_REPLICAS=3: every stream (the services' and MTT's run queue) is on the three nodes; a stream
    of one replica (made before the setting) is scaled to three when its worker provisions it again."""
    assert set((await cluster.stream_replicas()).values()) == {3}, await cluster.stream_replicas()
    nc = await connect(cluster.nats_url, name="cluster-test", user="bam", password=cluster.passwords["bam"])
    try:
        js = nc.jetstream()
        config = (await js.stream_info("MLIFE_BAM")).config
        config.num_replicas = 1
        await js.update_stream(config)
        assert (await js.stream_info("MLIFE_BAM")).config.num_replicas == 1
        await provision_streams(js, producer="bam", replicas=3)
        assert (await js.stream_info("MLIFE_BAM")).config.num_replicas == 3
    finally:
        await nc.close()
