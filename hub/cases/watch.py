"""Overdue deadlines raised the moment they pass: a notice to both parties, through the case.

The watcher reads the open deadlines from the ledger and appends a ``case_overdue.v1`` notice to
each case whose deadline has passed; the case desk refuses a second notice for the same deadline,
so any number of hub processes may watch at once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import nats.errors
from sqlalchemy.exc import DBAPIError

from hub.cases.desk import CaseDesk
from hub.cases.state import case_token
from hub.envelope import dump_event
from hub.errors import EventRejected
from hub.ingest import StoreUnavailable
from hub.ledger import DeadlineRow, Ledger
from hub.timeliness import Clock
from schemas.case_notice import HUB_SOURCE
from schemas.envelope import DELIVERED, EVENT_ADAPTER, Event
from schemas.wire import HEADER_MSG_ID, HEADER_PUBLISHED_AT

log = logging.getLogger(__name__)


def overdue_notice(row: DeadlineRow, now: datetime) -> Event:
    """The hub's notice that ``row`` is overdue."""
    return EVENT_ADAPTER.validate_python(
        {
            "specversion": "1.0",
            "id": f"overdue.{case_token(row.case_key)}.{row.name}",
            "source": HUB_SOURCE,
            "type": "case_overdue.v1",
            "time": now,
            "data": {
                "case": row.case_key,
                "deadline": row.name,
                "due_at": row.due_at,
                "owed_by": row.party,
                "step_zh": row.step_zh,
            },
        },
        context=DELIVERED,
        strict=False,
    )


class OverdueWatch:
    """Raises overdue case deadlines."""

    def __init__(self, desk: CaseDesk, ledger: Ledger, clock: Clock, every_s: float) -> None:
        self.desk, self.ledger, self.clock, self.every_s = desk, ledger, clock, every_s
        self.raised = 0

    async def sweep(self) -> int:
        """Raise every deadline past due and not yet raised; how many were raised now."""
        now = self.clock()
        raised = 0
        for row in await self.ledger.case_deadlines(due_before=now, unnoticed=True):
            event = overdue_notice(row, now)
            headers = {
                HEADER_MSG_ID: event.key,
                HEADER_PUBLISHED_AT: now.astimezone(UTC).isoformat(),
            }
            try:
                await self.desk.admit(event, dump_event(event), headers, now)
            except EventRejected:  # met or raised meanwhile (the ledger lags the stream)
                continue
            log.warning(
                "case.overdue",
                extra={"case": row.case_key, "deadline": row.name, "party": row.party},
            )
            raised += 1
        self.raised += raised
        return raised

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every ``every_s`` until ``stop``; a hiccup waits for the next sweep."""
        while not stop.is_set():
            try:
                await self.sweep()
            except (StoreUnavailable, OSError, TimeoutError, DBAPIError, nats.errors.Error) as exc:
                log.warning("case.watch_deferred", extra={"error": repr(exc)})
            try:
                async with asyncio.timeout(self.every_s):
                    await stop.wait()
            except TimeoutError:
                continue
