"""The hub's JetStream streams and consumers, declared once, and the event store on top of them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
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

from hub.audit.trust import RecordTrust
from hub.cases.desk import CaseRaced, LastStep
from hub.cases.state import CaseState
from hub.config import HubSettings, bundle_bytes
from hub.envelope import quarantine_headers
from hub.ingest import StoreUnavailable
from schemas.replies import FieldError
from schemas.wire import CONSUMER_BACKOFF_KEY, HEADER_CASE_STATE, Wire

log = logging.getLogger(__name__)

DAY_S = 86400.0
HEADROOM_BYTES = 64 * 1024  # headers: the recipient list of a large county, ids, times
MAX_RECIPIENTS = 100_000  # China has about 2,800 county-level units and 38,000 townships
CHECKPOINT_BYTES = 1024 * 1024  # a checkpoint of a few thousand entries, well within max_payload
READ_TIMEOUT_S = 10.0  # a stream read stalls this long only if the server stops answering
STREAM_NOT_FOUND = 10059  # JetStream's error codes
WRONG_LAST_SEQUENCE = 10071


def stream_configs(settings: HubSettings) -> list[StreamConfig]:
    """Every stream the hub needs, with its durability and retention."""
    w = settings.wire

    def config(
        name: str,
        subject: str,
        description: str,
        max_age: float | None = None,
        any_size: bool = False,
        max_msg_size: int | None = None,
        max_consumers: int | None = None,
    ) -> StreamConfig:
        return StreamConfig(
            name=name,
            description=description,
            subjects=[subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,  # full store: refuse new writes, never drop records
            num_replicas=settings.replicas,
            duplicate_window=settings.dedup_window_s,
            # quarantine keeps whatever arrived, up to the server's max_payload
            max_msg_size=-1
            if any_size
            else max_msg_size or settings.max_event_bytes + HEADROOM_BYTES,
            allow_direct=True,
            max_age=max_age,
            max_consumers=max_consumers,
            deny_delete=True,  # the record: no message is removed through the API
            deny_purge=True,
        )

    quarantine = config(
        w.quarantine_stream, f"{w.root}.quarantine.>", "被拒收的消息及原因", any_size=True
    )
    # bounded, so that a flood cannot fill the disk: each publisher keeps its newest rejections
    quarantine.discard = DiscardPolicy.OLD
    quarantine.max_msgs_per_subject = settings.quarantine_per_org
    quarantine.max_bytes = settings.quarantine_max_bytes
    quarantine.max_age = settings.quarantine_max_age_s

    return [
        config(w.events_stream, f"{w.root}.events.>", "已受理的事件，每个一份（共享记录）"),
        config(
            w.deliveries_stream,
            f"{w.root}.deliver.>",
            "各接收单位的投递包（按发布顺序）",
            max_age=90 * DAY_S,
            max_msg_size=bundle_bytes(settings) + HEADROOM_BYTES,
            # one consumer per organisation: past JetStream's default cap of 1,000 in a province
            max_consumers=MAX_RECIPIENTS,
        ),
        config(w.receipts_stream, f"{w.root}.receipts.>", "接收单位的签收和死信回执"),
        quarantine,
        config(
            w.advisories_stream,
            w.max_deliveries_advisories,
            "接收单位超过最大投递次数仍未签收的通告",
            max_age=90 * DAY_S,
        ),
        config(
            w.audit_stream,
            f"{w.root}.audit.>",
            "枢纽签名、逐个链接的审计检查点（记录未被篡改的凭证）",
            max_msg_size=CHECKPOINT_BYTES,
        ),
    ]


def delivery_consumer_config(settings: HubSettings, wire: Wire, recipient: str) -> ConsumerConfig:
    """The durable consumer one recipient reads through."""
    name = wire.delivery_consumer(recipient)
    return ConsumerConfig(
        name=name,
        durable_name=name,
        description=f"{recipient} 的投递",
        filter_subject=wire.deliver(recipient),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_s,
        max_deliver=settings.max_deliver,
        max_ack_pending=settings.max_ack_pending,
        num_replicas=settings.replicas,
        # read by the SDK: the delays before retrying after a handler failed (HUB_BACKOFF_S)
        metadata={CONSUMER_BACKOFF_KEY: ",".join(f"{d:g}" for d in settings.backoff_s)},
    )


def hub_consumers(settings: HubSettings) -> list[tuple[str, ConsumerConfig]]:
    """(stream, config) of each of the hub's own durable consumers."""
    w = settings.wire
    return [
        (w.events_stream, hub_consumer_config(settings, w.fanout_consumer)),
        (w.events_stream, hub_consumer_config(settings, w.ledger_consumer)),
        (w.receipts_stream, hub_consumer_config(settings, w.ledger_consumer)),
        (w.advisories_stream, hub_consumer_config(settings, w.advisories_consumer)),
    ]


HUB_ACK_WAIT_S = 10.0


def hub_consumer_config(settings: HubSettings, name: str) -> ConsumerConfig:
    """One of the hub's own durable consumers; it retries a message until it is processed."""
    return ConsumerConfig(
        name=name,
        durable_name=name,
        description=f"枢纽 {name}",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        # a batch takes the hub well under a second; what a process that died held comes back
        # this long after it was handed out (fan-out after a failover waits for it: hub.delivery)
        ack_wait=min(settings.ack_wait_s, HUB_ACK_WAIT_S),
        max_deliver=-1,  # never give up: an accepted event or a receipt must be processed
        max_ack_pending=settings.max_ack_pending * 4,
        num_replicas=settings.replicas,
    )


@dataclass(frozen=True)
class StreamGaps:
    """What a stream says it no longer holds: before ``first_seq``, after ``last_seq``, deleted."""

    first_seq: int
    last_seq: int
    deleted: frozenset[int]


