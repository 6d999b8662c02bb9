"""The case workflows against a real nats-server: every step under its organisation's credentials.

The hub's clock is moved by the test (``Clock``); the days are chosen from the 2026 calendar:
2026-11-02 is a Monday in an ordinary week, so working day n after it is easy to check by eye.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub import case_samples as cs
from hub.config import HubSettings
from hub.ledger import Ledger
from hub.projection import rebuild
from hub.registry import Registry
from hub.service import Hub
from schemas.replies import Accepted
from subscribers.cases import AttachmentRefused, CaseClient
from subscribers.errors import EventRejected, HubUnavailable
from subscribers.publisher import Publisher
from tests.conftest import BACKENDS, Orgs, hub_running, open_ledger
from tests.helpers import Clock, eventually, receiving, run_hub, scrape, trust_of_hub

TOWNSHIP = "qingxian-liuhe"  # 流河镇人民政府
LAND = "qingxian-zrzy"  # 青县自然资源和规划局
MARKET = "qingxian-scjg"  # 青县市场监督管理局
ANOTHER_TOWNSHIP = "qingxian-xinxing"
GOVERNMENT = "qingxian-gov"
OFFICES = ("qingxian-bb", "qingxian-sfj")  # 编办, 司法局
MONDAY = date(2026, 11, 2)


@pytest.fixture
async def clock() -> Clock:
    return Clock(MONDAY)


@pytest.fixture
async def case_hub(settings: HubSettings, registry: Registry, clock: Clock) -> AsyncIterator[Hub]:
    async with hub_running(settings, registry, clock=clock) as running:
        yield running


async def send(
    orgs: Orgs, org: str, step_type: str, data: dict[str, Any], clock: Clock, **options: Any
) -> Accepted:
    publisher = await orgs.publisher(org)
    return await publisher.publish(cs.step(org, step_type, data, clock(), **options))


async def refused(
    orgs: Orgs, org: str, step_type: str, data: dict[str, Any], clock: Clock
) -> list[str]:
    with pytest.raises(EventRejected) as caught:
        await send(orgs, org, step_type, data, clock)
    for error in caught.value.errors:
        assert error.message_zh and error.message_en, error
    return [error.rule for error in caught.value.errors]


async def materials(orgs: Orgs, settings: HubSettings, org: str, case_no: str) -> list[Any]:
    desk = CaseClient(await orgs.nc(org), org, wire=settings.wire)
    return [
        await desk.upload(cs.pdf(f"{case_no} {title}"), name, kind)
        for kind, name, title in cs.TRANSFER_MATERIALS
    ]


async def case_of(ledger: Ledger, key: str, wanted: str) -> dict[str, Any]:
    """The case once the ledger shows it with status ``wanted``."""

    async def reached() -> bool:
        found = await ledger.case_state(key)
        return found is not None and found.status.value == wanted

    await eventually(reached, within=10)
    state = await ledger.case_state(key)
    assert state is not None
    return state.model_dump(mode="json")


async def test_a_late_extension_one_beyond_five_days_and_a_second_transfer_are_refused(
    case_hub: Hub, orgs: Orgs, settings: HubSettings, clock: Clock
) -> None:
    # discovered Monday 11-02: transfer by Thursday 11-05, at most 5 working days: Monday 11-09
    notice = cs.extension("LH-2026-031", LAND, MONDAY, date(2026, 11, 9))
    clock.set(date(2026, 11, 6))  # Friday: the 3 days are over
    assert await refused(orgs, TOWNSHIP, "case_transfer_extension.v1", notice, clock) == [
        "extension_too_late"
    ]
    clock.set(date(2026, 11, 5), 17)  # Thursday afternoon, still in time
    too_long = cs.extension("LH-2026-031", LAND, MONDAY, date(2026, 11, 10))
    assert await refused(orgs, TOWNSHIP, "case_transfer_extension.v1", too_long, clock) == [
        "extension_beyond_limit"
    ]
    await send(orgs, TOWNSHIP, "case_transfer_extension.v1", notice, clock)

    clock.set(date(2026, 11, 9), 15)  # the extended last day
    letter = cs.transfer(
        "LH-2026-031", LAND, MONDAY, await materials(orgs, settings, TOWNSHIP, "31")
    )
    accepted = await send(orgs, TOWNSHIP, "case_transfer.v1", letter, clock)
    assert accepted.recipients == (LAND,)
    assert await refused(orgs, TOWNSHIP, "case_transfer.v1", letter, clock) == ["case_exists"]

    key = f"{TOWNSHIP}/LH-2026-031"
    await send(orgs, LAND, "case_transfer_reply.v1", cs.reply(key, accepted=True), clock)
    case = await case_of(case_hub.ledger, key, "accepted")
    assert case["deadlines"]["transfer"]["due_day"] == "2026-11-09"
    assert case["deadlines"]["reply"]["due_day"] == "2026-11-16"  # 5 working days from 11-09
    assert case["deadlines"]["reply"]["met_at"] is not None

    # the receiver may not pass the case on with its material (Art. 7: no second transfer)
    onward = cs.transfer("ZR-2026-007", ANOTHER_TOWNSHIP, date(2026, 11, 9), letter["attachments"])
    assert set(await refused(orgs, LAND, "case_transfer.v1", onward, clock)) == {
        "no_second_transfer"
    }


async def test_not_ours_goes_to_the_county_government_and_a_dispute_to_the_two_offices(
    case_hub: Hub, orgs: Orgs, settings: HubSettings, clock: Clock, tmp_path: Path
) -> None:
    key = f"{TOWNSHIP}/LH-2026-040"
    reply = cs.reply(key, accepted=False)
    assert await refused(orgs, LAND, "case_transfer_reply.v1", reply, clock) == ["case_unknown"]

    letter = cs.transfer(
        "LH-2026-040", LAND, MONDAY, await materials(orgs, settings, TOWNSHIP, "40")
    )
    await send(orgs, TOWNSHIP, "case_transfer.v1", letter, clock)
    # only the receiver answers; the transferring township cannot answer its own letter
    assert await refused(orgs, MARKET, "case_transfer_reply.v1", reply, clock) == ["not_case_party"]
    async with receiving(settings, [GOVERNMENT, *OFFICES]) as inboxes:
        clock.set(date(2026, 11, 4))
        answered = await send(orgs, LAND, "case_transfer_reply.v1", reply, clock)
        assert set(answered.recipients) == {TOWNSHIP, GOVERNMENT}
        await eventually(lambda: len(inboxes[GOVERNMENT].events) == 1, within=10)
        assert inboxes[GOVERNMENT].events[0][0].type == "case_transfer_reply.v1"
        case = await case_of(case_hub.ledger, key, "escalated")
        assert case["escalated_to"] == [GOVERNMENT]

        disputed = await send(orgs, LAND, "jurisdiction_dispute.v1", cs.dispute(key), clock)
        assert set(disputed.recipients) == {*OFFICES, TOWNSHIP}
        await eventually(lambda: all(len(inboxes[o].events) == 1 for o in OFFICES), within=10)
        assert {inboxes[o].events[0][0].type for o in OFFICES} == {"jurisdiction_dispute.v1"}
        # the county government no longer decides a disputed case; an office does
        late = cs.decision(key, MARKET)
        assert await refused(orgs, GOVERNMENT, "case_decision.v1", late, clock) == ["case_state"]
        settled = await send(
            orgs, OFFICES[0], "dispute_decision.v1", cs.dispute_decision(key, MARKET), clock
        )
        assert set(settled.recipients) == {TOWNSHIP, LAND, OFFICES[1], MARKET}
    case = await case_of(case_hub.ledger, key, "settled")
    assert case["assigned_to"] == MARKET
    # the cases are rebuilt from the events stream alone, on either database
    for backend in BACKENDS:
        async with open_ledger(backend, tmp_path, f"rebuilt-{backend}") as rebuilt:
            await rebuild(case_hub.js, settings.wire, rebuilt, trust_of_hub(case_hub))
            assert await rebuilt.case_states() == await case_hub.ledger.case_states()
    # the department given the case may read its material
    market = CaseClient(await orgs.nc(MARKET), MARKET, wire=settings.wire)
    assert (await market.fetch(letter["attachments"][0]["sha256"])).startswith(b"%PDF")


async def test_the_assistance_clock_pauses_while_material_is_awaited(
    case_hub: Hub, orgs: Orgs, settings: HubSettings, clock: Clock
) -> None:
    """Received Monday 11-02; material asked on working day 1 (11-03), sent on working day 5
    (11-09): 4 working days do not count, so the 7-day answer is due on working day 11 (11-17)."""
    township = CaseClient(await orgs.nc(TOWNSHIP), TOWNSHIP, wire=settings.wire)
    letter = await township.upload(cs.pdf("assistance letter"), "协助函.pdf", "assistance_letter")
    sample = await township.upload(cs.pdf("sampling record"), "抽样单.pdf", "supplement")
    for case_no in ("XZ-1", "XZ-2"):
        await send(
            orgs, TOWNSHIP, "assistance_request.v1", cs.assistance(case_no, MARKET, [letter]), clock
        )

    clock.set(date(2026, 11, 3))
    for case_no in ("XZ-1", "XZ-2"):
        await send(
            orgs,
            MARKET,
            "assistance_supplement_request.v1",
            cs.supplement_request(f"{TOWNSHIP}/{case_no}"),
            clock,
        )
    clock.set(date(2026, 11, 9))
    for case_no in ("XZ-1", "XZ-2"):
        await send(
            orgs,
            TOWNSHIP,
            "assistance_supplement.v1",
            cs.supplement(f"{TOWNSHIP}/{case_no}", [sample]),
            clock,
        )

    clock.set(date(2026, 11, 17), 16)  # working day 11: on time
    await send(orgs, MARKET, "assistance_reply.v1", cs.assistance_reply(f"{TOWNSHIP}/XZ-1"), clock)
    clock.set(date(2026, 11, 18), 9)  # working day 12: late
    await send(orgs, MARKET, "assistance_reply.v1", cs.assistance_reply(f"{TOWNSHIP}/XZ-2"), clock)

    on_time = await case_of(case_hub.ledger, f"{TOWNSHIP}/XZ-1", "answered")
    late = await case_of(case_hub.ledger, f"{TOWNSHIP}/XZ-2", "answered")
    for case in (on_time, late):
        assert case["paused_workdays"] == 4
        assert case["deadlines"]["answer"]["due_day"] == "2026-11-17"
    due = datetime.fromisoformat(on_time["deadlines"]["answer"]["due_at"])
    assert datetime.fromisoformat(on_time["deadlines"]["answer"]["met_at"]) < due
    assert datetime.fromisoformat(late["deadlines"]["answer"]["met_at"]) >= due
    # asking for material after 2 working days is refused
    await send(
        orgs, TOWNSHIP, "assistance_request.v1", cs.assistance("XZ-3", MARKET, [letter]), clock
    )
    clock.set(date(2026, 11, 23))  # working day 3 after 11-18
    ask = cs.supplement_request(f"{TOWNSHIP}/XZ-3")
    assert await refused(orgs, MARKET, "assistance_supplement_request.v1", ask, clock) == [
        "supplement_too_late"
    ]


async def test_of_two_answers_sent_at_once_exactly_one_is_accepted(
    case_hub: Hub, orgs: Orgs, settings: HubSettings, clock: Clock
) -> None:
    letter = cs.transfer(
        "LH-2026-050", LAND, MONDAY, await materials(orgs, settings, TOWNSHIP, "50")
    )
    await send(orgs, TOWNSHIP, "case_transfer.v1", letter, clock)
    key = f"{TOWNSHIP}/LH-2026-050"
    answers = [cs.reply(key, accepted=n % 2 == 0) for n in range(8)]
    publishers = [await orgs.publisher(LAND) for _ in answers]
    outcomes = await asyncio.gather(
        *(
            p.publish(cs.step(LAND, "case_transfer_reply.v1", a, clock(), event_id=f"answer-{n}"))
            for n, (p, a) in enumerate(zip(publishers, answers, strict=True))
        ),
        return_exceptions=True,
    )
    accepted = [o for o in outcomes if isinstance(o, Accepted)]
    refusals = [o for o in outcomes if isinstance(o, EventRejected)]
    assert len(accepted) == 1 and len(refusals) == len(answers) - 1, outcomes
    assert all([e.rule for e in r.errors] == ["case_state"] for r in refusals)
    winner = answers[int(accepted[0].id.removeprefix("answer-"))]
    case = await case_of(
        case_hub.ledger, key, "accepted" if winner["decision"] == "accepted" else "escalated"
    )
    assert [s["type"] for s in case["steps"]] == ["case_transfer.v1", "case_transfer_reply.v1"]


async def test_a_hazard_notice_without_officers_sent_in_time_is_raised_to_both_parties(
    settings: HubSettings, registry: Registry, orgs: Orgs
) -> None:
    clock = Clock(MONDAY, 9)
    quick = settings.model_copy(update={"hazard_response_hours": 2.0, "case_watch_s": 0.1})
    async with hub_running(quick, registry, clock=clock) as hub:
        notice = cs.hazard_notice("AQ-2026-003", MARKET, clock() - timedelta(minutes=20))
        async with receiving(quick, [TOWNSHIP, MARKET]) as inboxes:
            await send(orgs, TOWNSHIP, "hazard_notice.v1", notice, clock)
            key = f"{TOWNSHIP}/AQ-2026-003"
            await case_of(hub.ledger, key, "awaiting_officers")
            clock.at += timedelta(hours=2, minutes=1)

            def raised(org: str) -> bool:
                return any(e.type == "case_overdue.v1" for e, _ in inboxes[org].events)

            await eventually(lambda: raised(TOWNSHIP) and raised(MARKET), within=15)
        overdue = next(e for e, _ in inboxes[TOWNSHIP].events if e.type == "case_overdue.v1")
        assert overdue.source == "zhifa-hub"
        assert overdue.data.owed_by == MARKET

        ops = (await scrape(hub, "/api/ops")).json()
        [item] = ops["overdue_cases"]
        assert (item["case"], item["party_name"], item["noticed"]) == (
            key,
            "青县市场监督管理局",
            True,
        )
        assert item["kind_zh"] == "隐患通知" and item["step_zh"] == "派执法人员处理"
        metrics = (await scrape(hub)).text
        assert 'hub_cases_overdue{kind="hazard"} 1.0' in metrics

        # officers sent late: the case moves on, nothing is overdue any more, the lateness stays
        response = cs.hazard_response(key, officers=["王建国", "李明"])
        await send(orgs, MARKET, "hazard_response.v1", response, clock)
        case = await case_of(hub.ledger, key, "officers_sent")
        assert case["deadlines"]["officers"]["noticed_overdue"] is True
        assert (await scrape(hub, "/api/ops")).json()["overdue_cases"] == []
        assert 'hub_cases_overdue{kind="hazard"} 0.0' in (await scrape(hub)).text


async def test_attachments_are_type_checked_size_limited_and_only_for_the_cases_parties(
    case_hub: Hub, orgs: Orgs, settings: HubSettings, clock: Clock
) -> None:
    township = CaseClient(await orgs.nc(TOWNSHIP), TOWNSHIP, wire=settings.wire)
    with pytest.raises(AttachmentRefused, match="PDF"):
        await township.upload(b"MZ\x90\x00 not a document", "移交函.exe", "transfer_letter")
    with pytest.raises(AttachmentRefused, match="超过上限"):
        big = cs.pdf("big") + b"\0" * settings.attachment_max_bytes
        await township.upload(big, "大文件.pdf", "evidence")

    files = await materials(orgs, settings, TOWNSHIP, "60")
    stranger = CaseClient(await orgs.nc(MARKET), MARKET, wire=settings.wire)
    with pytest.raises(AttachmentRefused):
        await stranger.fetch(files[0]["sha256"])  # not a party of any case using it (yet)
    # another organisation cannot put the township's files into its own letter
    borrowed = cs.transfer("SC-2026-001", ANOTHER_TOWNSHIP, MONDAY, files)
    assert set(await refused(orgs, MARKET, "case_transfer.v1", borrowed, clock)) == {
        "attachment_not_yours"
    }
    await send(
        orgs, TOWNSHIP, "case_transfer.v1", cs.transfer("LH-2026-060", LAND, MONDAY, files), clock
    )
    land = CaseClient(await orgs.nc(LAND), LAND, wire=settings.wire)
    assert await land.fetch(files[1]["sha256"]) == cs.pdf("60 inspection record")
    with pytest.raises(AttachmentRefused):
        await stranger.fetch(files[1]["sha256"])

    # the receiver lists its open cases with their deadlines, in Chinese (from the ledger, which
    # follows the events stream: a moment behind)
    async def listed_once() -> bool:
        return len(await land.cases(open_only=True)) == 1

    await eventually(listed_once)
    [listed] = await land.cases(open_only=True)
    assert (
        listed["case"] == f"{TOWNSHIP}/LH-2026-060" and listed["status_zh"] == "待书面告知受理情况"
    )
    [reply] = [d for d in listed["deadlines"] if d["name"] == "reply"]
    assert (reply["party_name"], reply["due_day"]) == ("青县自然资源和规划局", "2026-11-09")


async def test_cases_and_the_scorecard_from_the_command_line(
    case_hub: Hub, orgs: Orgs, settings: HubSettings, clock: Clock
) -> None:
    files = await materials(orgs, settings, TOWNSHIP, "70")
    await send(orgs, TOWNSHIP, "case_transfer.v1", cs.transfer("LH-70", LAND, MONDAY, files), clock)
    await send(
        orgs, TOWNSHIP, "assistance_request.v1", cs.assistance("XZ-70", MARKET, files), clock
    )
    clock.set(date(2026, 11, 4))
    escalated = f"{TOWNSHIP}/LH-70"
    await send(orgs, LAND, "case_transfer_reply.v1", cs.reply(escalated, accepted=False), clock)
    await case_of(case_hub.ledger, escalated, "escalated")
    await case_of(case_hub.ledger, f"{TOWNSHIP}/XZ-70", "awaiting_answer")

    # the answer was due 2026-11-11: overdue whenever this runs
    code, out, err = await run_hub(settings, "cases", "list", "--org", MARKET, "--overdue")
    assert code == 0, err
    assert f"{TOWNSHIP}/XZ-70" in out and "已逾期" in out and "LH-70" not in out
    code, out, err = await run_hub(settings, "cases", "show", escalated)
    assert code == 0, err
    assert "不属管辖，报县人民政府决定" in out and "报送：青县人民政府" in out
    code, _, err = await run_hub(settings, "cases", "show", f"{TOWNSHIP}/NO-SUCH-CASE")
    assert code == 2 and "没有案件" in err

    period = ("--from", "2026-11-01", "--to", "2026-11-30", "--at", "2026-11-20T12:00:00+08:00")
    code, out, err = await run_hub(
        settings, "report", "org", LAND, *period, "--cases", "--format", "csv"
    )
    assert code == 0, err
    rows = [r for r in csv.reader(io.StringIO(out.removeprefix("\ufeff"))) if r]
    assert rows[0][:3] == ["角色", "案件类型", "案件数"]
    assert rows[1:] == [["接收", "移交", "1", "1", "0", "0", "0", "1", "1"]]
    code, out, err = await run_hub(settings, "report", "org", MARKET, *period, "--format", "json")
    assert code == 0, err
    [row] = json.loads(out)["cases"]
    assert (row["role"], row["kind"], row["overdue"], row["on_time"]) == (
        "receiver",
        "assistance",
        1,
        0,
    )


async def test_a_step_in_a_year_the_calendar_does_not_know_waits_for_the_override_file(
    settings: HubSettings, registry: Registry, orgs: Orgs, tmp_path: Path
) -> None:
    clock = Clock(date(2027, 1, 4))  # a Monday of a year chinese-calendar 1.11 does not know
    letter = cs.assistance("XZ-2027-1", MARKET, [])
    async with hub_running(settings, registry, clock=clock):
        desk = CaseClient(await orgs.nc(TOWNSHIP), TOWNSHIP, wire=settings.wire)
        letter["attachments"] = [
            await desk.upload(cs.pdf("2027"), "协助函.pdf", "assistance_letter")
        ]
        publisher = Publisher(await orgs.nc(TOWNSHIP), TOWNSHIP, wire=settings.wire, retries=0)
        with pytest.raises(HubUnavailable, match="HUB_WORKDAY_OVERRIDES"):
            await publisher.publish(cs.step(TOWNSHIP, "assistance_request.v1", letter, clock()))
    overrides = tmp_path / "workdays.toml"
    overrides.write_text(
        '[years.2027]\nsource = "本县据国务院办公厅通知录入"\nholidays = ["2027-01-01"]\n',
        encoding="utf-8",
    )
    known = settings.model_copy(update={"workday_overrides": overrides})
    async with hub_running(known, registry, clock=clock) as hub:
        desk = CaseClient(await orgs.nc(TOWNSHIP), TOWNSHIP, wire=settings.wire)
        letter["attachments"] = [
            await desk.upload(cs.pdf("2027"), "协助函.pdf", "assistance_letter")
        ]
        await send(orgs, TOWNSHIP, "assistance_request.v1", letter, clock)
        case = await case_of(hub.ledger, f"{TOWNSHIP}/XZ-2027-1", "awaiting_answer")
        assert case["deadlines"]["answer"]["due_day"] == "2027-01-13"  # 7 working days


async def test_case_steps_in_one_batch_are_judged_in_the_order_sent(
    case_hub: Hub, orgs: Orgs, settings: HubSettings, clock: Clock
) -> None:
    """A township uploads its day at once: the extension, then the transfer, then a repeat."""
    clock.set(date(2026, 11, 5), 10)
    notice = cs.extension("LH-2026-077", LAND, MONDAY, date(2026, 11, 9))
    letter = cs.transfer(
        "LH-2026-077", LAND, MONDAY, await materials(orgs, settings, TOWNSHIP, "77")
    )
    sent = [
        cs.step(TOWNSHIP, "case_transfer_extension.v1", notice, clock()),
        cs.step(TOWNSHIP, "case_transfer.v1", letter, clock()),
        cs.step(TOWNSHIP, "case_transfer.v1", letter, clock()),  # a second transfer of the case
    ]
    publisher = await orgs.publisher(TOWNSHIP)
    first, second, third = await publisher.publish_many(sent)
    assert isinstance(first, Accepted) and isinstance(second, Accepted), (first, second)
    assert first.seq < second.seq
    assert not isinstance(third, Accepted) and [e.rule for e in third.errors] == ["case_exists"]
    case = await case_of(case_hub.ledger, f"{TOWNSHIP}/LH-2026-077", "awaiting_reply")
    assert case["deadlines"]["transfer"]["due_day"] == "2026-11-09"  # the extended day
