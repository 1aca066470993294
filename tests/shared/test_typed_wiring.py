"""Typed event wiring: `Subscription.of(Contract, handler, ctx)` takes the subject from the contract, refuses a
handler annotated with another event, and keeps every durable consumer name the services had before it."""

from __future__ import annotations

import ast
import subprocess
import sys
import uuid
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mlife_shared.events import EVENTS, Envelope, EventData, new_envelope
from mlife_shared.events.contracts import BadcaseCreated, BadcaseMerged, BadcaseTestDataRequested, DatasetGrouped
from mlife_shared.events.registry import stream_for_subject
from mlife_shared.messaging import natsauth
from mlife_shared.messaging.consumer import Subscription, durable_name, handler_event

if TYPE_CHECKING:  # resolvable by a type checker only: Subscription.of must not need it at run time
    from sqlalchemy.ext.asyncio import AsyncSession

ROOT = Path(__file__).resolve().parents[2]

# Every durable consumer of the platform as it was before Subscription.of (service, durable, subject, stream,
# ack wait in seconds): installed JetStreams hold these consumers and deploy/nats/nats.conf grants exactly these.
DURABLES_BEFORE = """
bam  bam-testing-completed     testing.completed            MLIFE_MTT  120
bam  bam-serving-feedback      serving.feedback             MLIFE_MSM   30
bam  bam-model-promoted        model.promoted               MLIFE_MSM  120
dam  dam-test-data-requested   badcase.test_data_requested  MLIFE_BAM  120
mtt  mtt-dataset-grouped       dataset.grouped              MLIFE_DAM   30
mtt  mtt-model-registered      model.registered             MLIFE_MSM   30
mtt  mtt-testing-requested     testing.requested            MLIFE_MSM   30
msm  msm-model-uploaded        model.uploaded               MLIFE_MTT  300
msm  msm-testing-completed     testing.completed            MLIFE_MTT  120
msm  msm-testing-failed        testing.failed               MLIFE_MTT   30
msm  msm-dataset-grouped       dataset.grouped              MLIFE_DAM   30
msm  msm-deployment-requested  deployment.requested         MLIFE_MSM  300
gateway  gateway-hub-mlife-bam      >  MLIFE_BAM      30
gateway  gateway-hub-mlife-dam      >  MLIFE_DAM      30
gateway  gateway-hub-mlife-mtt      >  MLIFE_MTT      30
gateway  gateway-hub-mlife-msm      >  MLIFE_MSM      30
gateway  gateway-hub-mlife-gateway  >  MLIFE_GATEWAY  30
"""


async def on_grouped(event: Envelope[DatasetGrouped], session: AsyncSession, ctx: Any) -> None:
    ctx.append((event, session))


async def on_created(event: Envelope[BadcaseCreated], session: AsyncSession, ctx: Any) -> None:
    ctx.append((event, session))


async def on_anything(event: Envelope[Any], session: AsyncSession, ctx: Any) -> None:
    ctx.append((event, session))


async def on_any_event_data(event: Envelope[EventData], session: AsyncSession, ctx: Any) -> None:
    ctx.append((event, session))


async def on_unannotated(event, session, ctx):  # type: ignore[no-untyped-def]
    ctx.append((event, session))


async def on_unknown_name(event: Envelope[NotImported], session: Any, ctx: Any) -> None:  # type: ignore[name-defined]  # noqa: F821
    ctx.append((event, session))


def grouped() -> DatasetGrouped:
    return DatasetGrouped(dataset_id=uuid.uuid4(), version=1, purpose="test", manifest_key="dam/x/manifest.json",
                          item_count=1)


def test_the_subject_and_the_name_come_from_the_contract() -> None:
    sub = Subscription.of(DatasetGrouped, on_grouped, [], ack_wait_seconds=45)
    assert (sub.subject, sub.name, sub.contract, sub.ack_wait_seconds, sub.max_deliver) == (
        "dataset.grouped", "dataset-grouped", DatasetGrouped, 45, None)
    assert durable_name("mtt", sub) == "mtt-dataset-grouped"
    named = Subscription.of(BadcaseTestDataRequested, partial_handler(), [], name="test-data-requested")
    assert named.name == "test-data-requested" and named.subject == "badcase.test_data_requested"
    assert Subscription.of(BadcaseTestDataRequested, partial_handler(), []).name == "badcase-test-data-requested"


def partial_handler() -> Any:
    async def on_requested(event: Envelope[BadcaseTestDataRequested], session: Any, ctx: Any, *,
                           extra: int = 0) -> None:
        ctx.append((event, session, extra))

    return partial(on_requested, extra=1)


