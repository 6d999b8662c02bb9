"""Ingest: check an event from a publisher, store it once, answer accepted or rejected.

The reply ``accepted`` is sent only after JetStream acknowledged the stored event (its
sequence is in the reply); anything else is ``rejected`` (kept in quarantine with every reason)
or ``unavailable`` (nothing stored, send again: the same id is stored only once). A message
that fails the checks while the quarantine cannot be written is ``unavailable`` too: a rejection
is only answered once the rejected message is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

import orjson

from hub.admission import Admission
from hub.cases.desk import CaseDesk
from hub.config import HubSettings
from hub.envelope import (
    dump_event,
    dump_reply,
    parse_event,
    peek,
    personal_data_addressees,
    too_large,
)
from hub.errors import EventRejected
from hub.registry import Registry
from hub.routing import recipients_for
from hub.timeliness import Clock
from hub.workdays import UnknownYear
from schemas.common import resident_id_needs_review
from schemas.complaint_outcome import ComplaintOutcome
from schemas.envelope import CASE_STEPS, Event
from schemas.replies import (
    BATCH_REPLY_ADAPTER,
    Accepted,
    Answers,
    FieldError,
    IngestReply,
    Rejected,
    Unavailable,
)
from schemas.rules import explain
from schemas.wire import (
    HEADER_MSG_ID,
    HEADER_PERSONAL_DATA_TO,
    HEADER_PUBLISHED_AT,
    HEADER_RECIPIENTS,
)

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The current time in UTC (the default clock; tests inject their own)."""
    return datetime.now(UTC)


class StoreUnavailable(Exception):
    """The event store did not confirm a write; the caller answers ``unavailable``."""


class EventStore(Protocol):
    """Where accepted events and rejected messages are written."""

    async def store(self, subject: str, body: bytes, headers: dict[str, str]) -> tuple[int, bool]:
        """Store an event; returns its sequence and whether it was a duplicate."""

    async def quarantine(self, subject: str, raw: bytes, errors: tuple[FieldError, ...]) -> int:
        """Keep a rejected message with its reasons; returns its sequence."""

    async def stored(self, seq: int) -> bytes:
        """The body of the accepted event at ``seq``."""


class IngestMetrics(Protocol):
    """What ingest reports to the metrics."""

    def count_accepted(self, category: str) -> None:
        """One more event accepted."""

    def count_rejected(self, publisher: str, rules: Iterable[str]) -> None:
        """One more message rejected."""

    def count_throttled(self, publisher: str) -> None:
        """One more message turned away by the rate limit."""


