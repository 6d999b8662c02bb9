"""Fan-out: every accepted event reaches each of its recipients, in acceptance order.

The hub reads accepted events through its durable consumer in batches and writes, per recipient,
one bundle holding every event of the batch addressed to it; it acknowledges the batch only after
JetStream confirmed every bundle. A crash in between redelivers the events and the bundles are
written again: recipients absorb the repeats by event key, the ledger by its idempotent upserts.
Recipients not entitled to the complainant's personal data get the event without it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck

from hub.audit.trust import RecordTrust
from hub.config import HubSettings, bundle_bytes
from hub.envelope import Item, dump_bundle, without_complainant
from hub.periodic import stopped_within
from schemas.wire import (
    HEADER_MSG_ID,
    HEADER_PERSONAL_DATA_TO,
    HEADER_PUBLISHED_AT,
    HEADER_RECIPIENTS,
)
from subscribers.consume import pull_batches

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0
CLOCKS_APART_S = 1.0  # the server's clock and this one's
GATHER_FETCH_S = 0.05
"""How long the gathering fetch waits: what waits in the consumer comes at once, and this bounds an
empty answer. At 5 ms a loaded machine's event loop often took the answer too late, and what had
come during the window went into the next bundle."""


class ForeignMessage(ValueError):
    """A message in the events stream that the hub's ingest did not write."""


