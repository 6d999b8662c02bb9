"""What ops see of the quarantine: the last day's rejections by publisher and rule, and the latest.

The hub follows the quarantine stream (headers only: the reasons travel in headers) from one
window back, so the panel survives restarts and shows rejections made through any hub process.
Messages a person reads are masked: no resident ID or mobile number appears on the ops page.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from hub.timeliness import Clock
from schemas.personal import mask_text
from schemas.wire import HEADER_ERRORS, HEADER_RECEIVED_AT, Wire

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)
LATEST = 20
MAX_KEPT = 200_000  # a flood beyond this within a day is counted from the newest on
RETRY_PAUSE_S = 2.0


@dataclass(frozen=True)
class Rejection:
    """One rejected message as ops see it."""

    seq: int
    received_at: datetime
    publisher: str
    rules: tuple[str, ...]
    reasons: tuple[str, ...]  # "field: 中文说明", masked


@dataclass
class Rejections:
    """The rejections of the last ``WINDOW``, newest last."""

    kept: deque[Rejection] = field(default_factory=lambda: deque(maxlen=MAX_KEPT))

    def add(self, rejection: Rejection) -> None:
        """Keep one more rejection."""
        self.kept.append(rejection)

    def prune(self, now: datetime) -> None:
        """Forget rejections older than the window."""
        while self.kept and self.kept[0].received_at < now - WINDOW:
            self.kept.popleft()

    def by_publisher(self) -> Counter[str]:
        """How many rejections each publisher had."""
        return Counter(r.publisher for r in self.kept)

    def by_rule(self) -> Counter[tuple[str, str]]:
        """How often each (publisher, rule) was broken."""
        return Counter((r.publisher, rule) for r in self.kept for rule in set(r.rules))

    def latest(self, count: int = LATEST) -> list[Rejection]:
        """The newest rejections first."""
        return list(reversed(list(self.kept)[-count:]))


def rejection(seq: int, subject: str, headers: dict[str, str] | None, wire: Wire) -> Rejection:
    """The ops view of one quarantine record (from its headers)."""
    headers = headers or {}
    errors = json.loads(headers.get(HEADER_ERRORS, "[]"))
    received = headers.get(HEADER_RECEIVED_AT)
    return Rejection(
        seq=seq,
        received_at=datetime.fromisoformat(received) if received else datetime.now(UTC),
        publisher=wire.org_of_quarantine(subject),
        rules=tuple(str(e.get("rule", "")) for e in errors),
        reasons=tuple(
            mask_text(f"{e.get('field', '')}: {e.get('message_zh', '')}") for e in errors
        ),
    )


async def follow(
    js: JetStreamContext, wire: Wire, seen: Rejections, clock: Clock, stop: asyncio.Event
) -> None:
    """Keep ``seen`` up to date with the quarantine until ``stop`` is set."""
    while not stop.is_set():
        try:
            await _follow_once(js, wire, seen, clock, stop)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("rejections.follow_interrupted", extra={"error": repr(exc)})
            await asyncio.sleep(RETRY_PAUSE_S)


async def _follow_once(
    js: JetStreamContext, wire: Wire, seen: Rejections, clock: Clock, stop: asyncio.Event
) -> None:
    seen.kept.clear()
    # from the first record (the quarantine is bounded), not BY_START_TIME: nats-py re-creates an
    # ordered consumer from a sequence after a reconnect and keeps the start time, which the
    # server then refuses
    sub = await js.subscribe(
        wire.quarantine_any,
        stream=wire.quarantine_stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        headers_only=True,
    )
    try:
        while not stop.is_set():
            try:
                msg = await sub.next_msg(timeout=1.0)
            except TimeoutError:
                seen.prune(clock())
                continue
            found = rejection(msg.metadata.sequence.stream, msg.subject, msg.headers, wire)
            if found.received_at >= clock() - WINDOW:
                seen.add(found)
    finally:
        await sub.unsubscribe()
