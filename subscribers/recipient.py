"""The SDK a township or department system embeds to receive what is shared with it.

::

    nc = await nats.connect(url)
    recipient = Recipient(nc, "renqiu-chuan")
    await recipient.run(handle, stop)        # handle(event, delivery) -> None

Deliveries come as bundles (``schemas.delivery``); each event reaches the handler in publication
order. When the handler returns, the SDK records an ``acknowledged`` receipt; when it raises, a
``failed`` one with the reason, and the bundle comes back after a growing delay; after the
consumer's last attempt the receipt is ``dead_lettered``. The receipts of a batch are stored before
the bundles are acknowledged. An event whose handler already succeeded in this process is not
handed over again (a redelivered bundle, or a repeat after a crash, is absorbed by event key);
across restarts of the embedding system, handlers should be idempotent on ``event.key``.

Every bundle must carry the hub's signature, checked against the hub's key in the organisation's
credentials file: a bundle without it (written into the stream by anyone but the hub, or changed
since) never reaches the handler; it is logged, counted (``forged``) and dropped. Receipts are
signed with the organisation's own key, so that nobody else can acknowledge in its name.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from pydantic import ValidationError

from schemas.delivery import BundledEvent, DeliveryBundle
from schemas.envelope import DELIVERED, Event
from schemas.receipt import Receipt, ReceiptBatch, ReceiptStatus
from schemas.wire import (
    CONSUMER_BACKOFF_KEY,
    HEADER_KEY_CHAIN,
    HEADER_MSG_ID,
    HEADER_SIGNATURE,
    Wire,
)
from subscribers.connection import credentials_of, identity_of, while_unavailable
from subscribers.consume import READER_IDLE_WAIT_S, pull_batches
from subscribers.credentials import seed_of
from subscribers.errors import HubKeyMissing, HubNotFound, ReaderConflict, check_identity
from subscribers.signing import (
    NkeySigner,
    Signer,
    follow_keys,
    parse_chain,
    signing_input,
    verify,
)

log = logging.getLogger(__name__)

AGENT = "subscribers/0.1.0"
RECEIPTS_PER_MESSAGE = 1000
DEFAULT_BACKOFF_S = (2.0, 10.0, 60.0, 300.0, 900.0)  # when the hub does not say
SETTLE_S = 0.5


@dataclass(frozen=True)
class Delivery:
    """What the hub says about one delivery of an event to this recipient."""

    recipient: str
    seq: int  # the bundle's sequence in the deliveries stream
    attempt: int  # how many times the bundle has been delivered
    published_at: datetime
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


def signed_by_hub(hub_key: str, msg: Msg) -> bool:
    """Whether a delivery bundle carries the hub's signature over its subject, id and body.

    After the hub rotated its key, a bundle carries the chain of endorsements from ``hub_key``
    (the key in the credentials file) to the key that signed it.
    """
    headers = msg.headers or {}
    signed = signing_input(msg.subject, headers.get(HEADER_MSG_ID, ""), msg.data)
    signature = headers.get(HEADER_SIGNATURE, "")
    keys = follow_keys(hub_key, parse_chain(headers.get(HEADER_KEY_CHAIN)))
    return any(verify(key, signed, signature) for key in reversed(keys))


class Recipient:
    """Receives one organisation's deliveries through its durable consumer."""

    def __init__(
        self,
        nc: Client,
        org: str,
        *,
        wire: Wire | None = None,
        backoff_s: tuple[float, ...] | None = None,
        timeout_s: float = 5.0,
        batch: int = 64,
        seen_capacity: int = 100_000,
        exclusive: bool = True,
        hub_key: str | None = None,
        signer: Signer | None = None,
    ) -> None:
        """Prepare to receive as ``org``.

        Args:
            nc: a connection (``subscribers.connect``).
            org: the organisation's registry id.
            wire: the hub's subject root, when it is not ``hub``.
            backoff_s: delays before each retry after the handler failed; by default the hub's
                (``HUB_BACKOFF_S``, carried by the organisation's consumer).
            timeout_s: deadline of each request to NATS.
            batch: bundles fetched at once.
            seen_capacity: event keys remembered to absorb repeats.
            exclusive: refuse to start while another program reads the organisation's
                deliveries (it would take part of them); ``False`` for several instances of one
                system that share the work on purpose.
            hub_key: the hub's signing key; by default the one in the connection's credentials.
            signer: signs the receipts; by default the seed of the connection's credentials.

        Raises:
            HubKeyMissing: no hub key to check the bundles with, or no key to sign receipts.
        """
        check_identity(identity_of(nc), org)
        held = credentials_of(nc)
        self.hub_key = hub_key or (held.hub_key if held else None)
        if signer is None and held is not None:
            signer = NkeySigner(seed_of(held.path))
        if self.hub_key is None or signer is None:
            raise HubKeyMissing(org, str(held.path) if held else None)
        self.signer: Signer = signer
        self.forged = 0
        self.nc, self.org = nc, org
        self.wire = wire or Wire()
        self.js = nc.jetstream(timeout=timeout_s)
        self.backoff_s = backoff_s or DEFAULT_BACKOFF_S
        self._backoff_given = backoff_s is not None
        self.timeout_s, self.batch, self.exclusive = timeout_s, batch, exclusive
        self._seen = _Seen(seen_capacity)
        self.max_deliver = 0

    async def run(self, handler: Handler, stop: asyncio.Event) -> None:
        """Hand every delivery to ``handler`` until ``stop`` is set.

        Raises:
            HubNotFound: the organisation has no consumer under this subject root.
            ReaderConflict: another program already reads the organisation's deliveries.
        """
        sub = await self.prepare()
        try:
            reading = pull_batches(sub, stop, batch=self.batch, idle_wait_s=READER_IDLE_WAIT_S)
            async for msgs in reading:
                try:
                    await self.process(msgs, handler)
                except nats.errors.Error as exc:
                    # connection lost mid-batch: what was not acked comes back (handled once)
                    log.warning(
                        "recipient.batch_interrupted", extra={"org": self.org, "error": repr(exc)}
                    )
        finally:
            await sub.unsubscribe()

    async def prepare(self) -> JetStreamContext.PullSubscription:
        """Bind to the organisation's consumer, taking the hub's retry settings from it.

        ``run`` calls it; a program that fetches bundles itself (the HTTP gateway) calls it and
        hands each fetched batch to ``process``.
        A cluster that has just started and answers "unavailable" (503) is waited out (up to
        ``subscribers.connection.UNAVAILABLE_WAIT_S``).

        Raises:
            HubNotFound: the organisation has no consumer under this subject root.
            ReaderConflict: another program already reads the organisation's deliveries.
        """
        consumer = self.wire.delivery_consumer(self.org)
        info = await while_unavailable(lambda: self._consumer_info(consumer), "recipient.prepare")
        if self.exclusive:
            await self._check_alone(consumer, info)
        self.max_deliver = int(info.config.max_deliver or 0)
        hub_backoff = (info.config.metadata or {}).get(CONSUMER_BACKOFF_KEY)
        if hub_backoff and not self._backoff_given:
            self.backoff_s = tuple(float(v) for v in hub_backoff.split(","))
        return await self.js.pull_subscribe_bind(
            durable=consumer, stream=self.wire.deliveries_stream
        )

    async def _consumer_info(self, consumer: str) -> ConsumerInfo:
        try:
            info: ConsumerInfo = await self.js.consumer_info(self.wire.deliveries_stream, consumer)
        except nats.js.errors.NotFoundError as exc:
            raise HubNotFound(f"消费者 {consumer}", self.wire.root) from exc
        return info

    async def _check_alone(self, consumer: str, info: ConsumerInfo) -> None:
        """Refuse to share the consumer with a reader that is already pulling from it.

        A live reader always has a pull request waiting (renewed every ``READER_IDLE_WAIT_S``); one
        left by a reader that has just stopped expires within that time, so a second look tells
        them apart.
        """
        if not info.num_waiting:
            return
        await asyncio.sleep(READER_IDLE_WAIT_S + SETTLE_S)  # a departed reader's request expires
        again = await self._consumer_info(consumer)
        if again.num_waiting:
            raise ReaderConflict(self.org, int(again.num_waiting))

    async def process(self, msgs: list[Msg], handler: Handler) -> None:
        """Hand every event of a batch of bundles over in order, send receipts, settle bundles."""
        outcomes = [await self._handle_bundle(msg, handler) for msg in msgs]
        stored = await self._send([r for receipts in outcomes for r in receipts])
        for msg, receipts in zip(msgs, outcomes, strict=True):
            await self._settle(msg, receipts, stored)

    async def _handle_bundle(self, msg: Msg, handler: Handler) -> list[Receipt]:
        received_at = datetime.now(UTC)
        meta = msg.metadata  # parsed from the reply subject on every access: read it once
        seq, attempt = meta.sequence.stream, meta.num_delivered
        if not self._signed_by_hub(msg):
            self.forged += 1
            log.error(
                "recipient.bundle_forged",
                extra={"org": self.org, "seq": seq, "subject": msg.subject},
            )
            return []
        try:
            bundle = DeliveryBundle.model_validate_json(msg.data, context=DELIVERED)
        except ValidationError as exc:
            log.error(
                "recipient.bundle_unreadable",
                extra={"org": self.org, "seq": seq, "errors": exc.error_count()},
            )
            return []
        return [
            await self._handle(item, seq, attempt, received_at, handler) for item in bundle.items
        ]

    def _signed_by_hub(self, msg: Msg) -> bool:
        return self.hub_key is not None and signed_by_hub(self.hub_key, msg)

    async def _handle(
        self, item: BundledEvent, seq: int, attempt: int, received_at: datetime, handler: Handler
    ) -> Receipt:
        event = item.event
        if event.key in self._seen:
            return self._receipt(event.key, seq, attempt, "acknowledged", received_at)
        delivery = Delivery(
            recipient=self.org,
            seq=seq,
            attempt=attempt,
            published_at=item.published_at,
            received_at=received_at,
            redacted=item.redacted,
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

    async def _send(self, receipts: list[Receipt]) -> bool:
        """Store the receipts; ``False`` when JetStream did not confirm them in time."""
        for start in range(0, len(receipts), RECEIPTS_PER_MESSAGE):
            chunk = tuple(receipts[start : start + RECEIPTS_PER_MESSAGE])
            batch = ReceiptBatch(recipient=self.org, receipts=chunk)
            subject, body = self.wire.receipts(self.org), batch.model_dump_json().encode()
            signature = self.signer.sign(signing_input(subject, "", body))
            try:
                await self.js.publish(
                    subject, body, timeout=self.timeout_s, headers={HEADER_SIGNATURE: signature}
                )
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning(
                    "recipient.receipts_unconfirmed", extra={"org": self.org, "error": repr(exc)}
                )
                return False
        return True

    async def _settle(self, msg: Msg, receipts: list[Receipt], stored: bool) -> None:
        if not receipts:
            await msg.term()  # unreadable (logged): redelivering it would not help
        elif any(r.status == "failed" for r in receipts):
            # back later; what was handled already is not handed over again
            await msg.nak(delay=self._delay(receipts[0].deliveries))
        elif not stored:
            # no receipt, no ack: the bundle comes back and the receipts are sent again
            await msg.nak(delay=self._delay(1))
        else:
            await msg.ack()

    def _delay(self, attempt: int) -> float:
        return self.backoff_s[min(attempt, len(self.backoff_s)) - 1]
