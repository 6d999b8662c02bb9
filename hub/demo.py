"""The live demo county: real organisations of the registry publishing and receiving over the hub.

Every organisation of the county (but offices) runs the recipient SDK; publishers take turns through
the seven categories, and every few rounds one sends a broken event to show a rejection. Two cases
are opened at the start (``hub.demo_cases``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from nats.aio.client import Client

from hub.config import HubSettings
from hub.demo_cases import DemoCases
from hub.errors import EventRejected, HubUnavailable
from hub.identity.sessions import connect_as
from hub.registry import OrgKind, Registry
from hub.samples import RENQIU_PUBLISHERS, sample_event
from schemas.envelope import CATEGORIES, DELIVERED, EVENT_ADAPTER, Event, summary_zh
from schemas.shanghai import clock_text
from subscribers.inbox import Inbox
from subscribers.publisher import Publisher
from subscribers.recipient import Delivery, Recipient

Emit = Callable[[str], None]
SETTLE_TIMEOUT_S = 10.0


class DemoCounty:
    """Runs the demo traffic of one county."""

    def __init__(
        self,
        settings: HubSettings,
        registry: Registry,
        emit: Emit,
        *,
        county: str = "renqiu",
        inbox: Inbox | None = None,
    ) -> None:
        self.settings, self.registry, self.emit, self.county = settings, registry, emit, county
        self.inbox = inbox  # one organisation's dashboard inbox, filled by its handler
        self.received: dict[str, set[str]] = defaultdict(set)
        self.redacted: dict[str, set[str]] = defaultdict(set)
        self.changed = asyncio.Condition()
        self.published = self.accepted = self.rejected = 0
        self.cases = DemoCases(settings, registry, emit)

    async def run(self, stop: asyncio.Event, *, interval_s: float = 3.0, rounds: int = 0) -> None:
        """Publish one event every ``interval_s`` until ``stop`` (or ``rounds`` events, if > 0)."""
        members = [o for o in self.registry.members(self.county) if o.kind != OrgKind.OFFICE]
        connections: dict[str, Client] = {}
        try:
            for org in members:  # each organisation under its own credentials
                connections[org.id] = await connect_as(
                    self.settings, org.id, label=f"demo-{org.id}"
                )
            county_name = self.registry.county(self.county).name
            townships = sum(o.kind in (OrgKind.TOWNSHIP, OrgKind.STREET) for o in members)
            self.emit(
                f"{county_name}演示：{len(members)} 个单位在线接收"
                f"（{townships} 个乡镇（街道），{len(members) - townships} 个县级部门和人民政府）"
            )
            async with asyncio.TaskGroup() as tasks:
                for org in members:
                    recipient = Recipient(connections[org.id], org.id, wire=self.settings.wire)
                    tasks.create_task(recipient.run(self._handler(org.id), stop))
                tasks.create_task(self._publish_loop(connections, stop, interval_s, rounds))
                tasks.create_task(self.cases.run(connections, self.county))
        finally:
            for nc in connections.values():
                await nc.drain()
        self.emit(
            f"演示结束：发布 {self.published} 条，受理 {self.accepted} 条，拒收 {self.rejected} 条"
        )

    def _handler(self, org: str) -> Callable[[Event, Delivery], asyncio.Future[None]]:
        async def handle(event: Event, delivery: Delivery) -> None:
            if self.inbox is not None and self.inbox.org == org:
                await self.inbox.record(event, delivery)
            async with self.changed:
                self.received[event.key].add(org)
                if delivery.redacted:
                    self.redacted[event.key].add(org)
                self.changed.notify_all()

        return handle  # type: ignore[return-value]

    async def _publish_loop(
        self, connections: dict[str, Client], stop: asyncio.Event, interval_s: float, rounds: int
    ) -> None:
        categories = itertools.cycle(CATEGORIES)
        for n in itertools.count():
            if stop.is_set() or (rounds and n >= rounds):
                break
            category = next(categories)
            source = RENQIU_PUBLISHERS[category].replace("renqiu", self.county, 1)
            broken = n % 4 == 3
            await self._publish_one(
                Publisher(connections[source], source, wire=self.settings.wire), category, n, broken
            )
            try:
                async with asyncio.timeout(interval_s):
                    await stop.wait()
            except TimeoutError:
                continue
        stop.set()

    async def _publish_one(self, publisher: Publisher, category: str, n: int, broken: bool) -> None:
        event = sample_event(category, publisher.org, datetime.now(UTC), n)
        if broken:  # a typo in the credit code and a field that does not exist
            event = sample_event("permit", publisher.org, datetime.now(UTC), n)
            event["data"]["entity_uscc"] = event["data"]["entity_uscc"][:-1] + "Y"
            event["data"]["licence_no"] = event["data"].pop("permit_number")
            category = "permit"
        label, name = CATEGORIES[category].label, self.registry.name(publisher.org)
        self.published += 1
        started = time.monotonic()
        try:
            accepted = await publisher.publish(event)
        except EventRejected as exc:
            self.rejected += 1
            reasons = "；".join(f"{e.field}：{e.message_zh}" for e in exc.errors)
            self.emit(
                f"{clock_text()} 拒收 {name} · {label} · {reasons}"
                f" → 已隔离（序号 {exc.quarantine_seq}）"
            )
            return
        except HubUnavailable as exc:
            self.emit(f"{clock_text()} 暂不可用 {name} · {exc.reason}")
            return
        self.accepted += 1
        self.emit(
            f"{clock_text()} 发布 {name} · {label} · {summary_of(event)}"
            f"\n           受理：事件序号 {accepted.seq}，接收单位 {len(accepted.recipients)} 个"
        )
        await self._report_delivery(
            f"{accepted.source}/{accepted.id}", accepted.recipients, started
        )

    async def _report_delivery(self, key: str, recipients: tuple[str, ...], started: float) -> None:
        expected = set(recipients)
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT_S), self.changed:
                await self.changed.wait_for(lambda: self.received[key] >= expected)
        except TimeoutError:
            pass
        got = len(self.received[key] & expected)
        elapsed_ms = (time.monotonic() - started) * 1000
        line = f"{clock_text()} 送达 {got}/{len(expected)} 个单位已签收，用时 {elapsed_ms:.0f} ms"
        if redacted := self.redacted.get(key):
            full = expected - redacted
            names = "、".join(self.registry.name(o) for o in sorted(full))
            line += f"；投诉人信息仅送 {names}，其余 {len(redacted)} 个单位收到去除个人信息的副本"
        self.emit(line)


def summary_of(envelope: dict[str, object]) -> str:
    """The one-line summary of an envelope dict built by ``hub.samples``."""
    return summary_zh(EVENT_ADAPTER.validate_python(envelope, strict=False, context=DELIVERED))
