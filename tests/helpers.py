"""Waiting on conditions and running recipients inside tests."""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, cast

import httpx
import nats.js.errors
from nats.js import JetStreamContext

from hub.audit.trust import RecordTrust
from hub.config import HubSettings
from hub.identity.sessions import connect_as
from hub.ledger import EventRecord, ReceiptRecord
from hub.service import Hub
from hub.streams import read_stream
from schemas.delivery import DeliveryBundle
from schemas.envelope import DELIVERED, Event
from schemas.receipt import Receipt, ReceiptBatch, ReceiptStatus
from schemas.shanghai import SHANGHAI
from subscribers.recipient import Delivery, Recipient


async def eventually(check: Callable[[], bool | Awaitable[bool]], within: float = 5.0) -> None:
    """Wait until ``check`` (plain or async) passes; fail loudly after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.01)  # poll interval, not a guess at timing


class Clock:
    """The hub's clock, moved by the test (Asia/Shanghai wall time)."""

    def __init__(self, day: date, hour: int = 10) -> None:
        self.at = datetime.now(UTC)
        self.set(day, hour)

    def set(self, day: date, hour: int = 10, minute: int = 0) -> None:
        self.at = datetime.combine(day, time(hour, minute), SHANGHAI).astimezone(UTC)

    def __call__(self) -> datetime:
        return self.at


async def scrape(hub: Hub, path: str = "/metrics") -> httpx.Response:
    """GET one of the running hub's web pages."""
    async with httpx.AsyncClient(base_url=hub.web_url, timeout=10) as client:
        return await client.get(path)


@dataclass
class Inbox:
    """What one recipient's handler was given."""

    org: str
    events: list[tuple[Event, Delivery]] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [event.key for event, _ in self.events]


Handler = Callable[[Event, Delivery], Awaitable[None]]


@asynccontextmanager
async def receiving(
    settings: HubSettings, orgs: list[str], handler: Handler | None = None
) -> AsyncIterator[dict[str, Inbox]]:
    """Run the recipient SDK for each of ``orgs``, each on its own credentials, while the body
    runs; yields their inboxes."""
    inboxes = {org: Inbox(org) for org in orgs}
    stop = asyncio.Event()
    connections = {org: await connect_as(settings, org, label=f"test-{org}") for org in orgs}

    def recorder(inbox: Inbox) -> Handler:
        async def record(event: Event, delivery: Delivery) -> None:
            if handler is not None:
                await handler(event, delivery)
            inbox.events.append((event, delivery))

        return record

    try:
        async with asyncio.TaskGroup() as tasks:
            for org in orgs:
                # retry delays: the hub's setting, read from the consumer
                recipient = Recipient(connections[org], org, wire=settings.wire)
                tasks.create_task(recipient.run(recorder(inboxes[org]), stop))
            try:
                yield inboxes
            finally:
                stop.set()
    finally:
        for client in connections.values():
            await client.close()


async def stream_messages(js: JetStreamContext, stream: str) -> int:
    """How many messages a stream holds."""
    info = await js.stream_info(stream)
    return int(info.state.messages)


async def receipts(js: JetStreamContext, settings: HubSettings) -> list[Receipt]:
    """Every receipt in the receipts stream, in order."""
    info = await js.stream_info(settings.wire.receipts_stream)
    found: list[Receipt] = []
    if not info.state.messages:
        return found
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(settings.wire.receipts_stream, seq)
        found.extend(ReceiptBatch.model_validate_json(msg.data or b"").receipts)
    return found


async def receipt_count(js: JetStreamContext, settings: HubSettings) -> int:
    """How many receipts have been stored (a message carries a batch of them)."""
    return len(await receipts(js, settings))


