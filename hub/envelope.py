"""Bytes in and out: parsing publishers' envelopes, writing stored copies (the one orjson user)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from hub.errors import EventRejected
from schemas.complaint_outcome import ComplaintOutcome
from schemas.envelope import EVENT_ADAPTER, Event
from schemas.replies import REPLY_ADAPTER, FieldError, IngestReply
from schemas.rules import explain, explain_validation


def parse_event(raw: bytes, *, now: datetime, clock_skew_s: float) -> Event:
    """Validate an envelope and its payload.

    Raises:
        EventRejected: with one error per broken field.
    """
    try:
        return EVENT_ADAPTER.validate_json(raw, context={"now": now, "clock_skew_s": clock_skew_s})
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise EventRejected(explain_validation(errors, tagged=True)) from None


def peek(raw: bytes) -> dict[str, Any]:
    """The top-level object of a message, or ``{}`` when it is not a JSON object."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def dump_event(event: Event) -> bytes:
    """The canonical stored form of an accepted event."""
    return event.model_dump_json(exclude_none=True).encode()


def without_complainant(body: bytes) -> bytes:
    """The event without the complainant's personal data, for recipients not entitled to it."""
    event = orjson.loads(body)
    data = event.get("data", {})
    data.pop("complainant", None)
    data.pop("complainant_shared_with", None)
    return orjson.dumps(event)


def personal_data_addressees(event: Event) -> tuple[str, ...]:
    """Who may receive personal data carried by ``event`` (empty: no personal data)."""
    if isinstance(event.data, ComplaintOutcome) and event.data.complainant is not None:
        return event.data.complainant_shared_with
    return ()


def dump_reply(reply: IngestReply) -> bytes:
    """The wire form of an ingest reply."""
    return REPLY_ADAPTER.dump_json(reply, exclude_none=True)


def dump_quarantine(
    *, subject: str, raw: bytes, errors: tuple[FieldError, ...], received_at: datetime
) -> bytes:
    """A quarantine record: the rejected bytes (base64) with the reasons and the time."""
    record = {
        "subject": subject,
        "received_at": received_at.astimezone(UTC).isoformat(),
        "errors": [e.model_dump() for e in errors],
        "size": len(raw),
        "raw_base64": base64.b64encode(raw).decode(),
    }
    return orjson.dumps(record)


def load_quarantine(body: bytes) -> dict[str, Any]:
    """A quarantine record with its original bytes restored under ``raw``."""
    record: dict[str, Any] = orjson.loads(body)
    record["raw"] = base64.b64decode(record.pop("raw_base64"))
    return record


def too_large(size: int, limit: int) -> EventRejected:
    """The rejection of a message over the size limit."""
    return EventRejected([explain("$", "too_large", {"size": size, "limit": limit})])


def load_advisory(body: bytes) -> dict[str, Any]:
    """A JetStream advisory (JSON object), or ``{}`` when it is not one."""
    return peek(body)
