"""The demo county's cases: one transfer escalated, one assistance request paused.

The transfer is answered "not ours" and goes to the county government; the assistance request's
clock is paused while the department waits for material. Both are sent once when the demo
starts, under the organisations' own credentials, with real attachments, and stay open, so the
township's page and ``hub cases list`` show them with their deadlines.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client

from hub import case_samples as cs
from hub.config import HubSettings
from hub.errors import EventRejected, HubUnavailable
from hub.registry import OrgKind, Registry
from schemas.envelope import label_of
from schemas.shanghai import SHANGHAI, clock_text, shanghai_day
from subscribers.cases import CaseClient
from subscribers.publisher import Publisher

Emit = Callable[[str], None]


def demo_township(registry: Registry, county: str) -> str:
    """The township whose page the demo serves (its first township, else its first street)."""
    members = registry.members(county)
    return next(
        (o for o in members if o.kind == OrgKind.TOWNSHIP),
        next(o for o in members if o.kind == OrgKind.STREET),
    ).id


class DemoCases:
    """Sends the demo's case steps."""

    def __init__(self, settings: HubSettings, registry: Registry, emit: Emit) -> None:
        self.settings, self.registry, self.emit = settings, registry, emit
        self.connections: dict[str, Client] = {}
        self.sent = self.refused = 0

    def _department(self, county: str, preferred: str, avoid: str = "") -> str:
        if preferred in self.registry:
            return preferred
        departments = [
            o.id
            for o in self.registry.members(county)
            if o.kind == OrgKind.DEPARTMENT and o.id != avoid
        ]
        return departments[0]

    async def run(self, connections: dict[str, Client], county: str) -> None:
        """Open the two cases (a few seconds); a refusal is shown, never hidden."""
        self.connections = connections
        town = demo_township(self.registry, county)
        land = self._department(county, f"{county}-zrzy")
        market = self._department(county, f"{county}-scjg", avoid=land)
        now = datetime.now(UTC)
        stamp = now.astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S")
        desk = CaseClient(self.connections[town], town, wire=self.settings.wire)
        files = [
            await desk.upload(cs.pdf(f"{stamp} {title}"), name, kind)
            for kind, name, title in cs.TRANSFER_MATERIALS
        ]
        transfer_no = f"YS-{stamp}"
        letter = cs.transfer(transfer_no, land, shanghai_day(now), files)
        if not await self._step(town, "case_transfer.v1", letter):
            return
        await self._step(land, "case_transfer_reply.v1", cs.reply(f"{town}/{transfer_no}", False))

        assistance_no = f"XZ-{stamp}"
        request = await desk.upload(
            cs.pdf(f"{stamp} assistance"), "协助函.pdf", "assistance_letter"
        )
        if not await self._step(
            town, "assistance_request.v1", cs.assistance(assistance_no, market, [request])
        ):
            return
        asked = cs.supplement_request(f"{town}/{assistance_no}")
        await self._step(market, "assistance_supplement_request.v1", asked)

    async def _step(self, org: str, step_type: str, data: dict[str, Any]) -> bool:
        publisher = Publisher(self.connections[org], org, wire=self.settings.wire)
        label, name = label_of(step_type.split(".")[0]), self.registry.name(org)
        try:
            accepted = await publisher.publish(cs.step(org, step_type, data, datetime.now(UTC)))
        except EventRejected as exc:
            self.refused += 1
            reasons = "；".join(f"{e.field}：{e.message_zh}" for e in exc.errors)
            self.emit(f"{clock_text()} 案件步骤被拒绝 {name} · {label} · {reasons}")
            return False
        except HubUnavailable as exc:
            self.emit(f"{clock_text()} 案件步骤暂不可用 {name} · {label} · {exc.reason}")
            return False
        self.sent += 1
        to = "、".join(self.registry.name(o) for o in accepted.recipients)
        self.emit(f"{clock_text()} 案件 {name} · {label} → {to}")
        return True
