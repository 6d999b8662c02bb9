"""The Article 16 and 23 figures: the daily report and one organisation's scorecard.

Counts are over (event, recipient) pairs whose event was formed on the day(s) asked for, judged by
``hub.timeliness`` at ``now``. The delivery lag of a pair is published → acknowledged.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from hub.cases.scores import CaseRow, case_rows
from hub.ledger import DeliveryRow, Ledger, PairFigures
from hub.registry import Registry
from hub.timeliness import Cause, Judgement, Verdict, judge, shanghai_day


@dataclass(frozen=True)
class Tally:
    """The figures of a group of (event, recipient) pairs."""

    events: int
    deliveries: int
    acknowledged: int
    on_time: int
    late: int
    pending: int
    dead_lettered: int
    late_publisher: int
    late_delivery: int
    lag_p50_s: float | None
    lag_p95_s: float | None
    lag_max_s: float | None

    @property
    def on_time_rate(self) -> float | None:
        """On-time pairs over all pairs (``None`` for an empty group)."""
        return self.on_time / self.deliveries if self.deliveries else None


@dataclass(frozen=True)
class Judged:
    """A pair whose event is known, with its verdict."""

    row: DeliveryRow
    formed_at: datetime
    published_at: datetime
    judgement: Judgement

    @property
    def lag_s(self) -> float | None:
        """Published → acknowledged, in seconds."""
        if self.row.acknowledged_at is None:
            return None
        return max((self.row.acknowledged_at - self.published_at).total_seconds(), 0.0)


def judged(rows: Iterable[DeliveryRow], now: datetime) -> list[Judged]:
    """Judge every pair whose event is known (receipt-only rows wait for their event)."""
    found = []
    for row in rows:
        if row.formed_at is None or row.published_at is None:
            continue
        verdict = judge(
            formed_at=row.formed_at,
            published_at=row.published_at,
            acknowledged_at=row.acknowledged_at,
            now=now,
        )
        found.append(Judged(row, row.formed_at, row.published_at, verdict))
    return found


def tally(figures: PairFigures | None) -> Tally:
    """The figures of a group as the ledger summed them (``None``: an empty group)."""
    if figures is None:
        return EMPTY
    return Tally(
        events=figures.events,
        deliveries=figures.deliveries,
        acknowledged=figures.acknowledged,
        on_time=figures.on_time,
        late=figures.late,
        pending=figures.pending,
        dead_lettered=figures.dead_lettered,
        late_publisher=figures.late_publisher,
        late_delivery=figures.late_delivery,
        lag_p50_s=_seconds(nearest_rank(figures.lags_us, 50)),
        lag_p95_s=_seconds(nearest_rank(figures.lags_us, 95)),
        lag_max_s=_seconds(figures.lags_us[-1] if figures.lags_us else None),
    )


EMPTY = Tally(0, 0, 0, 0, 0, 0, 0, 0, 0, None, None, None)


def _seconds(microseconds: float | None) -> float | None:
    """Whole microseconds as ``timedelta.total_seconds`` gives them."""
    return None if microseconds is None else microseconds / 1_000_000


def nearest_rank(ordered: Sequence[float], percent: float) -> float | None:
    """The nearest-rank percentile of ascending values."""
    if not ordered:
        return None
    return ordered[max(math.ceil(percent / 100 * len(ordered)), 1) - 1]


@dataclass(frozen=True)
class Line:
    """One row of a report: an organisation and a category (``None``: all categories)."""

    org: str
    org_name: str
    category: str | None
    tally: Tally


def lines(figures: Iterable[PairFigures], registry: Registry) -> list[Line]:
    """Per organisation and category, then the organisation's total, in registry order."""
    by_category: dict[str, dict[str, PairFigures]] = defaultdict(dict)
    totals: dict[str, PairFigures] = {}
    for f in figures:
        if f.org is None:
            continue
        if f.category is None:
            totals[f.org] = f
        else:
            by_category[f.org][f.category] = f
    order = {o.id: i for i, o in enumerate(registry.organisations)}
    found = []
    for org in sorted(by_category, key=lambda o: (order.get(o, len(order)), o)):
        name = registry.name(org)
        groups = by_category[org]
        found += [Line(org, name, category, tally(groups[category])) for category in sorted(groups)]
        if len(groups) > 1:
            found.append(Line(org, name, None, tally(totals[org])))
    return found


@dataclass(frozen=True)
class DailyReport:
    """Art. 16 for one Shanghai day: per recipient and per publisher, per category."""

    day: date
    generated_at: datetime
    county: str | None
    by_recipient: list[Line]
    by_publisher: list[Line]
    total: Tally


