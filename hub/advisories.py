"""Dead letters for recipients that stopped answering.

When a recipient's system dies holding a delivery, JetStream redelivers it after the ack wait;
after the consumer's last attempt it gives up and publishes a ``MAX_DELIVERIES`` advisory, and
nothing else records that the event never arrived (nats-server #7817 shows how easily such a
message vanishes). The hub captures those advisories in a stream of its own, so none is missed
while the hub is down, and writes ``dead_lettered`` receipts on the recipient's behalf.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from hub.audit.trust import RecordTrust
from hub.config import HubSettings
from hub.envelope import load_advisory
from schemas.delivery import DeliveryBundle
from schemas.envelope import DELIVERED
from schemas.receipt import Receipt, ReceiptBatch
from subscribers.consume import pull_batches

log = logging.getLogger(__name__)

AGENT = "hub/advisories"


class DeadLetters:
    """Turns max-deliveries advisories into dead-letter receipts."""

    def __init__(self, js: JetStreamContext, settings: HubSettings, trust: RecordTrust) -> None:
        self.trust = trust
        self.js, self.settings, self.wire = js, settings, settings.wire

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the advisories stream until ``stop`` is set."""
        sub = await self.js.pull_subscribe_bind(
            durable=self.wire.advisories_consumer, stream=self.wire.advisories_stream
        )
        try:
            async for msgs in pull_batches(sub, stop, batch=64):
                for msg in msgs:
                    try:
                        await self.record(msg)
                    except (nats.errors.Error, TimeoutError) as exc:
                        # left unacked: the advisory comes back and the receipt is written then
                        log.warning("deadletter.deferred", extra={"error": repr(exc)})
                        continue
                    await msg.ack()
        finally:
            await sub.unsubscribe()

    async def record(self, msg: Msg) -> None:
        """Write dead-letter receipts for the events of the abandoned bundle (idempotent).

        Events of the bundle the recipient had acknowledged already stay acknowledged: the
        ledger never lets a later receipt undo an acknowledgement.
        """
        advisory = load_advisory(msg.data)
        consumer, seq = str(advisory.get("consumer", "")), int(advisory.get("stream_seq", 0))
        recipient = consumer.removeprefix(self.wire.delivery_consumer(""))
        try:
            stored = await self.js.get_msg(self.wire.deliveries_stream, seq)
        except nats.js.errors.NotFoundError:
            log.error("deadletter.bundle_missing", extra={"consumer": consumer, "seq": seq})
            return
        if not self.trust.bundle_signed(
            stored.subject or "", stored.headers or {}, stored.data or b""
        ):
            log.error("deadletter.bundle_forged", extra={"consumer": consumer, "seq": seq})
            return  # not the hub's: no receipt on anyone's behalf
        bundle = DeliveryBundle.model_validate_json(stored.data or b"", context=DELIVERED)
        deliveries = max(int(advisory.get("deliveries", 1)), 1)
        moment = msg.metadata.timestamp  # when the server gave up (captured at once)
        reason = (
            f"接收方在 {deliveries} 次投递内均未签收（系统无响应）"
            f" / no acknowledgement after {deliveries} deliveries"
        )
        receipts = tuple(
            Receipt(
                event_source=item.event.source,
                event_id=item.event.id,
                recipient=recipient,
                status="dead_lettered",
                delivery_seq=seq,
                deliveries=deliveries,
                received_at=moment,
                finished_at=moment,
                reason=reason,
                agent=AGENT,
            )
            for item in bundle.items
        )
        batch = ReceiptBatch(recipient=recipient, receipts=receipts)
        subject, body = self.wire.receipts(recipient), batch.model_dump_json().encode()
        await self.js.publish(subject, body, headers=self.trust.seal(subject, {}, body))
        log.warning("deadletter.recorded", extra={"recipient": recipient, "events": len(receipts)})
