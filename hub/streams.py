"""The hub's JetStream streams and consumers, declared once, and the event store on top of them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from hub.config import HubSettings
from hub.envelope import dump_quarantine
from hub.ingest import StoreUnavailable
from schemas.replies import FieldError
from schemas.wire import Wire

log = logging.getLogger(__name__)

DAY_S = 86400.0
HEADROOM_BYTES = 64 * 1024  # headers: the recipient list of a large county, ids, times


def stream_configs(settings: HubSettings) -> list[StreamConfig]:
    """Every stream the hub needs, with its durability and retention."""
    w = settings.wire

    def config(
        name: str, subject: str, description: str, max_age: float | None = None
    ) -> StreamConfig:
        return StreamConfig(
            name=name,
            description=description,
            subjects=[f"{w.root}.{subject}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,  # full store: refuse new writes, never drop records
            num_replicas=settings.replicas,
            duplicate_window=settings.dedup_window_s,
            max_msg_size=settings.max_event_bytes + HEADROOM_BYTES,
            allow_direct=True,
            max_age=max_age,
        )

    return [
        config(w.events_stream, "events", "已受理的事件，每个一份（共享记录）"),
        config(
            w.deliveries_stream,
            "deliver",
            "每个接收单位一份的投递副本",
            max_age=90 * DAY_S,
        ),
        config(w.receipts_stream, "receipts", "接收单位的签收和死信回执"),
        config(w.quarantine_stream, "quarantine", "被拒收的消息及原因"),
    ]


def delivery_consumer_config(settings: HubSettings, wire: Wire, recipient: str) -> ConsumerConfig:
    """The durable consumer one recipient reads through."""
    name = wire.delivery_consumer(recipient)
    return ConsumerConfig(
        name=name,
        durable_name=name,
        description=f"{recipient} 的投递",
        filter_subject=wire.deliver_filter(recipient),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_s,
        max_deliver=settings.max_deliver,
        max_ack_pending=settings.max_ack_pending,
        num_replicas=settings.replicas,
    )


def fanout_consumer_config(settings: HubSettings) -> ConsumerConfig:
    """The hub's own consumer of accepted events, which writes the recipients' copies."""
    w = settings.wire
    return ConsumerConfig(
        name=w.fanout_consumer,
        durable_name=w.fanout_consumer,
        description="枢纽分发",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_s,
        max_deliver=-1,  # an accepted event is retried until every copy is stored
        max_ack_pending=settings.max_ack_pending * 4,
        num_replicas=settings.replicas,
    )


async def ensure_streams(js: JetStreamContext, settings: HubSettings) -> None:
    """Create the streams, or bring an existing one to the configured settings."""
    for config in stream_configs(settings):
        try:
            await js.stream_info(config.name or "")
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
            log.info("stream.created", extra={"stream": config.name})
        else:
            await js.update_stream(config)


def ledger_consumer_config(settings: HubSettings) -> ConsumerConfig:
    """The ledger's consumer of a stream (events or receipts)."""
    w = settings.wire
    return ConsumerConfig(
        name=w.ledger_consumer,
        durable_name=w.ledger_consumer,
        description="枢纽台账",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_s,
        max_deliver=-1,  # the ledger must see every record; it retries until the write commits
        max_ack_pending=settings.max_ack_pending * 4,
        num_replicas=settings.replicas,
    )


async def ensure_consumers(
    js: JetStreamContext, settings: HubSettings, recipients: Iterable[str]
) -> None:
    """Create (or update) the hub's consumers and one durable consumer per recipient."""
    w = settings.wire
    await js.add_consumer(w.events_stream, fanout_consumer_config(settings))
    await js.add_consumer(w.events_stream, ledger_consumer_config(settings))
    await js.add_consumer(w.receipts_stream, ledger_consumer_config(settings))
    for recipient in recipients:
        await js.add_consumer(w.deliveries_stream, delivery_consumer_config(settings, w, recipient))


class JetStreamStore:
    """The event store of ``hub.ingest`` on JetStream."""

    def __init__(self, js: JetStreamContext, timeout: float) -> None:
        self.js, self.timeout = js, timeout

    async def store(self, subject: str, body: bytes, headers: dict[str, str]) -> tuple[int, bool]:
        """Store an event and wait for JetStream's acknowledgement."""
        ack = await self._publish(subject, body, headers)
        return ack.seq, bool(ack.duplicate)

    async def quarantine(self, subject: str, raw: bytes, errors: tuple[FieldError, ...]) -> int:
        """Keep a rejected message with its reasons."""
        body = dump_quarantine(
            subject=subject, raw=raw, errors=errors, received_at=datetime.now(UTC)
        )
        ack = await self._publish(subject, body, None)
        return int(ack.seq)

    async def _publish(self, subject: str, body: bytes, headers: dict[str, str] | None) -> PubAck:
        try:
            return await self.js.publish(subject, body, timeout=self.timeout, headers=headers)
        except (TimeoutError, nats.errors.Error) as exc:
            raise StoreUnavailable(type(exc).__name__ + (f": {exc}" if str(exc) else "")) from exc