class FanOut:
    """Writes the recipients' copies of accepted events."""

    def __init__(
        self, js: JetStreamContext, settings: HubSettings, trust: RecordTrust, *, batch: int = 128
    ) -> None:
        self.js, self.settings, self.trust, self.batch = js, settings, trust, batch
        self.foreign = 0  # events not sealed by the hub, refused
        self.wire = settings.wire
        self.limit = bundle_bytes(settings)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver accepted events until ``stop`` is set."""
        await self._after_previous_writer(stop)
        sub = await self.js.pull_subscribe_bind(
            durable=self.wire.fanout_consumer, stream=self.wire.events_stream
        )
        try:
            async for msgs in pull_batches(sub, stop, batch=self.batch):
                if self.settings.fanout_gather_s and len(msgs) < self.batch:
                    msgs += await self._gathered(sub, self.batch - len(msgs), stop)
                await self.deliver(msgs, stop)
        finally:
            await sub.unsubscribe()

    async def _gathered(
        self, sub: JetStreamContext.PullSubscription, room: int, stop: asyncio.Event
    ) -> list[Msg]:
        """Events accepted within ``HUB_FANOUT_GATHER_S`` after a batch began (up to ``room``).

        They follow the batch in the consumer, so appending them keeps acceptance order.
        """
        if await stopped_within(stop, self.settings.fanout_gather_s):
            return []
        try:
            return await sub.fetch(room, timeout=GATHER_FETCH_S)
        except TimeoutError:  # none came
            return []
        except nats.errors.Error as exc:  # away: the batch goes as it is, the rest comes later
            log.warning("fanout.gather_failed", extra={"error": repr(exc)})
            return []

    async def _after_previous_writer(self, stop: asyncio.Event) -> None:
        """Let a previous fan-out's unacknowledged events come back before any newer one.

        A fan-out that died mid-batch (this process before a crash, or another hub process)
        leaves events delivered to it and unacknowledged; they come back ``ack_wait`` after they
        were last handed out, and JetStream hands out redeliveries before new events. Fetching at
        once would write newer events first, out of acceptance order.
        """
        try:
            info = await self.js.consumer_info(self.wire.events_stream, self.wire.fanout_consumer)
        except (nats.errors.Error, TimeoutError) as exc:  # gone or away: fetching will say so
            log.warning("fanout.previous_unknown", extra={"error": repr(exc)})
            return
        if not info.num_ack_pending:
            return
        wait_s = info.config.ack_wait or 0.0
        last = info.delivered.last_active if info.delivered else None
        if last is not None:  # they come back ack_wait after they were last handed out
            due = (last - datetime.now(UTC)).total_seconds() + wait_s + CLOCKS_APART_S
            wait_s = min(wait_s, max(0.0, due))
        log.warning(
            "fanout.waiting_for_previous", extra={"pending": info.num_ack_pending, "wait_s": wait_s}
        )
        try:
            async with asyncio.timeout(wait_s):
                await stop.wait()
        except TimeoutError:
            pass

    async def deliver(self, msgs: list[Msg], stop: asyncio.Event) -> None:
        """Write the bundles of a batch of events, then acknowledge the batch.

        A bundle JetStream did not confirm is written again (its de-duplication id makes a repeat
        harmless), and nothing newer is fetched meanwhile: a recipient's events never overtake
        each other, whatever fails. When ``stop`` is set first, the batch is left unacknowledged
        and comes back, before anything newer, to whoever plays fan-out next.
        """
        items: dict[str, list[Item]] = {}
        accepted = []
        for msg in msgs:
            try:
                for recipient, item in self.items(msg):
                    items.setdefault(recipient, []).append(item)
            except ForeignMessage as exc:
                self.foreign += 1
                log.error("fanout.foreign_message", extra={"subject": msg.subject, "why": str(exc)})
                await msg.term()  # not written by the hub's ingest: nothing was accepted
                continue
            accepted.append(msg)
        unconfirmed = [
            (subject, msg_id, body)
            for recipient, bundle in items.items()
            for subject in (self.wire.deliver(recipient),)
            for msg_id, body in self.bundles(recipient, bundle)
        ]
        while unconfirmed := await self._write(unconfirmed):
            log.warning("fanout.bundles_again", extra={"bundles": len(unconfirmed)})
            await _keep(accepted)
            if await stopped_within(stop, RETRY_DELAY_S):
                return
        for msg in accepted:
            await msg.ack()

    async def _write(self, bundles: list[tuple[str, str, bytes]]) -> list[tuple[str, str, bytes]]:
        """Write ``bundles``; those JetStream did not confirm."""
        futures = []
        try:
            for subject, msg_id, body in bundles:
                headers = self.trust.bundle_headers(subject, msg_id, body)
                futures.append(await self.js.publish_async(subject, body, headers=headers))
        except nats.errors.Error as exc:  # the connection is away: the rest are not sent
            log.warning("fanout.batch_interrupted", extra={"error": repr(exc)})
        stored = await self._stored(futures)
        return [b for b, f in itertools.zip_longest(bundles, futures) if f not in stored]

    async def _stored(self, futures: list[asyncio.Future[PubAck]]) -> set[asyncio.Future[PubAck]]:
        """The bundles JetStream confirmed within one deadline for the whole batch."""
        if not futures:
            return set()
        done, late = await asyncio.wait(futures, timeout=self.settings.request_timeout_s)
        for future in late:
            future.cancel()  # lost with a connection: the batch is retried as a whole
        stored = set()
        for future in done:
            failure = future.exception()
            if failure is None:
                stored.add(future)
            elif isinstance(failure, nats.errors.Error | TimeoutError):
                log.warning("fanout.bundle_failed", extra={"error": type(failure).__name__})
            else:
                raise failure
        if late:
            log.warning("fanout.bundles_unconfirmed", extra={"bundles": len(late)})
        return stored

    def items(self, msg: Msg) -> Iterator[tuple[str, Item]]:
        """(recipient, bundle item) for every recipient of one accepted event."""
        headers = msg.headers or {}
        key = headers.get(HEADER_MSG_ID)
        if not key or HEADER_RECIPIENTS not in headers:
            raise ForeignMessage("no event key or recipient list in the headers")
        if not self.trust.hub_sealed(msg.subject, headers, msg.data):
            raise ForeignMessage("not sealed by the hub: written by another identity, or changed")
        seq = msg.metadata.sequence.stream
        published_at = headers.get(HEADER_PUBLISHED_AT, "")
        entitled = set(filter(None, headers.get(HEADER_PERSONAL_DATA_TO, "").split(",")))
        without = without_complainant(msg.data) if entitled else msg.data
        for recipient in filter(None, headers[HEADER_RECIPIENTS].split(",")):
            redacted = bool(entitled) and recipient not in entitled
            yield (
                recipient,
                Item(seq, key, published_at, redacted, without if redacted else msg.data),
            )

    def bundles(self, recipient: str, items: list[Item]) -> Iterator[tuple[str, bytes]]:
        """(de-duplication id, body) of the bundles carrying ``items``, each within the limit."""
        part, start = 0, 0
        while start < len(items):
            end, size = start, 0
            while end < len(items) and (end == start or size + len(items[end].body) < self.limit):
                size += len(items[end].body)
                end += 1
            chunk = items[start:end]
            msg_id = self.wire.bundle_msg_id(chunk[0].seq, chunk[-1].seq, part, recipient)
            yield msg_id, dump_bundle(recipient, chunk)
            part, start = part + 1, end


async def _keep(msgs: list[Msg]) -> None:
    """Tell JetStream the batch is still being worked on (its redelivery waits)."""
    try:
        for msg in msgs:
            await msg.in_progress()
    except nats.errors.Error as exc:  # away: they come back after the ack wait, in order
        log.warning("fanout.keep_failed", extra={"error": repr(exc)})
