"""The ledger and the same-day rule with injected times, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from typing import get_args

import pytest
from sqlalchemy import Dialect
from sqlalchemy.engine import make_url

from hub.ledger import Backlog, Ledger, ReceiptRecord
from hub.ledger.database import engine_url
from hub.ledger.upserts import Bound, receipt_row
from hub.registry import Registry
from hub.reports import daily_report, org_report
from hub.timeliness import Verdict, judge
from schemas.receipt import ReceiptStatus
from tests.conftest import POSTGRES_URL
from tests.helpers import PUBLISHER, RECIPIENT, at, event, receipt


async def only_pair(ledger: Ledger, day: str) -> Verdict:
    (row,) = await ledger.pairs(day_from=date.fromisoformat(day), day_to=date.fromisoformat(day))
    assert row.formed_at and row.published_at
    return judge(
        formed_at=row.formed_at,
        published_at=row.published_at,
        acknowledged_at=row.acknowledged_at,
        now=at("2030-01-01T00:00:00+08:00"),
    ).verdict


async def test_formed_before_midnight_acknowledged_after_it_is_late(ledger: Ledger) -> None:
    await ledger.apply(
        [event("2025-09-30T23:59:30+08:00", "2025-09-30T23:59:31+08:00")],
        [receipt("2025-10-01T00:00:10+08:00")],
    )
    assert await only_pair(ledger, "2025-09-30") is Verdict.LATE


async def test_formed_after_midnight_acknowledged_before_the_next_is_on_time(
    ledger: Ledger,
) -> None:
    await ledger.apply(
        [event("2025-09-30T00:00:05+08:00", "2025-09-30T00:00:06+08:00")],
        [receipt("2025-09-30T23:59:59+08:00")],
    )
    assert await only_pair(ledger, "2025-09-30") is Verdict.ON_TIME


async def test_a_time_with_another_offset_is_judged_by_its_shanghai_day(ledger: Ledger) -> None:
    # 16:30 UTC on 30 September is 00:30 on 1 October in Shanghai
    await ledger.apply(
        [event("2025-09-30T16:30:00+00:00", "2025-09-30T16:30:01+00:00")],
        [receipt("2025-10-01T12:00:00+00:00")],  # 20:00 in Shanghai, same day
    )
    assert await ledger.pairs(day_from=date(2025, 9, 30), day_to=date(2025, 9, 30)) == []
    assert await only_pair(ledger, "2025-10-01") is Verdict.ON_TIME


async def test_the_same_utc_day_can_be_late_in_shanghai(ledger: Ledger) -> None:
    await ledger.apply(
        [event("2025-09-30T15:59:00+00:00", "2025-09-30T15:59:01+00:00")],  # 23:59 Shanghai
        [receipt("2025-09-30T16:01:00+00:00")],  # 00:01 the next Shanghai day
    )
    assert await only_pair(ledger, "2025-09-30") is Verdict.LATE


async def test_publishing_a_day_after_forming_is_the_publishers_fault(
    ledger: Ledger, registry: Registry
) -> None:
    await ledger.apply(
        [event("2025-09-30T10:00:00+08:00", "2025-10-01T09:00:00+08:00")],
        [receipt("2025-10-01T09:00:02+08:00")],
    )
    now = at("2025-10-02T00:00:00+08:00")
    report = await daily_report(ledger, registry, date(2025, 9, 30), now=now)
    assert (report.total.late, report.total.late_publisher, report.total.late_delivery) == (1, 1, 0)
    assert report.total.lag_max_s == 2.0  # the delivery itself took two seconds

    publisher = await org_report(
        ledger, registry, PUBLISHER, date(2025, 9, 30), date(2025, 9, 30), now=now
    )
    assert (publisher.events_published, publisher.published_same_day) == (1, 0)
    assert [(i.role, i.cause) for i in publisher.items] == [("publisher", "publisher")]
    recipient = await org_report(
        ledger, registry, RECIPIENT, date(2025, 9, 30), date(2025, 9, 30), now=now
    )
    assert recipient.items == []  # acknowledged two seconds after publication: not its fault


async def test_an_open_pair_counts_late_only_once_its_day_is_over(
    ledger: Ledger, registry: Registry
) -> None:
    await ledger.apply([event("2025-09-30T09:00:00+08:00", "2025-09-30T09:00:01+08:00")], [])
    evening = await daily_report(
        ledger, registry, date(2025, 9, 30), now=at("2025-09-30T23:00:00+08:00")
    )
    assert (evening.total.pending, evening.total.late) == (1, 0)
    morning = await daily_report(
        ledger, registry, date(2025, 9, 30), now=at("2025-10-01T00:00:01+08:00")
    )
    assert (morning.total.pending, morning.total.late, morning.total.late_delivery) == (1, 1, 1)
    card = await org_report(
        ledger, registry, RECIPIENT, date(2025, 9, 30), date(2025, 9, 30), now=morning.generated_at
    )
    assert [(i.role, i.verdict) for i in card.items] == [("recipient", Verdict.OVERDUE)]


async def test_duplicate_receipts_and_redeliveries_are_counted_once(
    ledger: Ledger, registry: Registry
) -> None:
    await ledger.apply([event("2025-09-30T09:00:00+08:00", "2025-09-30T09:00:01+08:00")], [])
    await ledger.apply(
        [],
        [
            receipt("2025-09-30T09:00:02+08:00", status="failed", attempt=1, seq=1),
            receipt("2025-09-30T09:01:00+08:00", attempt=2, seq=2),
            receipt("2025-09-30T09:02:00+08:00", attempt=2, seq=3),  # the same receipt again
        ],
    )
    await ledger.apply([], [receipt("2025-10-01T10:00:00+08:00", attempt=3, seq=4)])  # and again
    (row,) = await ledger.pairs(day_from=date(2025, 9, 30), day_to=date(2025, 9, 30))
    assert (row.state, row.attempts, row.redeliveries, row.receipt_seq) == ("acknowledged", 2, 1, 2)
    assert row.acknowledged_at == at("2025-09-30T09:01:00+08:00")
    assert row.delivered_at == at("2025-09-30T09:00:02+08:00")
    report = await daily_report(
        ledger, registry, date(2025, 9, 30), now=at("2025-10-02T00:00:00+08:00")
    )
    assert (report.total.deliveries, report.total.acknowledged, report.total.on_time) == (1, 1, 1)


async def test_the_same_event_stored_twice_keeps_the_first(ledger: Ledger) -> None:
    first = event("2025-09-30T09:00:00+08:00", "2025-09-30T09:00:01+08:00", seq=1)
    again = event("2025-09-30T09:00:00+08:00", "2025-10-03T09:00:01+08:00", seq=9)
    await ledger.apply([first, again], [])
    await ledger.apply([again], [])
    (row,) = await ledger.pairs(day_from=date(2025, 9, 30), day_to=date(2025, 9, 30))
    assert row.published_at == first.published_at


async def test_a_dead_letter_is_its_own_state_and_counts_late(
    ledger: Ledger, registry: Registry
) -> None:
    await ledger.apply(
        [event("2025-09-30T09:00:00+08:00", "2025-09-30T09:00:01+08:00")],
        [
            receipt("2025-09-30T09:00:02+08:00", status="failed", attempt=1, seq=1),
            receipt("2025-09-30T09:00:05+08:00", status="dead_lettered", attempt=2, seq=2),
        ],
    )
    (row,) = await ledger.pairs(day_from=date(2025, 9, 30), day_to=date(2025, 9, 30))
    assert (row.state, row.reason) == ("dead_lettered", "RuntimeError: 数据库不可用")
    report = await daily_report(
        ledger, registry, date(2025, 9, 30), now=at("2025-10-01T08:00:00+08:00")
    )
    assert (report.total.dead_lettered, report.total.pending, report.total.late) == (1, 0, 1)


async def test_receipts_before_their_event_give_the_same_rows(
    ledger: Ledger, tmp_path: object
) -> None:
    records = [
        receipt("2025-09-30T09:05:00+08:00", recipient=r, seq=i)
        for i, r in enumerate(["renqiu-chuan", "renqiu-qingta"], 1)
    ]
    known = event(
        "2025-09-30T09:00:00+08:00",
        "2025-09-30T09:00:01+08:00",
        recipients=("renqiu-chuan", "renqiu-qingta", "renqiu-beihan"),
    )
    await ledger.apply([], records)
    halfway = await ledger.pairs(day_from=date(2025, 9, 30), day_to=date(2025, 9, 30))
    assert halfway == []  # receipts wait for their event
    await ledger.apply([known], [])
    receipts_first = await ledger.dump()
    await ledger.wipe()
    await ledger.apply([known], records)
    assert await ledger.dump() == receipts_first
    assert (await ledger.counts()) == {"acknowledged": 2, "pending": 1}


DRIVERS = [engine_url("sqlite:///ledger.sqlite3"), engine_url(POSTGRES_URL)]  # as the hub's


@pytest.mark.parametrize("dialect", [make_url(url).get_dialect()() for url in DRIVERS])
@pytest.mark.parametrize("status", get_args(ReceiptStatus))
def test_a_messages_receipts_get_the_parameters_each_row_would_give(
    dialect: Dialect, status: ReceiptStatus
) -> None:
    """Two stored messages of receipts, each receipt its own pair, arrival time and attempt."""
    records = []
    for seq, stored in ((5, "2025-09-30T10:00:02+08:00"), (6, "2025-09-30T10:00:03+08:00")):
        for n in range(3):
            one = receipt(stored, status=status, key=f"{PUBLISHER}/e{n}", attempt=n + 1, seq=seq)
            body = one.receipt.model_copy(
                update={
                    "received_at": one.at - timedelta(milliseconds=n),
                    "reason": None if status == "acknowledged" else f"第 {n} 次失败",
                }
            )
            records.append(ReceiptRecord(body, one.at, seq))
    upsert = Bound.compile(dialect, status)
    expected = list(upsert.params(receipt_row(r) for r in records))
    assert list(upsert.receipt_params(records)) == expected
    assert len(set(expected)) == len(records)  # every row differs: the test sees each one


async def test_the_backlog_counts_what_each_recipient_owes_as_its_pairs_say(
    ledger: Ledger,
) -> None:
    """Acknowledged, waiting (never delivered, or failed), dead-lettered; and a receipt whose
    event is not known yet, which counts nowhere."""
    recipients = ("renqiu-chuan", "renqiu-qingta", "renqiu-beihan")
    events = [
        event(
            f"2025-09-30T0{n}:00:00+08:00",
            f"2025-09-30T0{n}:00:01+08:00",
            key=f"{PUBLISHER}/e{n}",
            recipients=recipients,
            seq=n,
        )
        for n in range(1, 5)
    ]
    receipts = [
        receipt("2025-09-30T09:00:00+08:00", key=f"{PUBLISHER}/e1", recipient="renqiu-chuan"),
        receipt("2025-09-30T09:30:00+08:00", key=f"{PUBLISHER}/e3", recipient="renqiu-chuan"),
        receipt("2025-09-30T09:10:00+08:00", key=f"{PUBLISHER}/e1", recipient="renqiu-qingta"),
        receipt(
            "2025-09-30T09:20:00+08:00",
            key=f"{PUBLISHER}/e2",
            recipient="renqiu-qingta",
            status="failed",
        ),
        receipt(
            "2025-09-30T09:40:00+08:00",
            key=f"{PUBLISHER}/e4",
            recipient="renqiu-beihan",
            status="dead_lettered",
        ),
        receipt("2025-09-30T09:50:00+08:00", key=f"{PUBLISHER}/unknown", recipient="renqiu-yucun"),
    ]
    await ledger.apply(events, receipts)
    rows = await ledger.pairs(day_from=date(2025, 9, 30), day_to=date(2025, 9, 30))
    expected = {}
    for org in recipients:
        own = [r for r in rows if r.recipient == org]
        waiting = [r.published_at for r in own if r.is_waiting and r.published_at]
        acknowledged = [r.acknowledged_at for r in own if r.acknowledged_at]
        expected[org] = Backlog(
            waiting=len(waiting),
            oldest=min(waiting, default=None),
            last_receipt=max(acknowledged, default=None),
            dead_lettered=sum(r.state == "dead_lettered" for r in own),
        )
    assert await ledger.backlog() == await ledger.backlog(category="permit") == expected
    assert expected["renqiu-chuan"] == Backlog(
        2, at("2025-09-30T02:00:01+08:00"), at("2025-09-30T09:30:00+08:00"), 0
    )
    assert (expected["renqiu-qingta"].waiting, expected["renqiu-beihan"].dead_lettered) == (3, 1)
    assert await ledger.backlog(category="law_change") == {}


async def test_the_first_acknowledgement_stored_counts_in_whatever_order_it_is_applied(
    ledger: Ledger,
) -> None:
    """After a broker restart a redelivered receipts batch can come after a newer one."""
    known = event("2025-09-30T10:00:00+08:00", "2025-09-30T10:00:01+08:00")
    first = receipt("2025-09-30T10:00:05+08:00", seq=5)
    again = receipt("2025-09-30T10:00:09+08:00", attempt=2, seq=7)
    await ledger.apply([known], [again])
    await ledger.apply([], [first])
    (row,) = await ledger.pairs(day_from=date(2025, 9, 30), day_to=date(2025, 9, 30))
    assert (row.receipt_seq, row.attempts, row.acknowledged_at) == (5, 1, first.at)
    assert row.lag_us == 4_000_000
