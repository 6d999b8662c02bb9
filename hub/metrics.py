"""Prometheus metrics of the hub: per recipient from the ledger, hub-wide from ingest.

Per recipient (refreshed from an ops snapshot at every scrape, so they equal the ledger):
``hub_backlog_events`` (not yet acknowledged), ``hub_oldest_pending_age_seconds``,
``hub_on_time_ratio_today``, ``hub_dead_letters`` and the gauge histogram
``hub_delivery_lag_seconds`` of today's acknowledged deliveries. Hub-wide counters:
``hub_events_accepted_total`` by category, ``hub_rejected_total`` by publisher and rule,
``hub_events_missing`` (accepted events the events stream no longer holds, per the store check)
``hub_store_check_ok`` (1 when the latest check could run), ``hub_config_drift`` and
``hub_config_drift_seen`` (streams and consumers changed behind the hub's back),
``hub_consumers_to_write`` (organisations' consumers still being written after start-up: fan-out
waits for them), ``hub_ingest_seconds`` and ``hub_role`` (the roles this process plays).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily
from prometheus_client.registry import Collector

from hub.audit.watch import AuditState
from hub.cases.state import CaseKind
from hub.ops import OpsSnapshot
from hub.provisioning import ConfigState
from hub.reconcile import StoreCheck

LAG_BUCKETS = (
    0.1,
    0.5,
    1.0,
    5.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    4 * 3600.0,
    12 * 3600.0,
    86400.0,
)


class _LagHistogram(Collector):
    """Today's delivery lag per recipient, as the last refresh saw it."""

    def __init__(self) -> None:
        self.lags: dict[str, list[float]] = {}

    def collect(self) -> Iterator[GaugeHistogramMetricFamily]:
        family = GaugeHistogramMetricFamily(
            "hub_delivery_lag_seconds",
            "Publication to acknowledgement of today's deliveries, per recipient",
            labels=["recipient"],
        )
        for recipient, lags in sorted(self.lags.items()):
            buckets = [(str(b), float(sum(lag <= b for lag in lags))) for b in LAG_BUCKETS]
            buckets.append(("+Inf", float(len(lags))))
            family.add_metric([recipient], buckets, gsum_value=sum(lags))
        yield family


