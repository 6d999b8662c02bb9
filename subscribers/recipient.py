"""The SDK a township or department system embeds to receive what is shared with it.

::

    nc = await nats.connect(url)
    recipient = Recipient(nc, "renqiu-chuan")
    await recipient.run(handle, stop)        # handle(event, delivery) -> None

Each event reaches the handler in publication order. When the handler returns, the SDK publishes a
receipt (``acknowledged``) and then acknowledges the delivery; when it raises, the SDK publishes a
``failed`` receipt with the reason and the delivery comes back after a growing delay; after the
consumer's last attempt the receipt is ``dead_lettered``. An event whose handler already succeeded
in this process is not handed over again (redeliveries after a crash between receipt and ack are
absorbed).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import ValidationError

from schemas.envelope import DELIVERED, EVENT_ADAPTER, Event
from schemas.receipt import Receipt, ReceiptBatch, ReceiptStatus
from schemas.wire import HEADER_MSG_ID, HEADER_PUBLISHED_AT, HEADER_REDACTED, Wire
from subscribers.consume import pull_batches

log = logging.getLogger(__name__)

AGENT = "subscribers/0.1.0"
DEFAULT_BACKOFF_S = (2.0, 10.0, 60.0, 300.0, 900.0)


@dataclass(frozen=True)
class Delivery:
    """What the hub says about one delivery of an event to this recipient."""

    recipient: str
    seq: int
    attempt: int
    published_at: datetime | None
    received_at: datetime
    redacted: bool


Handler = Callable[[Event, Delivery], Awaitable[None]]


class _Seen:
    """The most recent event keys whose handler succeeded (bounded)."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self._keys = capacity, OrderedDict[str, None]()

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def add(self, key: str) -> None:
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)


class Recipient:
    """Receives one organisation's deliveries through its durable consumer."""

    def __init__(
        self,
        nc: Client,
        org: str,
        *,
        wire: Wire | None = None,
        backoff_s: tuple[float, ...] = DEFAULT_BACKOFF_S,
        timeout_s: float = 5.0,
        batch: int = 64,
        seen_capacity: int = 100_000,
    ) -> None:
        self.nc, self.org = nc, org
        self.wire = wire or Wire()
        self.js = nc.jetstream(timeout=timeout_s)
        self.backoff_s, self.timeout_s, self.batch = backoff_s, timeout_s, batch
        self._seen = _Seen(seen_capacity)
        self.max_deliver = 0

    async def run(self, handler: Handler, stop: asyncio.Event) -> None:
        """Hand every delivery to ``handler`` until ``stop`` is set."""
        consumer = self.wire.delivery_consumer(self.org)
        info = await self.js.consumer_info(self.wire.deliveries_stream, consumer)
        self.max_deliver = int(info.config.max_deliver or 0)
        sub = await self.js.pull_subscribe_bind(
            durable=consumer, stream=self.wire.deliveries_stream
        )
        try:
            async for msgs in pull_batches(sub, stop, batch=self.batch):
                try:
                    await self.process(msgs, handler)
                except nats.errors.Error as exc:
                    # connection lost mid-batch: what was not acked comes back (handled once)
                    log.warning(
                        "recipient.batch_interrupted", extra={"org": self.org, "error": repr(exc)}
                    )
        finally:
            await sub.unsubscribe()

    async def process(self, msgs: list[Msg], handler: Handler) -> None:
        """Run the handler over a batch in order, then send receipts and settle each delivery."""
        receipts = [await self._handle(msg, handler) for msg in msgs]
        stored = await self._send(ReceiptBatch(recipient=self.org, receipts=tuple(receipts)))
        for msg, receipt in zip(msgs, receipts, strict=True):
            await self._settle(msg, receipt, stored)

    async def _handle(self, msg: Msg, handler: Handler) -> Receipt:
        received_at = datetime.now(UTC)
        meta = msg.metadata  # parsed from the reply subject on every access: read it once
        seq, attempt = meta.sequence.stream, meta.num_delivered
        headers = msg.headers or {}
        try:
            event = EVENT_ADAPTER.validate_json(msg.data, context=DELIVERED)
        except ValidationError as exc:
            key = self.wire.event_of(headers.get(HEADER_MSG_ID, "")) or "?/?"
            reason = f"delivery does not validate: {exc.error_count()} error(s)"
            return self._receipt(key, seq, attempt, "dead_lettered", received_at, reason)
        if event.key in self._seen:
            return self._receipt(event.key, seq, attempt, "acknowledged", received_at)
        delivery = Delivery(
            recipient=self.org,
            seq=seq,
            attempt=attempt,
            published_at=_parse_time(headers.get(HEADER_PUBLISHED_AT)),
            received_at=received_at,
            redacted=HEADER_REDACTED in headers,
        )
        try:
            await handler(event, delivery)
        except Exception as exc:  # the handler is the embedding system's code: any failure
            reason = f"{type(exc).__name__}: {exc}"
            log.warning(
                "recipient.handler_failed",
                extra={"org": self.org, "event": event.key, "attempt": attempt, "reason": reason},
            )
            final = 0 < self.max_deliver <= attempt
            status: ReceiptStatus = "dead_lettered" if final else "failed"
            return self._receipt(event.key, seq, attempt, status, received_at, reason)
        self._seen.add(event.key)
        return self._receipt(event.key, seq, attempt, "acknowledged", received_at)

    def _receipt(
        self,
        key: str,
        seq: int,
        attempt: int,
        status: ReceiptStatus,
        received_at: datetime,
        reason: str | None = None,
    ) -> Receipt:
        source, _, event_id = key.partition("/")
        return Receipt(
            event_source=source,
            event_id=event_id,
            recipient=self.org,
            status=status,
            delivery_seq=seq,
            deliveries=attempt,
            received_at=received_at,
            finished_at=datetime.now(UTC),
            reason=reason[:2000] if reason else None,
            agent=AGENT,
        )

    async def _send(self, batch: ReceiptBatch) -> bool:
        """Store the batch's receipts; ``False`` when JetStream did not confirm in time."""
        try:
            await self.js.publish(
                self.wire.receipts(self.org),
                batch.model_dump_json().encode(),
                timeout=self.timeout_s,
            )
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning(
                "recipient.receipts_unconfirmed", extra={"org": self.org, "error": repr(exc)}
            )
            return False
        return True

    async def _settle(self, msg: Msg, receipt: Receipt, stored: bool) -> None:
        if receipt.status == "failed":
            await msg.nak(delay=self._delay(receipt.deliveries))
        elif not stored:
            # no receipt, no ack: the delivery comes back and the receipt is sent again
            await msg.nak(delay=self._delay(1))
        elif receipt.status == "acknowledged":
            await msg.ack()
        else:
            await msg.term()

    def _delay(self, attempt: int) -> float:
        return self.backoff_s[min(attempt, len(self.backoff_s)) - 1]


def _parse_time(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
