"""The Article 16 and 23 figures: the daily report and one organisation's scorecard.

Counts are over (event, recipient) pairs whose event was formed on the day(s) asked for, judged by
``hub.timeliness`` at ``now``. The delivery lag of a pair is published → acknowledged.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from hub.cases.scores import CaseRow, case_rows
from hub.ledger import DeliveryRow, Ledger
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


def tally(pairs: Sequence[Judged]) -> Tally:
    """Sum up a group of judged pairs."""
    lags = sorted(lag for p in pairs if (lag := p.lag_s) is not None)
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
        lag_p50_s=nearest_rank(lags, 50),
        lag_p95_s=nearest_rank(lags, 95),
        lag_max_s=lags[-1] if lags else None,
    )


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


def lines(
    pairs: Sequence[Judged], org_of: Callable[[DeliveryRow], str], registry: Registry
) -> list[Line]:
    """Per organisation and category, then the organisation's total, in registry order."""
    grouped: dict[str, dict[str, list[Judged]]] = defaultdict(lambda: defaultdict(list))
    for p in pairs:
        grouped[org_of(p.row)][p.row.category or "?"].append(p)
    order = {o.id: i for i, o in enumerate(registry.organisations)}
    found = []
    for org in sorted(grouped, key=lambda o: (order.get(o, len(order)), o)):
        by_category = grouped[org]
        for category in sorted(by_category):
            found.append(Line(org, registry.name(org), category, tally(by_category[category])))
        if len(by_category) > 1:
            everything = [p for group in by_category.values() for p in group]
            found.append(Line(org, registry.name(org), None, tally(everything)))
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
    rows = await ledger.pairs(day_from=day, day_to=day)
    if county is not None:
        members = {o.id for o in registry.members(county)}
        rows = [r for r in rows if r.recipient in members or r.publisher in members]
    pairs = judged(rows, now)
    return DailyReport(
        day=day,
        generated_at=now,
        county=county,
        by_recipient=lines(pairs, lambda r: r.recipient, registry),
        by_publisher=lines(pairs, lambda r: r.publisher or "?", registry),
        total=tally(pairs),
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
    published = judged(await ledger.pairs(day_from=day_from, day_to=day_to, publisher=org), now)
    received = judged(await ledger.pairs(day_from=day_from, day_to=day_to, recipient=org), now)
    events = {p.row.event_key: p for p in published}
    same_day = sum(
        shanghai_day(p.published_at) == shanghai_day(p.formed_at) for p in events.values()
    )
    return OrgReport(
        org=org,
        org_name=registry.name(org),
        day_from=day_from,
        day_to=day_to,
        generated_at=now,
        events_published=len(events),
        published_same_day=same_day,
        as_publisher=lines(published, lambda r: r.publisher or "?", registry),
        as_recipient=lines(received, lambda r: r.recipient, registry),
        items=_items(published, received),
        cases=case_rows(await ledger.case_states(org=org), org, day_from, day_to, now),
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