class Ingest:
    """Turns one ingest request into one reply."""

    def __init__(
        self,
        settings: HubSettings,
        registry: Registry,
        store: EventStore,
        clock: Clock = utc_now,
        metrics: IngestMetrics | None = None,
        cases: CaseDesk | None = None,
    ) -> None:
        self.settings, self.registry, self.store, self.clock = settings, registry, store, clock
        self.cases = cases
        self.wire = settings.wire
        self.metrics = metrics
        self.admission = Admission(settings.ingest_rate, settings.ingest_burst)

    async def answer(self, subject: str, raw: bytes) -> bytes:
        """The wire answer to one request: one event, or a JSON array of them (a batch)."""
        items = _batch(raw)
        if items is None:
            return dump_reply(await self.handle(subject, raw))
        return BATCH_REPLY_ADAPTER.dump_json(
            await self.handle_many(subject, raw, items), exclude_none=True
        )

    async def handle_many(
        self, subject: str, raw: bytes, items: list[tuple[object, bytes]]
    ) -> Answers | Rejected | Unavailable:
        """Each event of a batch checked and stored as if sent alone; answers in the same order.

        ``items``: each event of the request ``raw``, parsed and as bytes. Consecutive Art. 15
        events are written together (each task checks its event and sends its write before the
        next task starts, so JetStream stores them in the batch's order); a case step waits for
        everything before it, as it is judged against its case. Each event is accepted only once
        JetStream confirmed it.
        """
        limit = self.settings.max_batch_events
        if len(items) > limit:
            publisher = self.wire.org_of_ingest(subject)
            error = explain("$", "batch_too_large", {"limit": limit, "count": len(items)})
            return await self._reject(publisher, raw, (error,))
        replies: list[IngestReply] = []
        together: list[bytes] = []
        for item, body in items:
            together.append(body)
            if _is_case_step(item):
                *before, step = together
                replies += await asyncio.gather(*(self.handle(subject, b) for b in before))
                replies.append(await self.handle(subject, step))
                together = []
        replies += await asyncio.gather(*(self.handle(subject, b) for b in together))
        return Answers(results=tuple(replies))

    async def handle(self, subject: str, raw: bytes) -> IngestReply:
        """Check, store and answer one message received on ``subject``."""
        publisher = self.wire.org_of_ingest(subject)
        known = publisher if publisher in self.registry else "unknown"  # bounded keys and labels
        if (wait := self.admission.admit(known)) is not None:
            if self.metrics is not None:
                self.metrics.count_throttled(known)
            return Unavailable(
                reason=f"{publisher} 发送过快（每秒 {self.settings.ingest_rate:g} 条）"
                " / rate limit exceeded",
                retry_after_s=round(wait, 3),
            )
        now = self.clock()
        try:
            event = self._check(publisher, raw, now)
            if event.category in CASE_STEPS:
                return await self._case_step(publisher, raw, event, now)
            recipients = recipients_for(event, self.registry)
        except EventRejected as rejection:
            return await self._reject(publisher, raw, rejection.errors)
        headers = self._headers(event, now) | {HEADER_RECIPIENTS: ",".join(recipients)}
        if addressees := personal_data_addressees(event):
            headers[HEADER_PERSONAL_DATA_TO] = ",".join(addressees)
        body = dump_event(event)
        try:
            seq, duplicate = await self.store.store(
                self.wire.event(event.source, event.category), body, headers
            )
            if duplicate and await self.store.stored(seq) != body:
                conflict = explain("id", "id_conflict", {"id": event.id, "seq": seq})
                return await self._reject(publisher, raw, (conflict,))
        except StoreUnavailable as exc:
            return _unavailable(event, exc)
        return self._accepted(event, seq, duplicate, recipients)

    async def _case_step(
        self, publisher: str, raw: bytes, event: Event, now: datetime
    ) -> IngestReply:
        """A step of a case workflow: judged against its case, appended to it."""
        if self.cases is None:
            raise EventRejected([explain("type", "case_kind", {"step_zh": event.type})])
        try:
            admitted = await self.cases.admit(
                event, dump_event(event), self._headers(event, now), now
            )
        except StoreUnavailable as exc:
            return _unavailable(event, exc)
        except UnknownYear as exc:  # never a guess: ops must add the year to the override file
            log.error("case.calendar_unknown", extra={"year": exc.year, "event": event.key})
            return Unavailable(reason=str(exc))
        return self._accepted(event, admitted.seq, admitted.duplicate, admitted.recipients)

    def _headers(self, event: Event, now: datetime) -> dict[str, str]:
        return {
            HEADER_MSG_ID: self.wire.event_msg_id(event.key),
            HEADER_PUBLISHED_AT: now.astimezone(UTC).isoformat(),
        }

    def _accepted(
        self, event: Event, seq: int, duplicate: bool, recipients: tuple[str, ...]
    ) -> Accepted:
        log.debug("ingest.accepted", extra={"event": event.key, "seq": seq, "duplicate": duplicate})
        if self.metrics is not None and not duplicate:
            self.metrics.count_accepted(event.category)
        return Accepted(
            source=event.source,
            id=event.id,
            seq=seq,
            duplicate=duplicate,
            recipients=recipients,
            warnings=_review_warnings(event),
        )

    def _check(self, publisher: str, raw: bytes, now: datetime) -> Event:
        if len(raw) > self.settings.max_event_bytes:
            raise too_large(len(raw), self.settings.max_event_bytes)
        identity = self._identity_errors(publisher, peek(raw).get("source"))
        try:
            event = parse_event(raw, now=now, clock_skew_s=self.settings.clock_skew_s)
        except EventRejected as rejection:
            raise EventRejected(identity + list(rejection.errors)) from None
        if identity:
            raise EventRejected(identity)
        return event

    def _identity_errors(self, publisher: str, source: object) -> list[FieldError]:
        if publisher not in self.registry:
            return [explain("source", "unknown_publisher", {"org": publisher})]
        if isinstance(source, str) and source != publisher:
            return [
                explain("source", "source_mismatch", {"source": source, "publisher": publisher})
            ]
        return []

    async def _reject(
        self, publisher: str, raw: bytes, errors: tuple[FieldError, ...]
    ) -> Rejected | Unavailable:
        """Keep the message in quarantine and say why; unkept, it must be sent again."""
        rules = [e.rule for e in errors]
        try:
            seq = await self.store.quarantine(self.wire.quarantine(publisher), raw, errors)
        except StoreUnavailable as exc:
            log.error("ingest.quarantine_unavailable", extra={"org": publisher, "reason": str(exc)})
            return Unavailable(
                reason=f"rejected ({', '.join(rules)}) but the quarantine did not confirm the"
                f" write: {exc}; nothing was kept, send it again"
            )
        if self.metrics is not None:
            known = publisher if publisher in self.registry else "unknown"  # bounded labels
            self.metrics.count_rejected(known, rules)
        log.info("ingest.rejected", extra={"org": publisher, "rules": rules, "quarantine_seq": seq})
        event_id = peek(raw).get("id") if len(raw) <= self.settings.max_event_bytes else None
        return Rejected(
            id=event_id if isinstance(event_id, str) else None,
            errors=errors,
            quarantine_seq=seq,
        )


def _batch(raw: bytes) -> list[tuple[object, bytes]] | None:
    """The events of a batch request (a JSON array), each parsed and as bytes; else None.

    None answers the request as one message: a single event, not JSON, an empty array, or an
    array too deeply nested to write out again (each is then rejected, with its reason).
    """
    if not raw.lstrip()[:1] == b"[":
        return None
    try:
        items = orjson.loads(raw)
        if not isinstance(items, list) or not items:
            return None
        return [(item, orjson.dumps(item)) for item in items]
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None


def _is_case_step(item: object) -> bool:
    kind = item.get("type") if isinstance(item, dict) else None
    return isinstance(kind, str) and kind.split(".", 1)[0] in CASE_STEPS


def _unavailable(event: Event, exc: StoreUnavailable) -> Unavailable:
    log.warning("ingest.store_unavailable", extra={"event": event.key, "reason": str(exc)})
    return Unavailable(reason=f"event store did not confirm the write: {exc}")


def _review_warnings(event: Event) -> tuple[FieldError, ...]:
    """Accepted, but worth a human look (stdnum's area-code gaps in resident IDs)."""
    data = event.data
    if isinstance(data, ComplaintOutcome) and data.complainant and data.complainant.id_number:
        if resident_id_needs_review(data.complainant.id_number):
            return (explain("data.complainant.id_number", "resident_id_review"),)
    return ()