class HubMetrics:
    """The hub's metrics registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.accepted = Counter(
            "hub_events_accepted", "Events accepted", ["category"], registry=self.registry
        )
        self.throttled = Counter(
            "hub_throttled",
            "Messages answered 'unavailable' because their publisher exceeded its rate",
            ["publisher"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "hub_rejected",
            "Rejected messages, by publisher and broken rule",
            ["publisher", "rule"],
            registry=self.registry,
        )
        per_recipient: dict[str, str] = {
            "hub_backlog_events": "Events the recipient has not acknowledged (dead letters apart)",
            "hub_oldest_pending_age_seconds": "Since the oldest unacknowledged event was published",
            "hub_on_time_ratio_today": "Share of today's deliveries acknowledged on the day formed",
            "hub_dead_letters": "Events the recipient could not handle (dead-lettered)",
        }
        self.gauges = {
            name: Gauge(name, text, ["recipient"], registry=self.registry)
            for name, text in per_recipient.items()
        }
        self.events_missing = Gauge(
            "hub_events_missing",
            "Accepted events (per the ledger) the events stream no longer holds",
            registry=self.registry,
        )
        self.config_drift = Gauge(
            "hub_config_drift",
            "Streams and consumers whose settings differed from the declaration at the last check",
            registry=self.registry,
        )
        self.config_drift_seen = Gauge(
            "hub_config_drift_seen",
            "Drifted streams and consumers seen since the hub started (repaired when allowed)",
            registry=self.registry,
        )
        self.consumers_to_write = Gauge(
            "hub_consumers_to_write",
            "Organisations' consumers still being written after start-up (fan-out paused until 0)",
            registry=self.registry,
        )
        self.store_check_ok = Gauge(
            "hub_store_check_ok",
            "1 when the latest store check ran, 0 when it could not (database or NATS away)",
            registry=self.registry,
        )
        self.cases_overdue = Gauge(
            "hub_cases_overdue",
            "Case deadlines past due with their step still owed, by kind of case",
            ["kind"],
            registry=self.registry,
        )
        self.audit_findings = Gauge(
            "hub_audit_findings",
            "Messages or checkpoints the latest record verification found deleted, changed or "
            "inserted (-1: not verified yet)",
            registry=self.registry,
        )
        self.audit_checkpoints = Gauge(
            "hub_audit_checkpoints",
            "Valid signed checkpoints in the record at the latest verification",
            registry=self.registry,
        )
        self.ledger_differences = Gauge(
            "hub_ledger_differences",
            "Ledger rows that differed from their recomputation from the streams at the latest "
            "deep check (-1: not checked yet)",
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "hub_ingest_seconds",
            "Time from taking an ingest request to answering it (checks and the JetStream write)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.roles = Gauge(
            "hub_role",
            "1 while this hub process plays the role (fanout, checkpoints, overdue, ledger-check)",
            ["role"],
            registry=self.registry,
        )
        self.bundles_refused = Gauge(
            "hub_bundles_refused",
            "Delivery bundles a recipient's SDK refused since the hub started "
            "(forged or unreadable)",
            ["recipient"],
            registry=self.registry,
        )
        self._lag = _LagHistogram()
        self.registry.register(self._lag)

    def role_seen(self, role: str, playing: bool) -> None:
        """This process started or stopped playing ``role``."""
        self.roles.labels(role).set(1 if playing else 0)

    def count_throttled(self, publisher: str) -> None:
        """One more message turned away by the publisher's rate limit."""
        self.throttled.labels(publisher=publisher).inc()

    def count_accepted(self, category: str) -> None:
        """One more event accepted."""
        self.accepted.labels(category=category).inc()

    def count_rejected(self, publisher: str, rules: Iterable[str]) -> None:
        """One more message rejected, counted once under each rule it broke."""
        for rule in set(rules):
            self.rejected.labels(publisher=publisher, rule=rule).inc()

    def refresh(
        self,
        snapshot: OpsSnapshot,
        store_check: StoreCheck,
        config: ConfigState,
        audit: AuditState | None = None,
    ) -> None:
        """Set the per-recipient figures from an ops snapshot, and the checks' outcomes."""
        if audit is not None:
            self.audit_findings.set(audit.findings if audit.verified_at else -1)
            self.audit_checkpoints.set(audit.checkpoints)
            self.ledger_differences.set(audit.ledger_differences if audit.ledger_checked_at else -1)
            self.bundles_refused.clear()
            for recipient, count in audit.refused.items():
                self.bundles_refused.labels(recipient=recipient).set(count)
        if store_check.missing is not None:
            self.events_missing.set(len(store_check.missing))
        self.store_check_ok.set(0 if store_check.trouble else 1)
        self.config_drift.set(len(config.drift))
        self.config_drift_seen.set(len(config.history))
        self.consumers_to_write.set(config.consumers_to_write)
        for gauge in self.gauges.values():
            gauge.clear()
        for org in snapshot.orgs:
            self.gauges["hub_backlog_events"].labels(org.org).set(org.waiting)
            self.gauges["hub_oldest_pending_age_seconds"].labels(org.org).set(
                org.oldest_waiting_s or 0
            )
            self.gauges["hub_dead_letters"].labels(org.org).set(org.dead_lettered)
            if (rate := org.today_on_time_rate) is not None:
                self.gauges["hub_on_time_ratio_today"].labels(org.org).set(rate)
        self.cases_overdue.clear()
        for kind in CaseKind:
            overdue = sum(c.kind == kind for c in snapshot.overdue_cases)
            self.cases_overdue.labels(kind=kind.value).set(overdue)
        lags: dict[str, list[float]] = defaultdict(list)
        for pair in snapshot.today:
            if (lag := pair.lag_s) is not None:
                lags[pair.row.recipient].append(lag)
        self._lag.lags = dict(lags)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
