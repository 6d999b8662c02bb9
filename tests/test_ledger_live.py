"""The live ledger against a real nats-server, its rebuild from the streams, and both databases."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from hub.config import HubSettings
from hub.ledger import DeliveryRow, Ledger
from hub.projection import rebuild
from hub.registry import OrgKind, Registry
from hub.report_output import Format, render_daily, render_org
from hub.reports import daily_report, org_report
from hub.samples import sample_event
from hub.service import Hub, follow_ledger
from hub.timeliness import end_of_day, shanghai_day
from schemas.envelope import Event
from schemas.receipt import Receipt
from schemas.shanghai import SHANGHAI
from subscribers.recipient import Delivery
from tests.conftest import BACKENDS, Orgs, hub_running, open_ledger
from tests.helpers import eventually, receiving, trust_of_hub

pytestmark = pytest.mark.connected

OFFLINE, FLAKY, BROKEN = "renqiu-beihan", "renqiu-qingta", "renqiu-yucun"


@dataclass
class Scenario:
    """What a scenario published and what the ledger should end up holding."""

    keys: list[str]
    expected: dict[str, int]
    poisoned: str
    day: date  # the Shanghai day the events were formed


async def run_scenario(orgs: Orgs, hub: Hub, registry: Registry) -> Scenario:
    """Departments and townships publish; one recipient is offline, one flaky, one broken."""
    now = datetime.now(UTC)
    plan = [
        ("permit", "renqiu-scjg", {}),
        ("law_change", "renqiu-zjj", {}),
        ("statistics", "renqiu-chuan", {}),
        ("other", "renqiu-scjg", {"recipients": (FLAKY, OFFLINE, BROKEN)}),
        ("inspection_record", "renqiu-majiawu", {}),
    ]
    keys, pairs = [], Counter[str]()
    for n, (category, source, envelope) in enumerate(plan):
        accepted = await (await orgs.publisher(source)).publish(
            sample_event(category, source, now, n, **envelope)
        )
        keys.append(f"{accepted.source}/{accepted.id}")
        pairs.update(accepted.recipients)
    poisoned = keys[0]  # the broken recipient can never handle the first event
    failed_once: set[str] = set()

    async def handle(event: Event, delivery: Delivery) -> None:
        if delivery.recipient == FLAKY and event.key not in failed_once:
            failed_once.add(event.key)
            raise ConnectionError("暂时断网")
        if delivery.recipient == BROKEN and event.key == poisoned:
            raise ValueError("本地系统不认识这个许可证编号格式")

    online = [
        o.id for o in registry.members("renqiu") if o.kind != OrgKind.OFFICE and o.id != OFFLINE
    ]
    total = sum(pairs.values())
    expected = {
        "acknowledged": total - pairs[OFFLINE] - 1,
        "dead_lettered": 1,
        "pending": pairs[OFFLINE],
    }
    async with receiving(hub.settings, online, handler=handle):
        await eventually(lambda: _counts_are(hub.ledger, expected), within=20)
    return Scenario(keys, expected, poisoned, shanghai_day(now))


async def _counts_are(ledger: Ledger, expected: dict[str, int]) -> bool:
    return await ledger.counts() == expected


@pytest.fixture(params=BACKENDS)
async def ledger_hub(
    request: pytest.FixtureRequest, settings: HubSettings, registry: Registry, tmp_path: Path
) -> AsyncIterator[Hub]:
    async with open_ledger(request.param, tmp_path, "live") as ledger:
        async with hub_running(settings, registry, ledger=ledger) as running:
            yield running


async def test_live_ledger_records_every_pair_and_a_rebuild_gives_the_same_rows(
    ledger_hub: Hub, orgs: Orgs, registry: Registry, tmp_path: Path
) -> None:
    scenario = await run_scenario(orgs, ledger_hub, registry)
    live = await ledger_hub.ledger.dump()
    events, pairs = live
    assert len(events) == len(scenario.keys)
    assert len(pairs) == sum(scenario.expected.values())
    for backend in BACKENDS:  # the same rows on the same backend and on the other one
        async with open_ledger(backend, tmp_path, f"rebuilt-{backend}") as rebuilt:
            read = await rebuild(
                ledger_hub.js, ledger_hub.settings.wire, rebuilt, trust_of_hub(ledger_hub)
            )
            assert await rebuilt.dump() == live, backend
    assert read[ledger_hub.settings.wire.events_stream] == len(scenario.keys)


async def test_flaky_and_broken_recipients_are_recorded_truthfully(
    ledger_hub: Hub, orgs: Orgs, registry: Registry
) -> None:
    scenario = await run_scenario(orgs, ledger_hub, registry)
    day = scenario.day
    rows = await ledger_hub.ledger.pairs(day_from=day, day_to=day)
    flaky = [r for r in rows if r.recipient == FLAKY]
    assert flaky and all(
        (r.state, r.attempts, r.redeliveries) == ("acknowledged", 2, 1) for r in flaky
    )
    (broken,) = [r for r in rows if r.recipient == BROKEN and r.event_key == scenario.poisoned]
    assert (broken.state, broken.attempts) == ("dead_lettered", 3)
    assert broken.reason == "ValueError: 本地系统不认识这个许可证编号格式"
    offline = [r for r in rows if r.recipient == OFFLINE]
    assert {r.state for r in offline} == {"pending"} and len(offline) == scenario.expected[
        "pending"
    ]


@pytest.mark.parametrize("live_backend", BACKENDS)
async def test_the_same_scenario_gives_identical_reports_on_sqlite_and_postgresql(
    live_backend: str, settings: HubSettings, registry: Registry, orgs: Orgs, tmp_path: Path
) -> None:
    async with open_ledger(live_backend, tmp_path, "live") as ledger:
        async with hub_running(settings, registry, ledger=ledger) as hub:
            day = (await run_scenario(orgs, hub, registry)).day
            reports = {}
            for backend in BACKENDS:
                async with open_ledger(backend, tmp_path, f"copy-{backend}") as copy:
                    await rebuild(hub.js, settings.wire, copy, trust_of_hub(hub))
                    reports[backend] = await _reports(copy, registry, day)
            reports["live"] = await _reports(ledger, registry, day)
    assert reports["sqlite"] == reports["postgresql"] == reports["live"]
    assert '"late": 0' in reports["sqlite"][0]  # judged a second before the day ends
    assert '"dead_lettered": 1' in reports["sqlite"][0]


async def _reports(ledger: Ledger, registry: Registry, day: date) -> list[str]:
    now = end_of_day(day) - timedelta(seconds=1)
    daily = await daily_report(ledger, registry, day, now=now)
    card = await org_report(ledger, registry, FLAKY, day, day, now=now)
    return [
        render_daily(daily, Format.JSON),
        render_org(card, Format.JSON),
        render_daily(daily, Format.CSV),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_recipient_offline_all_day_catches_up_next_morning_all_late(
    backend: str, settings: HubSettings, registry: Registry, orgs: Orgs, tmp_path: Path
) -> None:
    yesterday = datetime.now(SHANGHAI).date() - timedelta(days=1)
    opened = datetime.combine(yesterday, datetime.min.time(), SHANGHAI) + timedelta(hours=10)
    next_morning = opened + timedelta(hours=22, minutes=30)
    ticks = itertools.count()

    def clock() -> datetime:  # the hub's clock: yesterday at 10:00, a millisecond per request
        return opened + timedelta(milliseconds=next(ticks))

    def receipt_time(receipt: Receipt, stored: datetime) -> datetime:  # acknowledged at 08:30
        return next_morning + timedelta(milliseconds=receipt.delivery_seq)

    async with open_ledger(backend, tmp_path) as ledger:
        options = {"ledger": ledger, "clock": clock, "receipt_time": receipt_time}
        async with hub_running(settings, registry, **options):
            publisher = await orgs.publisher("renqiu-scjg")
            formed = opened - timedelta(minutes=5)
            for n in range(40):
                event = sample_event("permit", "renqiu-scjg", formed, n, recipients=(OFFLINE,))
                await publisher.publish(event)
            await eventually(lambda: _counts_are(ledger, {"pending": 40}))
            async with receiving(settings, [OFFLINE]):
                await eventually(lambda: _counts_are(ledger, {"acknowledged": 40}), within=20)
        later = next_morning + timedelta(hours=1)
        report = await daily_report(ledger, registry, yesterday, now=later)
        card = await org_report(ledger, registry, OFFLINE, yesterday, yesterday, now=later)
    (line,) = report.by_recipient
    t = line.tally
    assert (line.org, t.events, t.acknowledged, t.on_time, t.late, t.pending) == (
        OFFLINE,
        40,
        40,
        0,
        40,
        0,
    )
    assert (t.late_delivery, t.late_publisher) == (40, 0)  # published in time: the recipient's
    assert t.lag_p50_s is not None and t.lag_max_s is not None
    assert 22.5 * 3600 - 1 < t.lag_p50_s <= t.lag_max_s < 22.5 * 3600 + 1
    assert len(card.items) == 40 and {i.cause for i in card.items} == {"delivery"}
    assert {i.formed_at.astimezone(SHANGHAI).date() for i in card.items} == {yesterday}


async def test_the_ledger_can_be_kept_by_a_process_of_its_own(
    settings: HubSettings, registry: Registry, orgs: Orgs, tmp_path: Path
) -> None:
    split = settings.model_copy(update={"project_ledger": False})
    async with hub_running(split, registry) as hub:
        event = sample_event("other", "renqiu-scjg", datetime.now(UTC), recipients=(FLAKY,))
        accepted = await (await orgs.publisher("renqiu-scjg")).publish(event)
        async with receiving(split, [FLAKY]) as inboxes:
            await eventually(lambda: len(inboxes[FLAKY].keys) == 1)
        assert await hub.ledger.counts() == {}  # this hub keeps no ledger
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(follow_ledger(split, stop))
            await eventually(lambda: _counts_are(hub.ledger, {"acknowledged": 1}), within=10)
            # the receipt may be applied before its event: the row has its day once both are
            await eventually(lambda: _has_rows(split, accepted.id), within=10)
            stop.set()
    (row,) = await _rows_of(split, accepted.id)
    assert row.recipient == FLAKY and row.state == "acknowledged"


async def _has_rows(settings: HubSettings, event_id: str) -> bool:
    return bool(await _rows_of(settings, event_id))


async def _rows_of(settings: HubSettings, event_id: str) -> list[DeliveryRow]:
    async with Ledger.open(settings.ledger_database) as ledger:
        day = shanghai_day(datetime.now(UTC))
        return [
            r
            for r in await ledger.pairs(day_from=day, day_to=day)
            if r.event_key.endswith(event_id)
        ]
