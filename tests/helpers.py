"""Waiting on conditions and running recipients inside tests."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.js import JetStreamContext

from hub.config import HubSettings
from hub.service import Hub
from hub.streams import read_stream
from schemas.delivery import DeliveryBundle
from schemas.envelope import DELIVERED, Event
from schemas.receipt import Receipt, ReceiptBatch
from subscribers.recipient import Delivery, Recipient


async def eventually(check: Callable[[], bool | Awaitable[bool]], within: float = 5.0) -> None:
    """Wait until ``check`` (plain or async) passes; fail loudly after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.01)  # poll interval, not a guess at timing


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
    nc: Client, settings: HubSettings, orgs: list[str], handler: Handler | None = None
) -> AsyncIterator[dict[str, Inbox]]:
    """Run the recipient SDK for each of ``orgs`` while the body runs; yields their inboxes."""
    inboxes = {org: Inbox(org) for org in orgs}
    stop = asyncio.Event()

    def recorder(inbox: Inbox) -> Handler:
        async def record(event: Event, delivery: Delivery) -> None:
            if handler is not None:
                await handler(event, delivery)
            inbox.events.append((event, delivery))

        return record

    async with asyncio.TaskGroup() as tasks:
        for org in orgs:
            recipient = Recipient(nc, org, wire=settings.wire, backoff_s=settings.backoff_s)
            tasks.create_task(recipient.run(recorder(inboxes[org]), stop))
        try:
            yield inboxes
        finally:
            stop.set()


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