async def fanned_out(hub: Hub, org: str, count: int) -> bool:
    """The fan-out is done and ``count`` events wait in ``org``'s bundles, none handed over yet."""
    js, wire = hub.js, hub.settings.wire
    fanout = await js.consumer_info(wire.events_stream, wire.fanout_consumer)
    if fanout.num_pending or fanout.num_ack_pending:
        return False
    waiting = await js.consumer_info(wire.deliveries_stream, wire.delivery_consumer(org))
    bundles = await js.stream_info(wire.deliveries_stream)
    return bool(
        waiting.delivered.stream_seq == 0 and waiting.num_pending == bundles.state.messages
    ) and (await _events_in_bundles(hub) == count)


async def _events_in_bundles(hub: Hub) -> int:
    """How many events the deliveries stream holds in all (bundles carry several)."""
    total = 0
    async for msgs in read_stream(hub.js, hub.settings.wire.deliveries_stream):
        total += sum(
            len(DeliveryBundle.model_validate_json(m.data, context=DELIVERED).items) for m in msgs
        )
    return total


def hub_environment(settings: HubSettings, **env: str) -> dict[str, str]:
    """The environment of a ``hub`` command working on the test's hub."""
    return {
        **os.environ,
        "HUB_NATS_URL": settings.nats_url or "",
        "HUB_SUBJECT_ROOT": settings.subject_root,
        "HUB_DATA_DIR": str(settings.data_dir),
        "HUB_CREDENTIALS_DIR": str(settings.credentials_store),
        "HUB_WEB_PORT": "0",
        **env,
    }


async def run_hub(
    settings: HubSettings, *args: str, deadline_s: float = 60, **env: str
) -> tuple[int, str, str]:
    environment = hub_environment(settings, **env)
    process = await asyncio.create_subprocess_exec(
        HUB, *args, env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(deadline_s):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


PUBLISHER, RECIPIENT = "renqiu-scjg", "renqiu-chuan"


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def event(
    formed: str,
    published: str,
    *,
    key: str = f"{PUBLISHER}/e1",
    recipients: tuple[str, ...] = (RECIPIENT,),
    seq: int = 1,
) -> EventRecord:
    source, _, event_id = key.partition("/")
    return EventRecord(
        key=key,
        source=source,
        event_id=event_id,
        category="permit",
        type="permit.v1",
        formed_at=at(formed),
        published_at=at(published),
        events_seq=seq,
        recipients=recipients,
        summary="任丘市鸿运食品有限公司 食品经营许可 准予许可",
    )


def receipt(
    when: str,
    *,
    status: ReceiptStatus = "acknowledged",
    key: str = f"{PUBLISHER}/e1",
    recipient: str = RECIPIENT,
    attempt: int = 1,
    seq: int = 1,
) -> ReceiptRecord:
    source, _, event_id = key.partition("/")
    stored = at(when)
    body = Receipt(
        event_source=source,
        event_id=event_id,
        recipient=recipient,
        status=status,
        delivery_seq=seq,
        deliveries=attempt,
        received_at=stored,
        finished_at=stored,
        reason=None if status == "acknowledged" else "RuntimeError: 数据库不可用",
        agent="tests",
    )
    return ReceiptRecord(body, stored, seq)


HUB = str(Path(sys.executable).parent / "hub")


def trust_of_hub(hub: Hub) -> RecordTrust:
    """The record keys and organisations' keys of a running hub's credentials store."""
    return RecordTrust.load(hub.settings)


class _JustStarted:
    """A JetStream context whose ``method`` first answers as a cluster that has just started."""

    def __init__(self, js: JetStreamContext, method: str, refusals: int) -> None:
        self._js, self._method, self.refusals = js, method, refusals

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._js, name)
        if name != self._method:
            return found

        async def refusing(*args: Any, **kwargs: Any) -> Any:
            if self.refusals:
                self.refusals -= 1
                raise nats.js.errors.ServiceUnavailableError(
                    code=503, err_code=10039, description="JetStream not enabled for account"
                )
            return await found(*args, **kwargs)

        return refusing


def just_started(js: JetStreamContext, method: str, refusals: int) -> JetStreamContext:
    """``js``, whose first ``refusals`` calls of ``method`` are refused with 503 (err_code 10039)
    as a node answers while the account is still being enabled on it."""
    return cast(JetStreamContext, _JustStarted(js, method, refusals))
