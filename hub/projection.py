"""Keeping the ledger in step with the streams, live and from scratch.

The events and receipts streams are the record; the ledger is derived from them. Live, the hub reads
both through durable consumers and acknowledges a batch only after the ledger committed it. A
rebuild reads both streams from the first message to the last and writes the same rows.

The time a receipt counts as acknowledged is when the receipts stream stored it (the NATS server's
clock), not what the recipient's own clock says.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from hub.audit.trust import RecordTrust
from hub.cases.state import CaseState
from hub.config import HubSettings
from hub.ledger import CaseStep, EventRecord, Ledger, ReceiptRecord
from hub.streams import read_stream
from hub.turns import in_turns
from schemas.envelope import DELIVERED, EVENT_ADAPTER, summary_zh
from schemas.receipt import Receipt, ReceiptBatch
from schemas.wire import (
    HEADER_CASE_STATE,
    HEADER_MSG_ID,
    HEADER_PUBLISHED_AT,
    HEADER_RECIPIENTS,
    Wire,
)
from subscribers.consume import pull_batches

log = logging.getLogger(__name__)

RETRY_PAUSE_S = 1.0

ReceiptTime = Callable[[Receipt, datetime], datetime]
"""When a receipt counts as acknowledged, given the receipt and the store's timestamp."""
Apply = Callable[[list[Msg]], Awaitable[None]]
T = TypeVar("T")
Progress = Callable[[str, int, int], None]
"""Rebuild progress: stream name, messages read, messages in the stream."""


def stored_at(receipt: Receipt, stored: datetime) -> datetime:
    """The default receipt time: when the hub's store received it."""
    return stored


class ForeignRecord(ValueError):
    """A message the ledger cannot take: not written by the hub, or a receipt for someone else."""


class NotACaseStep(ValueError):
    """An event that belongs to no case (an Art. 15 event): nothing to record about cases."""


def event_record(msg: Msg, trust: RecordTrust) -> EventRecord:
    """The ledger's view of one message of the events stream (only the hub's, sealed, count)."""
    headers = msg.headers or {}
    if not trust.hub_sealed(msg.subject, headers, msg.data):
        raise ForeignRecord(f"events seq {msg.metadata.sequence.stream}: not sealed by the hub")
    try:
        key, recipients = headers[HEADER_MSG_ID], headers[HEADER_RECIPIENTS]
        published_at = datetime.fromisoformat(headers[HEADER_PUBLISHED_AT])
        event = EVENT_ADAPTER.validate_json(msg.data, context=DELIVERED)
    except (KeyError, ValueError, ValidationError) as exc:
        raise ForeignRecord(f"events seq {msg.metadata.sequence.stream}: {exc}") from exc
    return EventRecord(
        key=key,
        source=event.source,
        event_id=event.id,
        category=event.category,
        type=event.type,
        formed_at=event.time,
        published_at=published_at,
        events_seq=msg.metadata.sequence.stream,
        recipients=tuple(r for r in recipients.split(",") if r),
        summary=summary_zh(event),
    )


def case_step(msg: Msg, trust: RecordTrust) -> CaseStep:
    """The case after a step (``NotACaseStep`` for an Art. 15 event)."""
    headers = msg.headers or {}
    state = headers.get(HEADER_CASE_STATE)
    if state is None:
        raise NotACaseStep
    if not trust.hub_sealed(msg.subject, headers, msg.data):
        raise ForeignRecord(f"events seq {msg.metadata.sequence.stream}: not sealed by the hub")
    try:
        return CaseStep(msg.metadata.sequence.stream, CaseState.model_validate_json(state))
    except ValidationError as exc:
        raise ForeignRecord(
            f"events seq {msg.metadata.sequence.stream}: case state: {exc}"
        ) from exc


def receipt_records(
    msg: Msg, wire: Wire, trust: RecordTrust, receipt_time: ReceiptTime = stored_at
) -> list[ReceiptRecord]:
    """The ledger's view of one receipts message.

    Only an organisation's own receipts count, signed with its key, and the hub's dead-letter
    receipts, sealed.
    """
    meta = msg.metadata  # parsed on every access: once
    seq = meta.sequence.stream
    if trust.receipt_writer(msg.subject, msg.headers or {}, msg.data) is None:
        sender = wire.org_of_receipts(msg.subject)
        raise ForeignRecord(f"receipts seq {seq}: not signed by {sender} nor sealed by the hub")
    try:
        batch = ReceiptBatch.model_validate_json(msg.data)
    except ValidationError as exc:
        raise ForeignRecord(f"receipts seq {seq}: {exc.error_count()} error(s)") from exc
    sender = wire.org_of_receipts(msg.subject)
    if batch.recipient != sender:
        raise ForeignRecord(f"receipts seq {seq}: {sender} sent receipts for {batch.recipient}")
    return [ReceiptRecord(r, receipt_time(r, meta.timestamp), seq) for r in batch.receipts]


