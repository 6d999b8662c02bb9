"""Reconciliation: every event the ledger recorded as accepted must still be in the events stream.

A damaged store (a truncated or lost block file) makes JetStream serve a shorter history without
complaint; the ledger remembers each accepted event's key and stream sequence, so comparing the two
names exactly which accepted events the stream no longer holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from nats.js import JetStreamContext

from hub.ledger import EventRow, Ledger
from hub.streams import read_stream
from hub.timeliness import Clock
from schemas.wire import HEADER_MSG_ID, Wire

log = logging.getLogger(__name__)


async def stored_keys(js: JetStreamContext, wire: Wire) -> dict[int, str]:
    """Sequence → event key of every message in the events stream (headers only)."""
    found: dict[int, str] = {}
    async for msgs in read_stream(js, wire.events_stream, headers_only=True):
        for msg in msgs:
            found[msg.metadata.sequence.stream] = (msg.headers or {}).get(HEADER_MSG_ID, "")
    return found


async def missing_events(js: JetStreamContext, wire: Wire, ledger: Ledger) -> list[EventRow]:
    """Accepted events (per the ledger) that the events stream no longer holds at their sequence."""
    stored = await stored_keys(js, wire)
    return [e for e in await ledger.events() if stored.get(e.events_seq) != e.event_key]


@dataclass
class StoreCheck:
    """The outcome of the hub's last reconciliation, for ops (``missing`` is None until it ran)."""

    missing: tuple[str, ...] | None = None
    checked_at: datetime | None = None


async def report_missing(
    js: JetStreamContext, wire: Wire, ledger: Ledger, outcome: StoreCheck, clock: Clock
) -> list[EventRow]:
    """Check once, log the outcome and keep it in ``outcome`` (the hub does this at start-up)."""
    missing = await missing_events(js, wire, ledger)
    outcome.missing, outcome.checked_at = tuple(m.event_key for m in missing), clock()
    if missing:
        log.error(
            "reconcile.events_missing",
            extra={"count": len(missing), "events": [m.event_key for m in missing[:100]]},
        )
    else:
        log.info("reconcile.complete")
    return missing