async def daily_report(
    ledger: Ledger, registry: Registry, day: date, *, now: datetime, county: str | None = None
) -> DailyReport:
    """The daily report of ``day`` as it stands at ``now``."""
    members = None if county is None else {o.id for o in registry.members(county)}
    today = shanghai_day(now)
    received, published = await asyncio.gather(
        ledger.figures(
            day_from=day,
            day_to=day,
            today=today,
            side="recipient",
            levels=("category", "org", "all"),
            members=members,
        ),
        ledger.figures(day_from=day, day_to=day, today=today, side="publisher", members=members),
    )
    everything = [f for f in received if f.org is None]
    return DailyReport(
        day=day,
        generated_at=now,
        county=county,
        by_recipient=lines(received, registry),
        by_publisher=lines(published, registry),
        total=tally(everything[0] if everything else None),
    )


@dataclass(frozen=True)
class Item:
    """A late or unacknowledged item on an organisation's scorecard."""

    event_key: str
    category: str
    role: str  # "publisher" or "recipient"
    counterpart: str
    formed_at: datetime
    published_at: datetime
    acknowledged_at: datetime | None
    verdict: Verdict
    cause: Cause | None
    state: str


@dataclass(frozen=True)
class OrgReport:
    """Art. 23: one organisation's information-sharing record over a period."""

    org: str
    org_name: str
    day_from: date
    day_to: date
    generated_at: datetime
    events_published: int
    published_same_day: int
    as_publisher: list[Line]
    as_recipient: list[Line]
    items: list[Item] = field(default_factory=list)
    cases: list[CaseRow] = field(default_factory=list)  # Art. 7, 18, 20: the case workflows

    @property
    def same_day_publication_rate(self) -> float | None:
        """Events published on the day they were formed, over all events published."""
        return self.published_same_day / self.events_published if self.events_published else None


async def org_report(
    ledger: Ledger, registry: Registry, org: str, day_from: date, day_to: date, *, now: datetime
) -> OrgReport:
    """The scorecard of ``org`` for events formed ``day_from``..``day_to``."""
    today = shanghai_day(now)
    # each read on a connection of its own, at once: the database works on both cores
    published, received, late_published, late_received, cases = await asyncio.gather(
        ledger.figures(
            day_from=day_from, day_to=day_to, today=today, side="publisher", publisher=org
        ),
        ledger.figures(
            day_from=day_from, day_to=day_to, today=today, side="recipient", recipient=org
        ),
        ledger.faults(day_from, day_to, org, "publisher", today),
        ledger.faults(day_from, day_to, org, "recipient", today),
        ledger.case_states(org=org),
    )
    total = next((f for f in published if f.category is None), None)
    return OrgReport(
        org=org,
        org_name=registry.name(org),
        day_from=day_from,
        day_to=day_to,
        generated_at=now,
        events_published=total.events if total else 0,
        published_same_day=total.same_day_events if total else 0,
        as_publisher=lines(published, registry),
        as_recipient=lines(received, registry),
        items=_items(judged(late_published, now), judged(late_received, now)),
        cases=case_rows(cases, org, day_from, day_to, now),
    )


def _items(published: Sequence[Judged], received: Sequence[Judged]) -> list[Item]:
    """Its own faults: events it published late (once each), pairs it left late or open."""
    found: dict[tuple[str, str], Item] = {}
    for p in published:
        if p.judgement.cause == "publisher":
            found.setdefault(("publisher", p.row.event_key), _item(p, "publisher", "*"))
    for p in received:
        if _recipients_fault(p):
            found[("recipient", p.row.event_key)] = _item(p, "recipient", p.row.publisher or "?")
    return sorted(found.values(), key=lambda i: (i.formed_at, i.event_key, i.role))


def _recipients_fault(p: Judged) -> bool:
    """Still open, dead-lettered, or acknowledged late although it was published in time."""
    if p.row.acknowledged_at is None:
        return True
    return p.judgement.verdict is Verdict.LATE and p.judgement.cause == "delivery"


def _item(p: Judged, role: str, counterpart: str) -> Item:
    r = p.row
    return Item(
        event_key=r.event_key,
        category=r.category or "?",
        role=role,
        counterpart=counterpart,
        formed_at=p.formed_at,
        published_at=p.published_at,
        acknowledged_at=r.acknowledged_at,
        verdict=p.judgement.verdict,
        cause=p.judgement.cause,
        state=r.state,
    )
