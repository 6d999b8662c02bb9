"""Fan-out through the real nats-server: every entitled recipient, exactly once, nothing else."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from hub.config import HubSettings
from hub.registry import OrgKind, Registry
from hub.samples import sample_event
from hub.service import Hub
from schemas.complaint_outcome import ComplaintOutcome
from schemas.envelope import Event
from schemas.statistics import Statistics
from subscribers.recipient import Delivery
from tests.conftest import Orgs, hub_running
from tests.helpers import (
    eventually,
    fanned_out,
    receipt_count,
    receipts,
    receiving,
    stream_messages,
)

pytestmark = pytest.mark.connected


def members(registry: Registry, county: str, *kinds: OrgKind) -> list[str]:
    return [o.id for o in registry.members(county) if o.kind in kinds]


TOWNSHIP_KINDS = (OrgKind.TOWNSHIP, OrgKind.STREET)


async def publish(
    orgs: Orgs, hub: Hub, category: str, source: str, n: int = 0, **envelope: Any
) -> str:
    accepted = await (await orgs.publisher(source)).publish(
        sample_event(category, source, datetime.now(UTC), n, **envelope)
    )
    return f"{accepted.source}/{accepted.id}"


async def settled(hub: Hub, orgs: list[str]) -> bool:
    """Every listed consumer has nothing pending and nothing waiting for an ack."""
    for org in orgs:
        info = await hub.js.consumer_info(hub.settings.wire.deliveries_stream, f"deliver-{org}")
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def test_department_event_reaches_each_township_once_and_no_other_county(
    hub: Hub, orgs: Orgs, registry: Registry
) -> None:
    townships = members(registry, "renqiu", *TOWNSHIP_KINDS)
    bystanders = members(registry, "renqiu", OrgKind.DEPARTMENT) + members(
        registry, "qingxian", *TOWNSHIP_KINDS
    )
    async with receiving(hub.settings, townships + bystanders) as inboxes:
        key = await publish(orgs, hub, "permit", "renqiu-scjg")
        await eventually(lambda: settled(hub, townships + bystanders))
        await eventually(lambda: _receipts_reach(hub, len(townships)))
    assert len(townships) == 19
    assert {org: inboxes[org].keys for org in townships} == {org: [key] for org in townships}
    assert all(inboxes[org].keys == [] for org in bystanders)
    assert await stream_messages(hub.js, hub.settings.wire.deliveries_stream) == 19


async def test_township_statistics_reach_its_county_departments(
    hub: Hub, orgs: Orgs, registry: Registry
) -> None:
    departments = members(registry, "renqiu", OrgKind.DEPARTMENT)
    others = members(registry, "renqiu", *TOWNSHIP_KINDS) + members(
        registry, "qingxian", OrgKind.DEPARTMENT
    )
    async with receiving(hub.settings, departments + others) as inboxes:
        key = await publish(orgs, hub, "statistics", "renqiu-chuan")
        await eventually(lambda: settled(hub, departments + others))
        await eventually(lambda: all(inboxes[d].keys for d in departments))
    assert {d: inboxes[d].keys for d in departments} == {d: [key] for d in departments}
    assert all(not inboxes[o].keys for o in others)
    ((event, _),) = inboxes["renqiu-scjg"].events
    assert isinstance(event.data, Statistics)
    assert event.data.indicators[0].name == "行政检查次数"


async def test_targeted_event_reaches_only_its_targets(
    hub: Hub, orgs: Orgs, registry: Registry
) -> None:
    targets = ["renqiu-qingta", "renqiu-chuan"]
    everyone = members(registry, "renqiu", *TOWNSHIP_KINDS, OrgKind.DEPARTMENT, OrgKind.GOVERNMENT)
    async with receiving(hub.settings, everyone) as inboxes:
        key = await publish(orgs, hub, "other", "renqiu-scjg", recipients=tuple(targets))
        await eventually(lambda: all(inboxes[t].keys for t in targets))
        await eventually(lambda: settled(hub, everyone))
    assert {org for org in everyone if inboxes[org].keys} == set(targets)
    assert inboxes["renqiu-chuan"].keys == [key]


async def test_complainant_data_reaches_only_the_entitled_recipient(
    hub: Hub, orgs: Orgs, registry: Registry
) -> None:
    departments = members(registry, "renqiu", OrgKind.DEPARTMENT)
    async with receiving(hub.settings, departments) as inboxes:
        await publish(orgs, hub, "complaint_outcome", "renqiu-chuan")
        await eventually(lambda: all(inboxes[d].keys for d in departments))
    entitled_event, entitled_delivery = inboxes["renqiu-scjg"].events[0]
    assert isinstance(entitled_event.data, ComplaintOutcome) and not entitled_delivery.redacted
    assert entitled_event.data.complainant is not None
    assert entitled_event.data.complainant.phone == "13831700000"
    for org in departments:
        if org != "renqiu-scjg":
            event, delivery = inboxes[org].events[0]
            assert isinstance(event.data, ComplaintOutcome)
            assert event.data.complainant is None and delivery.redacted
    raw = await hub.js.get_msg(
        hub.settings.wire.deliveries_stream,
        subject=hub.settings.wire.deliver("renqiu-zjj"),
    )
    body = raw.data or b""
    assert b"13831700000" not in body and "赵先生".encode() not in body


async def test_offline_recipient_receives_all_500_events_when_it_connects(
    hub: Hub, orgs: Orgs
) -> None:
    pub = await orgs.publisher("renqiu-scjg")
    now = datetime.now(UTC)
    keys = []
    for n in range(500):
        accepted = await pub.publish(
            sample_event("permit", "renqiu-scjg", now, n, recipients=("renqiu-beihan",))
        )
        keys.append(f"{accepted.source}/{accepted.id}")
    await eventually(lambda: fanned_out(hub, "renqiu-beihan", 500), within=30)
    async with receiving(hub.settings, ["renqiu-beihan"]) as inboxes:
        await eventually(lambda: len(inboxes["renqiu-beihan"].keys) >= 500, within=30)
        await eventually(lambda: settled(hub, ["renqiu-beihan"]))
    assert inboxes["renqiu-beihan"].keys == keys  # all of them, once each, in publication order


async def _receipts_reach(hub: Hub, count: int) -> bool:
    return await receipt_count(hub.js, hub.settings) >= count


async def test_failing_handler_is_retried_with_backoff_then_dead_lettered(
    hub: Hub, orgs: Orgs
) -> None:
    attempts: list[tuple[int, float]] = []
    loop = asyncio.get_running_loop()

    async def refuse(event: Event, delivery: Delivery) -> None:
        attempts.append((delivery.attempt, loop.time()))
        raise RuntimeError("本地数据库不可用")

    async with receiving(hub.settings, ["renqiu-qingta"], handler=refuse):
        await publish(orgs, hub, "other", "renqiu-scjg", recipients=("renqiu-qingta",))
        await eventually(lambda: _receipts_reach(hub, 3), within=10)
        await eventually(lambda: settled(hub, ["renqiu-qingta"]))
    assert [a for a, _ in attempts] == [1, 2, 3]  # max_deliver = 3
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # backoff_s = (0.2, 0.4)
    found = await receipts(hub.js, hub.settings)
    assert [(r.status, r.deliveries) for r in found] == [
        ("failed", 1),
        ("failed", 2),
        ("dead_lettered", 3),
    ]
    assert {r.reason for r in found} == {"RuntimeError: 本地数据库不可用"}


async def test_handler_that_recovers_is_acknowledged_once(hub: Hub, orgs: Orgs) -> None:
    calls = 0

    async def flaky(event: Event, delivery: Delivery) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("暂时断网")

    async with receiving(hub.settings, ["renqiu-qingta"], handler=flaky) as inboxes:
        key = await publish(orgs, hub, "other", "renqiu-scjg", recipients=("renqiu-qingta",))
        await eventually(lambda: _receipts_reach(hub, 2), within=10)
    assert inboxes["renqiu-qingta"].keys == [key] and calls == 2
    found = await receipts(hub.js, hub.settings)
    assert [(r.status, r.deliveries, r.event_key) for r in found] == [
        ("failed", 1, key),
        ("acknowledged", 2, key),
    ]


async def test_a_bundle_jetstream_did_not_confirm_is_written_again_before_anything_newer(
    settings: HubSettings, registry: Registry, orgs: Orgs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as in production, the fan-out gives up waiting for a confirmation (2 s here, 5 s there)
    # well before JetStream would hand the batch out again (10 s)
    patient = settings.model_copy(update={"ack_wait_s": 10.0, "request_timeout_s": 2.0})
    recipient = "renqiu-beihan"
    async with hub_running(patient, registry) as hub:
        subject = hub.settings.wire.deliver(recipient)
        publish_async = hub.js.publish_async
        lost: list[str] = []

        async def losing_the_first(to: str, payload: bytes = b"", **options: Any) -> Any:
            if to == subject and not lost:  # as if the message or its answer went missing
                lost.append(to)
                return asyncio.get_running_loop().create_future()  # never answered
            return await publish_async(to, payload, **options)

        monkeypatch.setattr(hub.js, "publish_async", losing_the_first)
        pub = await orgs.publisher("renqiu-scjg")
        now = datetime.now(UTC)
        keys = []
        for n in range(30):  # the fan-out waits on the lost bundle while these are accepted
            accepted = await pub.publish(
                sample_event("permit", "renqiu-scjg", now, n, recipients=(recipient,))
            )
            keys.append(f"{accepted.source}/{accepted.id}")
        await eventually(lambda: fanned_out(hub, recipient, 30), within=60)
        async with receiving(hub.settings, [recipient]) as inboxes:
            await eventually(lambda: len(inboxes[recipient].keys) >= 30, within=30)
            await eventually(lambda: settled(hub, [recipient]))
    assert lost == [subject]
    assert inboxes[recipient].keys == keys  # the lost one first, then the rest, once each


@pytest.mark.parametrize(("gather_s", "together", "bundles"), [(0.0, False, 3), (1.0, True, 1)])
async def test_with_a_gathering_window_events_accepted_close_together_share_one_bundle(
    settings: HubSettings,
    registry: Registry,
    orgs: Orgs,
    gather_s: float,
    together: bool,
    bundles: int,
) -> None:
    """Without a window each event is written as it comes (the fan-out waits 20 ms at most).

    Without a window, each event is published once the one before is written, so that a loaded
    machine cannot bring two into one fetch; with one, the three are published at once, so that
    they are accepted well within it however loaded the machine. (Sleeping 0.3 and 0.1 s between
    events failed under CI's load: events came together, or further apart than the window.)
    """
    recipient = "renqiu-beihan"
    gathering = settings.model_copy(update={"fanout_gather_s": gather_s})
    async with hub_running(gathering, registry) as hub:
        pub = await orgs.publisher("renqiu-scjg")
        now = datetime.now(UTC)
        sent = [
            await pub.publish(sample_event("permit", "renqiu-scjg", now, recipients=(recipient,)))
        ]
        await eventually(lambda: fanned_out(hub, recipient, 1), within=10)  # fan-out is running
        before = await stream_messages(hub.js, hub.settings.wire.deliveries_stream)
        events = [
            sample_event("permit", "renqiu-scjg", now, n, recipients=(recipient,))
            for n in range(1, 4)
        ]
        if together:
            sent += sorted(
                await asyncio.gather(*(pub.publish(event) for event in events)),
                key=lambda accepted: accepted.seq,  # the order the hub accepted them in
            )
        else:
            for n, event in enumerate(events, 1):
                sent.append(await pub.publish(event))
                await eventually(partial(fanned_out, hub, recipient, 1 + n), within=10)
        await eventually(lambda: fanned_out(hub, recipient, 4), within=10)
        written = await stream_messages(hub.js, hub.settings.wire.deliveries_stream) - before
        async with receiving(hub.settings, [recipient]) as inboxes:
            await eventually(lambda: len(inboxes[recipient].keys) >= 4, within=10)
    assert written == bundles
    assert inboxes[recipient].keys == [f"{a.source}/{a.id}" for a in sent]
