"""Bytes in and out: parsing publishers' envelopes, writing stored copies (the one orjson user)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from hub.errors import EventRejected
from schemas.complaint_outcome import ComplaintOutcome
from schemas.envelope import EVENT_ADAPTER, Event
from schemas.replies import REPLY_ADAPTER, FieldError, IngestReply
from schemas.rules import explain, explain_validation
from schemas.wire import HEADER_ERRORS, HEADER_RECEIVED_AT


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


@dataclass(frozen=True)
class Item:
    """One event on its way into a recipient's bundle (the body is already serialised)."""

    seq: int
    key: str
    published_at: str
    redacted: bool
    body: bytes


def dump_bundle(recipient: str, items: list[Item]) -> bytes:
    """A delivery bundle (``schemas.delivery.DeliveryBundle``) embedding the stored events."""
    return orjson.dumps(
        {
            "recipient": recipient,
            "items": [
                {
                    "key": i.key,
                    "published_at": i.published_at,
                    "redacted": i.redacted,
                    "event": orjson.Fragment(i.body),
                }
                for i in items
            ],
        }
    )


def personal_data_addressees(event: Event) -> tuple[str, ...]:
    """Who may receive personal data carried by ``event`` (empty: no personal data)."""
    if isinstance(event.data, ComplaintOutcome) and event.data.complainant is not None:
        return event.data.complainant_shared_with
    return ()


def dump_reply(reply: IngestReply) -> bytes:
    """The wire form of an ingest reply."""
    return REPLY_ADAPTER.dump_json(reply, exclude_none=True)


def quarantine_headers(errors: tuple[FieldError, ...], received_at: datetime) -> dict[str, str]:
    """The reasons and time of a rejection, carried in headers beside the untouched bytes.

    The body of a quarantine record is exactly what was received, whatever its size or encoding;
    the reasons are JSON escaped to ASCII, since a header value is one line of text.
    """
    reasons = [e.model_dump() for e in errors]
    return {
        HEADER_RECEIVED_AT: received_at.astimezone(UTC).isoformat(),
        HEADER_ERRORS: json.dumps(reasons, ensure_ascii=True, separators=(",", ":")),
    }


def load_quarantine(subject: str, body: bytes, headers: dict[str, str] | None) -> dict[str, Any]:
    """A quarantine record: the bytes as received, why they were refused, and when."""
    headers = headers or {}
    return {
        "subject": subject,
        "raw": body,
        "size": len(body),
        "received_at": headers.get(HEADER_RECEIVED_AT, ""),
        "errors": json.loads(headers.get(HEADER_ERRORS, "[]")),
    }


def too_large(size: int, limit: int) -> EventRejected:
    """The rejection of a message over the size limit."""
    return EventRejected([explain("$", "too_large", {"size": size, "limit": limit})])


def load_advisory(body: bytes) -> dict[str, Any]:
    """A JetStream advisory (JSON object), or ``{}`` when it is not one."""
    return peek(body)
