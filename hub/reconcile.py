"""Reconciliation: every event the ledger recorded as accepted must still be in the events stream.

A damaged store (a truncated or lost block file, a message deleted through the API) makes
JetStream serve a shorter history without complaint; the ledger remembers each accepted event's
key and stream sequence, so comparing the two names exactly which accepted events are gone.

The comparison is race-free: it first notes the highest sequence the ledger knows, then reads the
stream, and judges only ledger events up to that sequence, every one of which the stream held
before it was read. Ingest and the projection keep running meanwhile.

Two checks run: a quick one every few seconds (the stream's own account of its first and last
sequence and of deleted messages) and a full one at start-up and every hour (every message's key,
read headers only).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy.exc import DBAPIError

from hub.errors import HubUnavailable
from hub.ledger import EventRow, Ledger
from hub.periodic import Schedule, repeat
from hub.streams import read_stream, stream_gaps
from hub.timeliness import Clock
from schemas.wire import HEADER_MSG_ID, Wire

log = logging.getLogger(__name__)

QUICK_EVERY_S = 15.0
FULL_EVERY_S = 3600.0
RETRY_PAUSE_S = 5.0
CHECK_TIMEOUT_S = 600.0  # a full read of a large stream takes a while; a stalled one does not
Trouble = (DBAPIError, OSError, TimeoutError, nats.errors.Error, HubUnavailable)


async def stored_keys(js: JetStreamContext, wire: Wire) -> dict[int, str]:
    """Sequence → event key of every message in the events stream (headers only)."""
    found: dict[int, str] = {}
    async for msgs in read_stream(js, wire.events_stream, headers_only=True):
        for msg in msgs:
            found[msg.metadata.sequence.stream] = (msg.headers or {}).get(HEADER_MSG_ID, "")
    return found


async def missing_events(js: JetStreamContext, wire: Wire, ledger: Ledger) -> list[EventRow]:
    """Accepted events (per the ledger) that the events stream no longer holds at their sequence."""
    upto = await ledger.high_water()
    stored = await stored_keys(js, wire)
    recorded = await ledger.events(up_to_seq=upto)
    return [e for e in recorded if stored.get(e.events_seq) != e.event_key]


async def gone_events(nc: Client, wire: Wire, ledger: Ledger) -> list[EventRow]:
    """The quick check: ledger events at sequences the stream says it no longer has."""
    upto = await ledger.high_water()
    gaps = await stream_gaps(nc, wire.events_stream)
    return await ledger.events_gone(
        up_to_seq=upto, first_seq=gaps.first_seq, last_seq=gaps.last_seq, deleted=gaps.deleted
    )


@dataclass
class StoreCheck:
    """The outcome of the hub's latest checks, for ops (``missing`` is None until one ran)."""

    quick: tuple[str, ...] | None = None
    full: tuple[str, ...] | None = None
    checked_at: datetime | None = None
    full_checked_at: datetime | None = None
    trouble: str | None = None  # why the last attempt could not check

    @property
    def missing(self) -> tuple[str, ...] | None:
        """Every accepted event either check found gone, in order of discovery."""
        if self.quick is None and self.full is None:
            return None
        return tuple(dict.fromkeys((*(self.full or ()), *(self.quick or ()))))


@dataclass
class StoreChecker:
    """Checks the events stream against the ledger, keeping the outcome in ``outcome``."""

    nc: Client
    js: JetStreamContext
    wire: Wire
    ledger: Ledger
    clock: Clock
    outcome: StoreCheck = field(default_factory=StoreCheck)

    async def run(
        self,
        stop: asyncio.Event,
        *,
        quick_every_s: float = QUICK_EVERY_S,
        full_every_s: float = FULL_EVERY_S,
    ) -> None:
        """Check fully at once, then quickly every ``quick_every_s``, fully every ``full_every_s``.

        A database or NATS hiccup is logged and tried again shortly; it never stops the hub.
        """
        loop = asyncio.get_running_loop()
        next_full = 0.0

        async def once() -> None:
            nonlocal next_full
            full = loop.time() >= next_full
            await self.check(full=full)
            if full:
                next_full = loop.time() + full_every_s

        schedule = Schedule(
            pause=lambda _took: quick_every_s,
            retry_s=min(RETRY_PAUSE_S, quick_every_s),
            timeout_s=CHECK_TIMEOUT_S,
            trouble=Trouble,
        )
        await repeat(stop, once, schedule, self._noted, "reconcile.deferred")

    def _noted(self, trouble: str | None) -> None:
        self.outcome.trouble = trouble

    async def check(self, *, full: bool) -> list[EventRow]:
        """Run one check, log what is newly missing and keep the result."""
        if full:
            missing = await missing_events(self.js, self.wire, self.ledger)
        else:
            missing = await gone_events(self.nc, self.wire, self.ledger)
        keys = tuple(m.event_key for m in missing)
        before, outcome = self.outcome.missing or (), self.outcome
        if full:
            outcome.full, outcome.full_checked_at = keys, self.clock()
        else:
            outcome.quick = keys
        outcome.checked_at = self.clock()
        if new := [k for k in keys if k not in before]:
            log.error(
                "reconcile.events_missing",
                extra={"count": len(keys), "new": new[:100], "full": full},
            )
        elif full:
            log.info("reconcile.complete", extra={"missing": len(keys)})
        return missing
