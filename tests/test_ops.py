"""Ops: metrics that equal the ledger, health, the at-risk rule, `hub lag`, AsyncAPI."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from hub.asyncapi import specification
from hub.config import HubSettings
from hub.errors import ConfigError
from hub.ledger import Backlog, Ledger
from hub.ops import ops_snapshot
from hub.registry import Registry
from hub.samples import sample_event
from hub.service import Hub
from tests.conftest import Orgs, hub_running
from tests.helpers import event, eventually, receipt, receiving, run_hub, scrape

pytestmark = pytest.mark.connected

TARGETS = ("renqiu-qingta", "renqiu-beihan", "renqiu-chuan", "renqiu-yucun")
ONLINE = ["renqiu-qingta", "renqiu-chuan"]


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def _ledger_counts(hub: Hub, expected: dict[str, int]) -> bool:
    return await hub.ledger.counts() == expected


async def test_backlog_gauge_is_publications_times_recipients_minus_acknowledgements(
    hub: Hub, orgs: Orgs
) -> None:
    publisher = await orgs.publisher("renqiu-scjg")
    n, m = 5, len(TARGETS)
    for i in range(n):
        await publisher.publish(
            sample_event("other", "renqiu-scjg", datetime.now(UTC), i, recipients=TARGETS)
        )
    async with receiving(hub.settings, ONLINE):
        k = n * len(ONLINE)
        await eventually(
            lambda: _ledger_counts(hub, {"acknowledged": k, "pending": n * m - k}), within=20
        )
    text = (await scrape(hub)).text
    backlog = samples(text, "hub_backlog_events")
    assert sum(backlog.values()) == n * m - k
    assert backlog[(("recipient", "renqiu-beihan"),)] == n
    assert backlog[(("recipient", "renqiu-chuan"),)] == 0
    assert samples(text, "hub_events_accepted_total") == {(("category", "other"),): n}
    lag_count = samples(text, "hub_delivery_lag_seconds_gcount")
    assert lag_count[(("recipient", "renqiu-chuan"),)] == n
    assert samples(text, "hub_on_time_ratio_today")[(("recipient", "renqiu-qingta"),)] == 1.0
    assert samples(text, "hub_oldest_pending_age_seconds")[(("recipient", "renqiu-yucun"),)] > 0


async def test_rejections_are_counted_by_the_rule_they_broke(hub: Hub, orgs: Orgs) -> None:
    bad = sample_event("permit", "renqiu-scjg", datetime.now(UTC))
    bad["data"]["entity_uscc"] = "91130982MA0D4XXK3Y"
    reply = await (await orgs.nc("renqiu-scjg")).request(
        hub.settings.wire.ingest("renqiu-scjg"), json.dumps(bad).encode(), timeout=5
    )
    assert b"rejected" in reply.data
    rejected = samples((await scrape(hub)).text, "hub_rejected_total")
    assert rejected == {(("publisher", "renqiu-scjg"), ("rule", "uscc_check_character")): 1}


async def test_ingest_answers_are_timed_in_the_metrics(hub: Hub, orgs: Orgs) -> None:
    before = (await scrape(hub)).text
    event = sample_event("other", "renqiu-scjg", datetime.now(UTC), recipients=("renqiu-chuan",))
    await (await orgs.publisher("renqiu-scjg")).publish(event)
    after = (await scrape(hub)).text
    count = "hub_ingest_seconds_count"
    assert _sample(after, count) == _sample(before, count) + 1


def _sample(text: str, name: str) -> float:
    """The value of an unlabelled sample in the Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def test_health_and_readiness(hub: Hub) -> None:
    assert (await scrape(hub, "/healthz")).json() == {"status": "ok"}
    ready = await scrape(hub, "/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"nats": True, "ledger": True, "fanout": True}


async def test_a_recipient_offline_in_the_evening_is_at_risk(
    tmp_path: Path, registry: Registry
) -> None:
    async with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite3'}") as ledger:
        await ledger.apply(
            [
                event(
                    "2025-09-30T09:00:00+08:00",
                    "2025-09-30T09:00:01+08:00",
                    recipients=("renqiu-chuan", "renqiu-beihan"),
                )
            ],
            [receipt("2025-09-30T09:00:05+08:00", recipient="renqiu-chuan")],
        )
        afternoon = await ops_snapshot(
            ledger,
            registry,
            now=datetime.fromisoformat("2025-09-30T16:00:00+08:00"),
            at_risk_after=time(20),
        )
        evening = await ops_snapshot(
            ledger,
            registry,
            now=datetime.fromisoformat("2025-09-30T21:30:00+08:00"),
            at_risk_after=time(20),
        )
    assert (afternoon.at_risk_active, afternoon.at_risk) == (False, [])
    assert evening.at_risk_active
    (risk,) = evening.at_risk
    assert (risk.org, risk.name, risk.events) == ("renqiu-beihan", "任丘市北汉乡人民政府", 1)
    beihan = next(o for o in evening.orgs if o.org == "renqiu-beihan")
    assert beihan.waiting == 1 and beihan.oldest_waiting_s == pytest.approx(12.5 * 3600 - 1)
    assert evening.day == date(2025, 9, 30)


async def test_ops_data_filters_by_county_and_category(hub: Hub, orgs: Orgs) -> None:
    event_ = sample_event("other", "renqiu-scjg", datetime.now(UTC), recipients=("renqiu-beihan",))
    await (await orgs.publisher("renqiu-scjg")).publish(event_)
    await eventually(lambda: _ledger_counts(hub, {"pending": 1}))
    renqiu = (await scrape(hub, "/api/ops?county=renqiu")).json()
    qingxian = (await scrape(hub, "/api/ops?county=qingxian")).json()
    permits = (await scrape(hub, "/api/ops?county=renqiu&category=permit")).json()
    assert {o["county"] for o in renqiu["orgs"]} == {"renqiu"}
    assert next(o for o in renqiu["orgs"] if o["org"] == "renqiu-beihan")["waiting"] == 1
    assert all(o["waiting"] == 0 for o in qingxian["orgs"])
    assert next(o for o in permits["orgs"] if o["org"] == "renqiu-beihan")["waiting"] == 0
    assert {c["id"] for c in renqiu["categories"]} >= {"permit", "other"}


async def test_hub_lag_prints_the_backlog_of_each_organisation(hub: Hub, orgs: Orgs) -> None:
    event_ = sample_event(
        "other", "renqiu-scjg", datetime.now(UTC), recipients=("renqiu-beihan", "renqiu-yucun")
    )
    await (await orgs.publisher("renqiu-scjg")).publish(event_)
    await eventually(lambda: _ledger_counts(hub, {"pending": 2}))
    code, out, err = await run_hub(hub.settings, "lag")
    assert code == 0, err
    assert "任丘市北汉乡人民政府" in out and "任丘市于村镇人民政府" in out
    assert "合计待签收 2 件" in out


async def test_hub_lag_with_nothing_waiting_says_so_and_shows_the_day(hub: Hub, orgs: Orgs) -> None:
    event_ = sample_event("other", "renqiu-scjg", datetime.now(UTC), recipients=("renqiu-beihan",))
    await (await orgs.publisher("renqiu-scjg")).publish(event_)
    async with receiving(hub.settings, ["renqiu-beihan"]):
        await eventually(lambda: _ledger_counts(hub, {"acknowledged": 1}))
    code, out, err = await run_hub(hub.settings, "lag")
    assert code == 0, err
    assert "目前没有待签收的事件" in out and "--all" in out
    assert "应送达 1，已签收 1，当日签收 1（100.0%）" in out
    code, everyone, _ = await run_hub(hub.settings, "lag", "--all")
    assert code == 0 and "任丘市北汉乡人民政府" in everyone


async def test_the_quarantine_panel_counts_by_publisher_and_rule_with_personal_data_masked(
    hub: Hub, orgs: Orgs
) -> None:
    bad = sample_event("complaint_outcome", "renqiu-chuan", datetime.now(UTC))
    bad["data"]["complainant"]["id_number"] = "130982199001011230"  # wrong check digit
    for _ in range(2):
        reply = await (await orgs.nc("renqiu-chuan")).request(
            hub.settings.wire.ingest("renqiu-chuan"), json.dumps(bad).encode(), timeout=5
        )
        assert b"rejected" in reply.data
    await eventually(lambda: _rejections_seen(hub, 2))
    panel = (await scrape(hub, "/api/ops")).json()["rejections"]
    metrics = samples((await scrape(hub)).text, "hub_rejected_total")
    (chuan,) = panel["by_publisher"]
    assert (chuan["publisher"], chuan["name"], chuan["count"]) == (
        "renqiu-chuan",
        "任丘市出岸镇人民政府",
        2,
    )
    rules = set(chuan["rules"])
    assert rules and all(chuan["rules"][rule] == 2 for rule in rules)
    assert {labels[1][1] for labels in metrics} == rules  # the metric counts the same rules
    reasons = " ".join(r for item in panel["latest"] for r in item["reasons"])
    assert "130982199001011230" not in json.dumps(panel, ensure_ascii=False)
    assert len(panel["latest"]) == 2 and reasons


async def _rejections_seen(hub: Hub, count: int) -> bool:
    panel = (await scrape(hub, "/api/ops")).json()["rejections"]
    return bool(panel["total"] == count)


class SlowLedger(Ledger):
    """A ledger whose reads take longer than any request may wait."""

    async def backlog(self, *, category: str | None = None) -> dict[str, Backlog]:
        await asyncio.sleep(30)
        return await super().backlog(category=category)


async def test_a_slow_ledger_gets_the_ops_api_and_metrics_a_503_not_a_hang(
    settings: HubSettings, registry: Registry, tmp_path: Path
) -> None:
    # the deadline is also every NATS request's: below ~2 s a loaded CI host's start-up requests
    # time out before the test begins
    quick = settings.model_copy(update={"request_timeout_s": 2.0})
    async with Ledger.open(f"sqlite:///{tmp_path / 'slow.sqlite3'}") as opened:
        slow = SlowLedger(opened.engine, opened.where)
        async with hub_running(quick, registry, ledger=slow) as hub:
            ops = await scrape(hub, "/api/ops")
            metrics = await scrape(hub)
            health = await scrape(hub, "/healthz")
    assert ops.status_code == metrics.status_code == 503
    assert "台账数据库暂不可用" in ops.json()["error"]
    assert health.status_code == 200


async def test_asyncapi_documents_the_channels_of_the_wire(
    settings: HubSettings, tmp_path: Path
) -> None:
    code, _, err = await run_hub(settings, "asyncapi", "export", str(tmp_path / "asyncapi.json"))
    assert code == 0, err
    document = json.loads((tmp_path / "asyncapi.json").read_text(encoding="utf-8"))
    assert document == specification(settings)
    addresses = {c["address"] for c in document["channels"].values()}
    wire = settings.wire
    assert {
        wire.ingest("{org}"),
        wire.deliver("{org}"),
        wire.receipts("{org}"),
        wire.quarantine("{org}"),
    } <= addresses
    assert "PermitEvent" in document["components"]["schemas"]
    assert "DeliveryBundle" in document["components"]["schemas"]


async def test_the_hub_serves_its_asyncapi_document(hub: Hub) -> None:
    served = (await scrape(hub, "/asyncapi.json")).json()
    assert served == specification(hub.settings)
    assert served["channels"]["ingest"]["address"] == hub.settings.wire.ingest("{org}")
    # the document is declared apart from the running subscription: they must not drift
    documented = served["channels"]["ingest"]["bindings"]["nats"]
    live = {(sub.subject, sub.queue) for sub in hub.broker.connection._subs.values()}
    assert (documented["subject"].replace("{org}", "*"), documented["queue"]) in live


async def test_the_ops_page_and_metrics_need_the_ops_login_and_the_probes_do_not(
    settings: HubSettings, registry: Registry
) -> None:
    guarded = settings.model_copy(update={"ops_password": SecretStr("县运维口令")})
    async with hub_running(guarded, registry) as hub:
        async with httpx.AsyncClient(base_url=hub.web_url, timeout=10) as anonymous:
            refused = [
                (await anonymous.get(p)).status_code for p in ("/ops", "/api/ops", "/metrics")
            ]
            probes = [(await anonymous.get(p)).status_code for p in ("/healthz", "/readyz")]
            wrong = await anonymous.get("/api/ops", auth=("ops", "猜一个"))
            allowed = await anonymous.get("/api/ops", auth=("ops", "县运维口令"))
    assert refused == [401, 401, 401] and probes == [200, 200]
    assert wrong.status_code == 401 and "Basic" in wrong.headers["www-authenticate"]
    assert allowed.status_code == 200 and "orgs" in allowed.json()


async def test_an_ops_page_open_to_the_network_without_a_password_is_refused(
    settings: HubSettings, registry: Registry
) -> None:
    exposed = settings.model_copy(update={"web_host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="HUB_OPS_PASSWORD"):
        async with hub_running(exposed, registry):
            pass


async def test_the_ops_page_says_which_roles_this_hub_process_plays(hub: Hub) -> None:
    async def all_played() -> bool:
        roles = (await scrape(hub, "/api/ops")).json()["roles"]
        return not roles["elsewhere"]

    await eventually(all_played, within=10)  # one process: it plays every role
    roles = (await scrape(hub, "/api/ops")).json()["roles"]
    assert roles["holder"] == hub.roles.holder
    assert set(roles["playing"]) == {
        "扇出投递",
        "审计检查点",
        "案件期限监测",
        "台账登记事件",
        "台账登记回执",
        "台账重算核对",
    }
