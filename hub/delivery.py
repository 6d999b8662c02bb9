"""Fan-out: every accepted event becomes one stored copy per recipient, in acceptance order.

The hub reads accepted events through its durable consumer and acknowledges an event only after
JetStream confirmed every recipient's copy; a crash in between redelivers the event, and the copies'
de-duplication ids make the second write a no-op. Recipients not entitled to the complainant's
personal data get a copy without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck

from hub.config import HubSettings
from hub.envelope import without_complainant
from schemas.wire import (
    HEADER_MSG_ID,
    HEADER_PERSONAL_DATA_TO,
    HEADER_PUBLISHED_AT,
    HEADER_RECIPIENTS,
    HEADER_REDACTED,
)
from subscribers.consume import pull_batches

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0


class ForeignMessage(ValueError):
    """A message in the events stream that the hub's ingest did not write."""


class FanOut:
    """Writes the recipients' copies of accepted events."""

    def __init__(self, js: JetStreamContext, settings: HubSettings, *, batch: int = 128) -> None:
        self.js, self.settings, self.batch = js, settings, batch
        self.wire = settings.wire

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver accepted events until ``stop`` is set."""
        sub = await self.js.pull_subscribe_bind(
            durable=self.wire.fanout_consumer, stream=self.wire.events_stream
        )
        try:
            async for msgs in pull_batches(sub, stop, batch=self.batch):
                try:
                    await self.deliver(msgs)
                except nats.errors.Error as exc:
                    # connection lost mid-batch: unacked events come back after the ack wait
                    log.warning("fanout.batch_interrupted", extra={"error": repr(exc)})
        finally:
            await sub.unsubscribe()

    async def deliver(self, msgs: list[Msg]) -> None:
        """Write every copy of a batch, then acknowledge each event whose copies were stored."""
        pending: list[tuple[Msg, list[asyncio.Future[PubAck]]]] = []
        for msg in msgs:
            try:
                copies = list(self.copies(msg))
            except ForeignMessage as exc:
                log.error("fanout.foreign_message", extra={"subject": msg.subject, "why": str(exc)})
                await msg.term()  # not written by the hub's ingest: nothing was accepted
                continue
            futures = [
                await self.js.publish_async(subject, body, headers=headers)
                for subject, body, headers in copies
            ]
            pending.append((msg, futures))
        stored = await self._stored([f for _, futures in pending for f in futures])
        for msg, futures in pending:
            if all(f in stored for f in futures):
                await msg.ack()
            else:
                await msg.nak(delay=RETRY_DELAY_S)

    async def _stored(self, futures: list[asyncio.Future[PubAck]]) -> set[asyncio.Future[PubAck]]:
        """The copies JetStream confirmed within one deadline for the whole batch."""
        if not futures:
            return set()
        done, late = await asyncio.wait(futures, timeout=self.settings.request_timeout_s)
        for future in late:
            future.cancel()  # lost with a connection: the event is retried as a whole
        stored = set()
        for future in done:
            failure = future.exception()
            if failure is None:
                stored.add(future)
            elif isinstance(failure, nats.errors.Error | TimeoutError):
                log.warning("fanout.copy_failed", extra={"error": type(failure).__name__})
            else:
                raise failure
        if late:
            log.warning("fanout.copies_unconfirmed", extra={"copies": len(late)})
        return stored

    def copies(self, msg: Msg) -> Iterator[tuple[str, bytes, dict[str, str]]]:
        """The (subject, body, headers) of every recipient's copy of one accepted event."""
        headers = msg.headers or {}
        key = headers.get(HEADER_MSG_ID)
        if not key or HEADER_RECIPIENTS not in headers:
            raise ForeignMessage("no event key or recipient list in the headers")
        category = msg.subject.rsplit(".", 1)[-1]
        recipients = [r for r in headers.get(HEADER_RECIPIENTS, "").split(",") if r]
        entitled = set(filter(None, headers.get(HEADER_PERSONAL_DATA_TO, "").split(",")))
        redacted = without_complainant(msg.data) if entitled else msg.data
        for recipient in recipients:
            copy_headers = {
                HEADER_MSG_ID: self.wire.delivery_msg_id(key, recipient),
                HEADER_PUBLISHED_AT: headers.get(HEADER_PUBLISHED_AT, ""),
            }
            body = msg.data
            if entitled and recipient not in entitled:
                body = redacted
                copy_headers[HEADER_REDACTED] = "complainant"
            yield self.wire.deliver(recipient, category), body, copy_headers
