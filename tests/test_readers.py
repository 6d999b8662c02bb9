"""One organisation, one reader: a second program is refused instead of taking deliveries away.

And the retry delays after a failed handler are the hub's ``HUB_BACKOFF_S``, carried to the SDK
by the organisation's consumer.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

import subscribers.connection
from hub.config import HubSettings
from hub.registry import Registry
from hub.samples import sample_event
from hub.service import Hub
from schemas.envelope import Event
from schemas.wire import CONSUMER_BACKOFF_KEY
from subscribers.errors import ReaderConflict
from subscribers.recipient import Delivery, Recipient
from tests.conftest import Orgs, hub_running
from tests.helpers import eventually, just_started, receiving, run_hub

pytestmark = pytest.mark.connected

ORG = "renqiu-qingta"


async def reading(hub: Hub) -> bool:
    """Someone holds a pull request open on the organisation's consumer."""
    info = await hub.js.consumer_info(hub.settings.wire.deliveries_stream, f"deliver-{ORG}")
    return bool(info.num_waiting)


async def publish(orgs: Orgs, hub: Hub, count: int) -> list[str]:
    publisher = await orgs.publisher("renqiu-scjg")
    keys = []
    for n in range(count):
        event = sample_event("other", "renqiu-scjg", datetime.now(UTC), n, recipients=(ORG,))
        accepted = await publisher.publish(event)
        keys.append(f"{accepted.source}/{accepted.id}")
    return keys


async def ignore(event: Event, delivery: Delivery) -> None:
    raise AssertionError("a refused reader must never be handed an event")


async def test_a_second_reader_is_refused_and_the_first_gets_everything(
    hub: Hub, orgs: Orgs
) -> None:
    async with receiving(hub.settings, [ORG]) as inboxes:
        await eventually(lambda: reading(hub))
        with pytest.raises(ReaderConflict, match=ORG):
            await Recipient(await orgs.nc(ORG), ORG, wire=hub.settings.wire).run(
                ignore, asyncio.Event()
            )
        keys = await publish(orgs, hub, 11)
        await eventually(lambda: len(inboxes[ORG].keys) == 11)
    assert inboxes[ORG].keys == keys


async def test_hub_tail_ack_and_dashboard_are_refused_while_the_organisation_reads(
    hub: Hub, orgs: Orgs
) -> None:
    async with receiving(hub.settings, [ORG]):
        await eventually(lambda: reading(hub))
        tail = await run_hub(hub.settings, "tail", "--ack", "--as", ORG)
        page = await run_hub(hub.settings, "dashboard", "--as", ORG, "--port", "0")
    for code, _, err in (tail, page):
        assert code == 2 and f"已有其他程序在以 {ORG} 的身份接收" in err
        assert "Traceback" not in err


async def test_a_reader_that_just_stopped_does_not_block_the_next(hub: Hub, orgs: Orgs) -> None:
    async with receiving(hub.settings, [ORG]):
        await eventually(lambda: reading(hub))
    async with receiving(hub.settings, [ORG]) as inboxes:  # its pull requests still linger
        keys = await publish(orgs, hub, 2)
        await eventually(lambda: len(inboxes[ORG].keys) == 2, within=10)
    assert inboxes[ORG].keys == keys


async def test_instances_of_one_system_may_share_the_work_when_they_say_so(
    hub: Hub, orgs: Orgs
) -> None:
    got: list[str] = []

    async def record(event: Event, delivery: Delivery) -> None:
        got.append(event.key)

    stop = asyncio.Event()
    async with receiving(hub.settings, [ORG]) as inboxes, asyncio.TaskGroup() as tasks:
        await eventually(lambda: reading(hub))
        shared = Recipient(await orgs.nc(ORG), ORG, wire=hub.settings.wire, exclusive=False)
        tasks.create_task(shared.run(record, stop))
        keys = await publish(orgs, hub, 20)
        await eventually(lambda: len(inboxes[ORG].keys) + len(got) == 20, within=10)
        stop.set()
    assert sorted(inboxes[ORG].keys + got) == sorted(keys)


async def test_the_hub_backoff_setting_decides_the_delays_between_attempts(
    settings: HubSettings, registry: Registry, orgs: Orgs
) -> None:
    configured = settings.model_copy(update={"backoff_s": (0.3, 2.5), "max_deliver": 3})
    attempts: list[float] = []
    loop = asyncio.get_running_loop()

    async def refuse(event: Event, delivery: Delivery) -> None:
        attempts.append(loop.time())
        raise RuntimeError("本地数据库不可用")

    async with hub_running(configured, registry) as hub:
        info = await hub.js.consumer_info(configured.wire.deliveries_stream, f"deliver-{ORG}")
        recipient = Recipient(await orgs.nc(ORG), ORG, wire=configured.wire)
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(recipient.run(refuse, stop))
            await publish(orgs, hub, 1)
            await eventually(lambda: len(attempts) == 3, within=15)
            stop.set()
    assert (info.config.metadata or {})[CONSUMER_BACKOFF_KEY] == "0.3,2.5"
    assert recipient.backoff_s == (0.3, 2.5)  # the SDK's own default is (2, 10, 60, 300, 900)
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.3 and gaps[1] >= 2.5


async def test_a_reader_started_with_a_cluster_waits_until_jetstream_serves(
    hub: Hub, orgs: Orgs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscribers.connection, "UNAVAILABLE_RETRY_S", 0.01)
    got: list[str] = []

    async def record(event: Event, delivery: Delivery) -> None:
        got.append(event.key)

    recipient = Recipient(await orgs.nc(ORG), ORG, wire=hub.settings.wire)
    recipient.js = just_started(recipient.js, "consumer_info", refusals=2)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(recipient.run(record, stop))
        keys = await publish(orgs, hub, 2)
        await eventually(lambda: len(got) == 2, within=10)
        stop.set()
    assert got == keys
    assert recipient.js.refusals == 0  # type: ignore[attr-defined]
