"""What ops see at a glance: who is behind, who will miss today, and how deliveries are going.

One snapshot, computed from the ledger and the registry, serves the ops page, ``hub lag`` and the
Prometheus metrics, so all three always agree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time

from hub.cases.state import KIND_ZH as CASE_KIND_ZH
from hub.cases.state import CaseKind
from hub.ledger import Backlog, DeliveryRow, Ledger
from hub.registry import KIND_ZH, Organisation, Registry
from hub.reports import Judged, judged, nearest_rank
from hub.timeliness import SHANGHAI, Verdict, shanghai_day


@dataclass(frozen=True)
class OrgStatus:
    """One organisation as a recipient."""

    org: str
    name: str
    kind: str
    county: str
    county_name: str
    waiting: int  # events not yet acknowledged, whatever day they were formed
    oldest_waiting_s: float | None  # since the oldest of them was published
    dead_lettered: int
    today_deliveries: int
    today_on_time: int
    last_receipt: datetime | None

    @property
    def today_on_time_rate(self) -> float | None:
        """On-time share of today's deliveries (``None`` when there were none)."""
        return self.today_on_time / self.today_deliveries if self.today_deliveries else None


@dataclass(frozen=True)
class AtRisk:
    """A recipient holding events formed today that it has not acknowledged late in the day."""

    org: str
    name: str
    county_name: str
    events: int
    oldest_formed: datetime
    keys: tuple[str, ...]


@dataclass(frozen=True)
class LagHour:
    """Delivery lag of today's acknowledged deliveries published in one hour (Asia/Shanghai)."""

    hour: int
    deliveries: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None


@dataclass(frozen=True)
class OverdueCase:
    """A case deadline that has passed with its step still owed."""

    case: str
    kind: str
    kind_zh: str
    party: str
    party_name: str
    county_name: str
    step_zh: str
    due_at: datetime
    overdue_s: float
    noticed: bool  # the hub's notice went to both parties


@dataclass(frozen=True)
class OpsSnapshot:
    """Everything the ops page shows."""

    generated_at: datetime
    day: date
    county: str | None
    category: str | None
    at_risk_after: time
    at_risk_active: bool
    orgs: list[OrgStatus]
    at_risk: list[AtRisk]
    lag_by_hour: list[LagHour]
    today: list[Judged]  # today's deliveries in scope, judged at ``generated_at``
    overdue_cases: list[OverdueCase]


def _in_scope(org: Organisation, county: str | None) -> bool:
    return county is None or org.county == county


async def ops_snapshot(
    ledger: Ledger,
    registry: Registry,
    *,
    now: datetime,
    at_risk_after: time,
    county: str | None = None,
    category: str | None = None,
) -> OpsSnapshot:
    """The state of every recipient of ``county`` (all counties when ``None``) at ``now``."""
    today = shanghai_day(now)
    backlog = await ledger.backlog(category=category)
    rows = [
        r
        for r in await ledger.pairs(day_from=today, day_to=today)
        if category is None or r.category == category
    ]
    by_recipient: dict[str, list[Judged]] = defaultdict(list)
    for pair in judged(rows, now):
        by_recipient[pair.row.recipient].append(pair)
    orgs = [
        _status(org, registry, backlog.get(org.id), by_recipient.get(org.id, []), now)
        for org in registry.organisations
        if _in_scope(org, county)
    ]
    active = now.astimezone(SHANGHAI).time() >= at_risk_after
    scope = {o.org for o in orgs}
    at_risk = _at_risk(by_recipient, scope, registry) if active else []
    in_scope = [p for org in sorted(scope) for p in by_recipient.get(org, [])]
    return OpsSnapshot(
        generated_at=now,
        day=today,
        county=county,
        category=category,
        at_risk_after=at_risk_after,
        at_risk_active=active,
        orgs=orgs,
        at_risk=at_risk,
        lag_by_hour=_lag_by_hour(in_scope),
        today=in_scope,
        overdue_cases=await _overdue_cases(ledger, registry, now, county),
    )


async def _overdue_cases(
    ledger: Ledger, registry: Registry, now: datetime, county: str | None
) -> list[OverdueCase]:
    """Deadlines past due and still owed, the longest overdue first."""
    found = []
    for row in await ledger.case_deadlines(due_before=now):
        party = registry.org(row.party) if row.party in registry else None
        if party is None or not _in_scope(party, county):
            continue
        found.append(
            OverdueCase(
                case=row.case_key,
                kind=row.kind,
                kind_zh=CASE_KIND_ZH[CaseKind(row.kind)],
                party=row.party,
                party_name=party.name,
                county_name=registry.county(party.county).name,
                step_zh=row.step_zh,
                due_at=row.due_at,
                overdue_s=(now - row.due_at).total_seconds(),
                noticed=row.noticed_overdue,
            )
        )
    return found


def _status(
    org: Organisation,
    registry: Registry,
    backlog: Backlog | None,
    today: list[Judged],
    now: datetime,
) -> OrgStatus:
    oldest = backlog.oldest if backlog else None
    return OrgStatus(
        org=org.id,
        name=org.name,
        kind=KIND_ZH[org.kind],
        county=org.county,
        county_name=registry.county(org.county).name,
        waiting=backlog.waiting if backlog else 0,
        oldest_waiting_s=(now - oldest).total_seconds() if oldest else None,
        dead_lettered=backlog.dead_lettered if backlog else 0,
        today_deliveries=len(today),
        today_on_time=sum(p.judgement.verdict is Verdict.ON_TIME for p in today),
        last_receipt=backlog.last_receipt if backlog else None,
    )


def _at_risk(
    by_recipient: dict[str, list[Judged]], scope: set[str], registry: Registry
) -> list[AtRisk]:
    found = []
    for org in sorted(scope):
        open_rows: list[DeliveryRow] = [
            p.row for p in by_recipient.get(org, []) if p.row.acknowledged_at is None
        ]
        if not open_rows:
            continue
        organisation = registry.org(org)
        found.append(
            AtRisk(
                org=org,
                name=organisation.name,
                county_name=registry.county(organisation.county).name,
                events=len(open_rows),
                oldest_formed=min(r.formed_at for r in open_rows if r.formed_at is not None),
                keys=tuple(r.event_key for r in open_rows[:10]),
            )
        )
    return sorted(found, key=lambda a: (-a.events, a.org))


def _lag_by_hour(pairs: list[Judged]) -> list[LagHour]:
    hours: dict[int, list[float]] = defaultdict(list)
    for p in pairs:
        if (lag := p.lag_s) is not None:
            hours[p.published_at.astimezone(SHANGHAI).hour].append(lag)
    result = []
    for hour in range(24):
        lags = sorted(hours.get(hour, []))
        result.append(
            LagHour(
                hour=hour,
                deliveries=len(lags),
                p50_s=nearest_rank(lags, 50),
                p95_s=nearest_rank(lags, 95),
                max_s=lags[-1] if lags else None,
            )
        )
    return result