async def _readable(msgs: list[Msg], read: Callable[[Msg], T]) -> list[T]:
    """What ``read`` makes of each message (logged and left out: another identity's).

    Each receipt batch's signature is checked here, so the event loop runs between turns.
    """
    found = []
    async for msg in in_turns(msgs):
        try:
            found.append(read(msg))
        except NotACaseStep:
            continue
        except ForeignRecord as exc:
            log.error("ledger.foreign_record", extra={"why": str(exc)})
    return found


def applier(
    ledger: Ledger,
    wire: Wire,
    stream: str,
    trust: RecordTrust,
    receipt_time: ReceiptTime = stored_at,
) -> Apply:
    """How a batch of ``stream``'s messages goes into the ledger."""
    if stream == wire.events_stream:
        events = functools.partial(event_record, trust=trust)
        steps = functools.partial(case_step, trust=trust)

        async def apply_events(msgs: list[Msg]) -> None:
            await ledger.apply(await _readable(msgs, events), [], await _readable(msgs, steps))

        return apply_events

    async def apply_receipts(msgs: list[Msg]) -> None:
        read = functools.partial(receipt_records, wire=wire, trust=trust, receipt_time=receipt_time)
        batches = await _readable(msgs, read)
        await ledger.apply([], [record for batch in batches for record in batch])

    return apply_receipts


class Projector:
    """Applies new events and receipts to the ledger as they are stored."""

    def __init__(
        self,
        js: JetStreamContext,
        settings: HubSettings,
        ledger: Ledger,
        trust: RecordTrust,
        *,
        receipt_time: ReceiptTime = stored_at,
    ) -> None:
        self.js, self.settings, self.ledger, self.trust = js, settings, ledger, trust
        self.wire = settings.wire
        self.receipt_time = receipt_time

    async def run(self, stop: asyncio.Event) -> None:
        """Follow both streams until ``stop`` is set."""
        async with asyncio.TaskGroup() as tasks:
            for stream in (self.wire.events_stream, self.wire.receipts_stream):
                tasks.create_task(self.follow(stream, stop))

    async def follow(self, stream: str, stop: asyncio.Event) -> None:
        """Apply ``stream``'s new messages until ``stop`` is set."""
        apply = applier(self.ledger, self.wire, stream, self.trust, self.receipt_time)
        sub = await self.js.pull_subscribe_bind(durable=self.wire.ledger_consumer, stream=stream)
        try:
            async for msgs in pull_batches(sub, stop, batch=512):
                try:
                    await apply(msgs)
                except (DBAPIError, OSError) as exc:
                    # the database is away: leave the batch unacked, it comes back
                    log.warning("ledger.write_failed", extra={"stream": stream, "error": repr(exc)})
                    await asyncio.sleep(RETRY_PAUSE_S)
                    continue
                for msg in msgs:  # only after the ledger committed: redelivery beats loss
                    await msg.ack()
        finally:
            await sub.unsubscribe()


async def rebuild(
    js: JetStreamContext,
    wire: Wire,
    ledger: Ledger,
    trust: RecordTrust,
    *,
    progress: Progress | None = None,
    batch: int = 2000,
) -> dict[str, int]:
    """Empty the ledger and replay both streams into it; returns messages read per stream.

    Reading goes on until each stream's end at the time it is reached, so events stored while the
    rebuild runs are not missed; every write is idempotent, so a live projector may run alongside.
    """
    await ledger.wipe()
    read = {}
    for stream in (wire.events_stream, wire.receipts_stream):
        apply, total, done = applier(ledger, wire, stream, trust), await _size(js, stream), 0
        async for msgs in read_stream(js, stream, batch=batch):
            await apply(msgs)
            done += len(msgs)
            if progress:
                progress(stream, done, max(total, done))
        read[stream] = done
    return read


async def _size(js: JetStreamContext, stream: str) -> int:
    return int((await js.stream_info(stream)).state.messages)