async def test_the_handler_gets_the_event_the_session_and_its_context() -> None:
    seen: list[Any] = []
    sub = Subscription.of(DatasetGrouped, on_grouped, seen)
    envelope = new_envelope(grouped())
    session: Any = object()  # the runner's unit of work; this handler only records it
    await sub.handler(envelope, session)
    assert seen == [(envelope, session)]


@pytest.mark.parametrize(("handler", "shown"), [
    (on_created, "takes Envelope[BadcaseCreated] but is subscribed to 'dataset.grouped'"),
    (on_anything, "takes no Envelope[<contract>] annotation"),
    (on_any_event_data, "takes Envelope[EventData] but"),
    (on_unannotated, "takes no Envelope[<contract>] annotation"),
    (partial(on_created, ctx=[]), "on_created takes Envelope[BadcaseCreated]"),
])
def test_a_handler_typed_for_another_event_is_refused(handler: Any, shown: str) -> None:
    with pytest.raises(TypeError, match=shown.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        Subscription.of(DatasetGrouped, handler, [])


def test_an_unresolvable_event_annotation_is_refused_with_its_name() -> None:
    with pytest.raises(TypeError, match="cannot resolve its event annotation 'Envelope\\[NotImported\\]'"):
        Subscription.of(DatasetGrouped, on_unknown_name, [])


def test_a_contract_that_is_not_registered_is_refused() -> None:
    class Stray(BadcaseMerged):
        """Sent when nothing: it shares badcase.merged's subject but is not its registered contract."""

    async def on_stray(event: Envelope[Stray], session: Any, ctx: Any) -> None:
        ctx.append(event)

    with pytest.raises(TypeError, match="Stray is not the registered contract of 'badcase.merged'"):
        Subscription.of(Stray, on_stray, [])


def test_handler_event_reads_only_the_event_annotation() -> None:
    # The session annotation names a type imported for type checking only (this module's AsyncSession).
    assert handler_event(on_grouped) is DatasetGrouped
    assert handler_event(partial(on_created, ctx=None)) is BadcaseCreated
    assert handler_event(on_anything) is None


def real_subscriptions() -> dict[str, list[Subscription]]:
    return {name: natsauth.spec_subscriptions(spec) for name, spec in natsauth.load_specs().items()}


def test_every_service_keeps_its_durable_consumer_names() -> None:
    now = {(service, durable_name(service, sub), sub.subject, sub.stream_name, str(int(sub.ack_wait_seconds)))
           for service, subs in real_subscriptions().items() for sub in subs}
    assert now == {tuple(line.split()) for line in DURABLES_BEFORE.strip().splitlines()}


def test_every_service_subscribes_through_its_contracts() -> None:
    """… except the gateway's hub, which reads whole streams (every public event, for webhooks and alerts)."""
    for service, subs in real_subscriptions().items():
        for sub in subs:
            if sub.stream is not None:
                assert service == "gateway" and sub.subject == ">" and handler_event(sub.handler) is None, sub
                continue
            assert sub.contract is not None and EVENTS[sub.subject] is sub.contract, (service, sub.name)
            assert handler_event(sub.handler) is sub.contract, (service, sub.name)
            assert sub.max_deliver is None, (service, sub.name)  # the worker's consumer_max_deliver applies


def test_consumers_read_their_settings_typed() -> None:
    # ServiceContext[Settings] gives each handler its own service's settings: no getattr, cast or ignore.
    offenders = []
    for path in sorted(ROOT.glob("services/*/*/*/consumers.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "getattr(ctx.settings" in line or "cast(" in line or "type: ignore" in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_registry_imports_no_contract() -> None:
    events = ROOT / "shared" / "mlife_shared" / "events"
    for module in ("registry.py", "envelope.py"):
        imported = _imported_modules(events / module)
        assert not {m for m in imported if m == "mlife_shared.events.contracts"
                    or m == "mlife_shared.events" or m.startswith("mlife_shared.events.contracts")}, module


@pytest.mark.parametrize("first", ["mlife_shared.events.registry", "mlife_shared.events.contracts",
                                   "mlife_shared.events", "mlife_shared.messaging.consumer"])
def test_the_registry_is_complete_whichever_module_is_imported_first(first: str) -> None:
    code = (f"import {first}\nfrom mlife_shared.events.registry import EVENTS, streams, stream_for_subject\n"
            "print(len(EVENTS), sum(map(len, streams().values())), stream_for_subject('serving.feedback'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    contracts = (ROOT / "shared" / "mlife_shared" / "events" / "contracts.py").read_text().count("\n@register\n")
    assert contracts >= 22
    assert out == [str(contracts), str(contracts), "MLIFE_MSM"]
