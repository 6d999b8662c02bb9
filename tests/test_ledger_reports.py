"""The reports the database sums equal the reports judged pair by pair, on SQLite and PostgreSQL.

The reference below is the row-by-row reckoning the reports used before the database summed them
(``hub.timeliness.judge`` on every pair read with ``Ledger.pairs``); a randomised ledger with every
kind of pair (late and open, dead letters, receipts before their event, a lag below zero, another
offset, a key stored twice) must give the same figures to the last microsecond.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone

from hub.ledger import DeliveryRow, EventRecord, Ledger, ReceiptRecord
from hub.registry import Registry
from hub.reports import (
    DailyReport,
    Item,
    Judged,
    Line,
    OrgReport,
    Tally,
    daily_report,
    judged,
    org_report,
)
from hub.timeliness import SHANGHAI, Verdict, shanghai_day
from schemas.envelope import CATEGORIES
from schemas.receipt import Receipt, ReceiptStatus
from tests.conftest import run_seed

ORGS = (
    "renqiu-scjg",
    "renqiu-zjj",
    "renqiu-chuan",
    "renqiu-qingta",
    "renqiu-beihan",
    "qingxian-scjg",
    "qingxian-jinniu",
)
DAYS = [date(2025, 9, 28) + timedelta(days=n) for n in range(4)]
NOW = datetime(2025, 9, 30, 15, 0, tzinfo=SHANGHAI)  # the third day is still open
OFFSETS = (SHANGHAI, UTC, timezone(timedelta(hours=-5)))


def reference_tally(pairs: Sequence[Judged]) -> Tally:
    lags = sorted(lag for p in pairs if (lag := p.lag_s) is not None)

    def rank(percent: float) -> float | None:
        return lags[max(math.ceil(percent / 100 * len(lags)), 1) - 1] if lags else None

    causes = [p.judgement.cause for p in pairs if p.judgement.counts_late]
    return Tally(
        events=len({p.row.event_key for p in pairs}),
        deliveries=len(pairs),
        acknowledged=sum(p.row.acknowledged_at is not None for p in pairs),
        on_time=sum(p.judgement.verdict is Verdict.ON_TIME for p in pairs),
        late=len(causes),
        pending=sum(
            p.row.acknowledged_at is None and p.row.state != "dead_lettered" for p in pairs
        ),
        dead_lettered=sum(p.row.state == "dead_lettered" for p in pairs),
        late_publisher=causes.count("publisher"),
        late_delivery=causes.count("delivery"),
        lag_p50_s=rank(50),
        lag_p95_s=rank(95),
        lag_max_s=lags[-1] if lags else None,
    )


def reference_lines(
    pairs: Sequence[Judged], org_of: Callable[[DeliveryRow], str], registry: Registry
) -> list[Line]:
    grouped: dict[str, dict[str, list[Judged]]] = defaultdict(lambda: defaultdict(list))
    for p in pairs:
        grouped[org_of(p.row)][p.row.category or "?"].append(p)
    order = {o.id: i for i, o in enumerate(registry.organisations)}
    found = []
    for org in sorted(grouped, key=lambda o: (order.get(o, len(order)), o)):
        by_category = grouped[org]
        for category in sorted(by_category):
            found.append(
                Line(org, registry.name(org), category, reference_tally(by_category[category]))
            )
        if len(by_category) > 1:
            everything = [p for group in by_category.values() for p in group]
            found.append(Line(org, registry.name(org), None, reference_tally(everything)))
    return found


async def reference_daily(
    ledger: Ledger, registry: Registry, day: date, county: str | None
) -> DailyReport:
    rows = await ledger.pairs(day_from=day, day_to=day)
    if county is not None:
        members = {o.id for o in registry.members(county)}
        rows = [r for r in rows if r.recipient in members or r.publisher in members]
    pairs = judged(rows, NOW)
    return DailyReport(
        day=day,
        generated_at=NOW,
        county=county,
        by_recipient=reference_lines(pairs, lambda r: r.recipient, registry),
        by_publisher=reference_lines(pairs, lambda r: r.publisher or "?", registry),
        total=reference_tally(pairs),
    )


def reference_item(p: Judged, role: str, counterpart: str) -> Item:
    return Item(
        event_key=p.row.event_key,
        category=p.row.category or "?",
        role=role,
        counterpart=counterpart,
        formed_at=p.formed_at,
        published_at=p.published_at,
        acknowledged_at=p.row.acknowledged_at,
        verdict=p.judgement.verdict,
        cause=p.judgement.cause,
        state=p.row.state,
    )


async def reference_org(ledger: Ledger, registry: Registry, org: str) -> OrgReport:
    published = judged(await ledger.pairs(day_from=DAYS[0], day_to=DAYS[-1], publisher=org), NOW)
    received = judged(await ledger.pairs(day_from=DAYS[0], day_to=DAYS[-1], recipient=org), NOW)
    events = {p.row.event_key: p for p in published}
    found: dict[tuple[str, str], Item] = {}
    for p in published:
        if p.judgement.cause == "publisher":
            found.setdefault(("publisher", p.row.event_key), reference_item(p, "publisher", "*"))
    for p in received:
        late_delivery = p.judgement.verdict is Verdict.LATE and p.judgement.cause == "delivery"
        if p.row.acknowledged_at is None or late_delivery:
            found[("recipient", p.row.event_key)] = reference_item(
                p, "recipient", p.row.publisher or "?"
            )
    return OrgReport(
        org=org,
        org_name=registry.name(org),
        day_from=DAYS[0],
        day_to=DAYS[-1],
        generated_at=NOW,
        events_published=len(events),
        published_same_day=sum(
            shanghai_day(p.published_at) == shanghai_day(p.formed_at) for p in events.values()
        ),
        as_publisher=reference_lines(published, lambda r: r.publisher or "?", registry),
        as_recipient=reference_lines(received, lambda r: r.recipient, registry),
        items=sorted(found.values(), key=lambda i: (i.formed_at, i.event_key, i.role)),
        cases=[],
    )


def moment(rng: random.Random, day: date) -> datetime:
    """A time on ``day`` (Shanghai), to the microsecond, written with one of several offsets."""
    start = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    at = start + timedelta(microseconds=rng.randrange(86_400 * 10**6))
    return at.astimezone(rng.choice(OFFSETS))


def traffic(rng: random.Random) -> list[tuple[list[EventRecord], list[ReceiptRecord]]]:
    """Batches of events and receipts covering every kind of pair."""
    batches = []
    seq = 0
    categories = [*CATEGORIES, "case_transfer"]  # a case step: left out of the reports
    for n in range(160):
        source = rng.choice(ORGS)
        recipients = tuple(rng.sample([o for o in ORGS if o != source], rng.randint(1, 4)))
        formed = moment(rng, rng.choice(DAYS))
        published = formed + timedelta(microseconds=rng.randrange(3 * 3600 * 10**6))
        if rng.random() < 0.15:  # published on a later day: the publisher's fault
            published += timedelta(days=1)
        seq += 1
        event = EventRecord(
            key=f"{source}/e{n}",
            source=source,
            event_id=f"e{n}",
            category=rng.choice(categories),
            type="other.v1",
            formed_at=formed,
            published_at=published,
            events_seq=seq,
            recipients=recipients,
            summary="测试",
        )
        receipts = []
        for recipient in recipients:
            kind = rng.random()
            if kind < 0.15:
                continue  # never acknowledged: open or overdue
            status: ReceiptStatus = (
                "dead_lettered" if kind < 0.2 else "failed" if kind < 0.25 else "acknowledged"
            )
            at = published + timedelta(microseconds=rng.randrange(-60 * 10**6, 30 * 3600 * 10**6))
            seq += 1
            receipts.append(receipt(event, recipient, status, at, seq))
        events = [event]
        if rng.random() < 0.05:  # stored again later, another category, one more recipient
            events.append(
                EventRecord(
                    **{
                        **event.__dict__,
                        "category": rng.choice(list(CATEGORIES)),
                        "recipients": (*recipients, source),
                    }
                )
            )
        if rng.random() < 0.2:  # the receipts first, the event in the next batch
            batches += [([], receipts), (events, [])]
        else:
            batches.append((events, receipts))
    return batches


def receipt(
    event: EventRecord, recipient: str, status: ReceiptStatus, at: datetime, seq: int
) -> ReceiptRecord:
    body = Receipt(
        event_source=event.source,
        event_id=event.event_id,
        recipient=recipient,
        status=status,
        delivery_seq=seq,
        deliveries=1,
        received_at=at,
        finished_at=at,
        reason=None if status == "acknowledged" else "RuntimeError: 数据库不可用",
        agent="tests",
    )
    return ReceiptRecord(body, at.astimezone(UTC), seq)


async def test_the_summed_reports_equal_the_reports_judged_pair_by_pair(
    ledger: Ledger, registry: Registry
) -> None:
    rng = random.Random(run_seed())
    for events, receipts in traffic(rng):
        for copy in events:  # a second copy of a key arrives in a batch of its own
            await ledger.apply([copy], [])
        await ledger.apply([], receipts)
    for day in DAYS:
        for county in (None, "renqiu"):
            summed = await daily_report(ledger, registry, day, now=NOW, county=county)
            assert summed == await reference_daily(ledger, registry, day, county)
    for org in ORGS:
        card = await org_report(ledger, registry, org, DAYS[0], DAYS[-1], now=NOW)
        assert card == await reference_org(ledger, registry, org)


async def test_a_report_of_a_day_without_pairs_is_empty(ledger: Ledger, registry: Registry) -> None:
    report = await daily_report(ledger, registry, DAYS[0], now=NOW)
    card = await org_report(ledger, registry, ORGS[0], DAYS[0], DAYS[-1], now=NOW)
    assert (report.by_recipient, report.by_publisher, report.total.deliveries) == ([], [], 0)
    assert (card.events_published, card.as_publisher, card.as_recipient, card.items) == (
        0,
        [],
        [],
        [],
    )