async def stream_gaps(nc: Client, stream: str) -> StreamGaps:
    """The stream's first and last sequence and its deleted messages, in one API request.

    nats-py's ``stream_info`` does not ask for the deleted sequences, so the request is made here.
    """
    reply = await nc.request(
        f"$JS.API.STREAM.INFO.{stream}",
        orjson.dumps({"deleted_details": True}),
        timeout=READ_TIMEOUT_S,
    )
    info = orjson.loads(reply.data)
    if "error" in info:
        error = info["error"]
        if error.get("err_code") == STREAM_NOT_FOUND:
            raise nats.js.errors.NotFoundError(description=error.get("description"))
        raise nats.js.errors.APIError(description=str(error.get("description", error)))
    state = info["state"]
    return StreamGaps(
        first_seq=int(state.get("first_seq", 0)),
        last_seq=int(state.get("last_seq", 0)),
        deleted=frozenset(int(s) for s in state.get("deleted") or ()),
    )


async def read_stream(
    js: JetStreamContext, stream: str, *, batch: int = 2000, headers_only: bool = False
) -> AsyncIterator[list[Msg]]:
    """Every message of ``stream`` from the first, in batches, up to its end when reached."""
    info = await js.stream_info(stream)
    if not info.state.messages:
        return
    sub = await js.subscribe(
        (info.config.subjects or [">"])[0],
        stream=stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        headers_only=headers_only,
    )
    try:
        pending: list[Msg] = []
        while True:
            msg = await sub.next_msg(timeout=READ_TIMEOUT_S)
            pending.append(msg)
            caught_up = msg.metadata.num_pending == 0
            if len(pending) >= batch or caught_up:
                yield pending
                pending = []
            if caught_up:
                return
    finally:
        await sub.unsubscribe()


async def read_range(
    js: JetStreamContext,
    stream: str,
    start: int,
    end: int,
    *,
    batch: int = 1000,
    wait_s: float = READ_TIMEOUT_S,
) -> AsyncIterator[list[Msg]]:
    """The messages of ``stream`` with ``start`` ≤ sequence ≤ ``end`` (deleted ones are absent).

    Stops early when the server sends nothing for ``wait_s`` (a message it cannot read, say).
    """
    info = await js.stream_info(stream)
    if end < start or info.state.last_seq < start or not info.state.messages:
        return
    sub = await js.subscribe(
        (info.config.subjects or [">"])[0],
        stream=stream,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start),
    )
    try:
        pending: list[Msg] = []
        while True:
            try:
                msg = await sub.next_msg(timeout=wait_s)
            except TimeoutError:  # nothing more: deleted, or not readable
                break
            seq = msg.metadata.sequence.stream
            if seq > end:
                break
            pending.append(msg)
            if seq == end or msg.metadata.num_pending == 0:
                break
            if len(pending) >= batch:
                yield pending
                pending = []
        if pending:
            yield pending
    finally:
        await sub.unsubscribe()


class JetStreamStore:
    """The event store of ``hub.ingest`` on JetStream."""

    def __init__(
        self, js: JetStreamContext, wire: Wire, timeout: float, trust: RecordTrust
    ) -> None:
        self.js, self.wire, self.timeout, self.trust = js, wire, timeout, trust

    async def store(self, subject: str, body: bytes, headers: dict[str, str]) -> tuple[int, bool]:
        """Store an event, sealed, and wait for JetStream's acknowledgement."""
        ack = await self._publish(subject, body, self.trust.seal(subject, headers, body))
        return ack.seq, bool(ack.duplicate)

    async def quarantine(self, subject: str, raw: bytes, errors: tuple[FieldError, ...]) -> int:
        """Keep a rejected message, byte for byte, with its reasons."""
        headers = quarantine_headers(errors, datetime.now(UTC))
        ack = await self._publish(subject, raw, headers)
        return int(ack.seq)

    async def last(self, subject: str) -> LastStep | None:
        """The latest case step stored on ``subject``, with the case's state after it."""
        try:
            found = await self.js.get_last_msg(self.wire.events_stream, subject)
        except nats.js.errors.NotFoundError:
            return None
        except (TimeoutError, nats.errors.Error) as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        state = CaseState.model_validate_json((found.headers or {})[HEADER_CASE_STATE])
        state.steps[-1].seq = found.seq  # a step's own sequence is known once it is stored
        return LastStep(int(found.seq or 0), found.data or b"", state)

    async def body(self, seq: int) -> bytes:
        """The body stored at ``seq``."""
        return await self.stored(seq)

    async def append(self, subject: str, body: bytes, headers: dict[str, str]) -> tuple[int, bool]:
        """Store a case step, sealed, if its case has not moved since it was read."""
        headers = self.trust.seal(subject, headers, body)
        try:
            ack = await self.js.publish(subject, body, timeout=self.timeout, headers=headers)
        except nats.js.errors.APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise CaseRaced(subject) from exc
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise StoreUnavailable(type(exc).__name__ + (f": {exc}" if str(exc) else "")) from exc
        return ack.seq, bool(ack.duplicate)

    async def stored(self, seq: int) -> bytes:
        """The body of the accepted event at ``seq`` (to compare a resend with)."""
        try:
            found = await self.js.get_msg(self.wire.events_stream, seq)
        except (TimeoutError, nats.errors.Error) as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        return found.data or b""

    async def _publish(self, subject: str, body: bytes, headers: dict[str, str] | None) -> PubAck:
        try:
            return await self.js.publish(subject, body, timeout=self.timeout, headers=headers)
        except (TimeoutError, nats.errors.Error) as exc:
            raise StoreUnavailable(type(exc).__name__ + (f": {exc}" if str(exc) else "")) from exc
