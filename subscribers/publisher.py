"""The SDK a department or township system uses to publish its events.

::

    nc = await nats.connect(url)
    publisher = Publisher(nc, "renqiu-scjg")
    accepted = await publisher.publish(event)   # raises EventRejected with every field error
    answers = await publisher.publish_many(events)  # a day's records: one answer per event

An unanswered request is sent again with the same id; the hub stores an id only once, so a retry
never duplicates an event.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import nats.errors
from nats.aio.client import Client
from pydantic_core import to_json

from schemas.envelope import Event
from schemas.replies import (
    BATCH_REPLY_ADAPTER,
    Accepted,
    Answers,
    BatchReply,
    Rejected,
    Unavailable,
)
from schemas.wire import Wire
from subscribers.connection import identity_of
from subscribers.errors import EventRejected, HubUnavailable, check_identity

log = logging.getLogger(__name__)

RETRY_PAUSE_S = (0.2, 0.5, 1.0, 2.0, 5.0)
# a hub answers in milliseconds; one that died answers nothing, and another hub process answers
# the resend (the same id is stored once): waiting long only delays that
TIMEOUT_S = 2.0
BATCH_EVENTS = 500  # the hub's HUB_MAX_BATCH_EVENTS default
BATCH_BYTES = 768 * 1024  # under NATS's default 1 MiB message limit


def compose(
    source: str,
    event_type: str,
    data: Mapping[str, Any],
    *,
    time: datetime | None = None,
    recipients: tuple[str, ...] | None = None,
    subject: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A new envelope as a JSON-ready dict, with a fresh id and the current time by default."""
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "time": (time or datetime.now(UTC)).isoformat(),
        "datacontenttype": "application/json",
        "data": dict(data),
    }
    if recipients is not None:
        envelope["recipients"] = " ".join(recipients)  # a CloudEvents extension: a string
    if subject is not None:
        envelope["subject"] = subject
    return envelope


class Publisher:
    """Publishes events as one organisation and waits for the hub's answer."""

    def __init__(
        self,
        nc: Client,
        org: str,
        *,
        wire: Wire | None = None,
        timeout_s: float = TIMEOUT_S,
        retries: int = 5,
    ) -> None:
        check_identity(identity_of(nc), org)
        self.nc, self.org = nc, org
        self.wire = wire or Wire()
        self.timeout_s, self.retries = timeout_s, retries

    async def publish(self, event: Event | Mapping[str, Any] | bytes) -> Accepted:
        """Send one event; returns the hub's acceptance.

        Raises:
            EventRejected: the hub refused it (every field error inside); it is in quarantine.
            HubUnavailable: no answer after every retry; the event may be sent again safely.
        """
        body = _encode(event)
        last, told = "no attempt", 0.0
        for attempt in range(self.retries + 1):
            await _pause(attempt, told)
            answered = await self._ask(body)
            if isinstance(answered, str):
                last = answered
                continue
            reply = _one(answered)
            if isinstance(reply, Accepted):
                return reply
            if isinstance(reply, Rejected):
                raise EventRejected(reply.errors, reply.quarantine_seq)
            if isinstance(reply, Unavailable):
                last, told = reply.reason, reply.retry_after_s or 0.0
        raise HubUnavailable(f"no acceptance after {self.retries + 1} attempt(s): {last}")

    async def _ask(self, body: bytes, events: int = 1) -> BatchReply | str:
        """The hub's answer to one ingest request, or why there was none (send it again).

        A batch of ``events`` gets longer: the hub writes them one after another.

        Raises:
            HubUnavailable: the connection is closed.
        """
        timeout = self.timeout_s * (1 + events / 100)
        try:
            msg = await self.nc.request(self.wire.ingest(self.org), body, timeout=timeout)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            return type(exc).__name__
        except nats.errors.ConnectionClosedError as exc:
            raise HubUnavailable("the NATS connection is closed") from exc
        return BATCH_REPLY_ADAPTER.validate_json(msg.data)

    async def publish_many(
        self,
        events: Sequence[Event | Mapping[str, Any] | bytes],
        *,
        batch: int = BATCH_EVENTS,
    ) -> list[Accepted | Rejected]:
        """Send many events, ``batch`` per request; the hub's answer to each, in order.

        Each event is answered as if sent alone: accepted (with its sequence), or rejected (with
        every field error, kept in quarantine). Events the hub answers "unavailable" are sent
        again (same ids, so never stored twice) until answered.

        Raises:
            HubUnavailable: some events got no answer after every retry (the message says how
                many); every event may be sent again safely.
        """
        bodies = [_encode(event) for event in events]
        answers: dict[int, Accepted | Rejected] = {}
        waiting, last, told = list(range(len(bodies))), "no attempt", 0.0
        for attempt in range(self.retries + 1):
            await _pause(attempt, told)
            told = 0.0
            for indexes in _batches([bodies[n] for n in waiting], batch):
                chosen = [waiting[i] for i in indexes]
                request = b"[" + b",".join(bodies[n] for n in chosen) + b"]"
                reply = await self._ask(request, len(chosen))
                if isinstance(reply, str):
                    last = reply
                    continue
                results = reply.results if isinstance(reply, Answers) else (reply,) * len(chosen)
                for n, result in zip(chosen, results, strict=True):
                    if isinstance(result, Unavailable):
                        last, told = result.reason, max(told, result.retry_after_s or 0.0)
                    else:
                        answers[n] = result
            waiting = [n for n in range(len(bodies)) if n not in answers]
            if not waiting:
                return [answers[n] for n in range(len(bodies))]
        raise HubUnavailable(
            f"{len(waiting)} of {len(bodies)} event(s) unanswered after {self.retries + 1}"
            f" attempt(s): {last}"
        )


async def _pause(attempt: int, told: float) -> None:
    """Before a resend: the next back-off step, or longer if the hub said so."""
    if attempt:
        pause = RETRY_PAUSE_S[min(attempt, len(RETRY_PAUSE_S)) - 1]
        await asyncio.sleep(max(pause, told))


def _one(reply: BatchReply) -> Accepted | Rejected | Unavailable:
    """The answer to ``publish``: bytes holding a JSON array were answered as a batch."""
    if not isinstance(reply, Answers):
        return reply
    if len(reply.results) != 1:
        raise ValueError(f"publish() sent {len(reply.results)} events: use publish_many()")
    return reply.results[0]


def _batches(bodies: list[bytes], most: int) -> list[list[int]]:
    """Indexes of ``bodies`` in requests of at most ``most`` events and ``BATCH_BYTES``."""
    found: list[list[int]] = [[]]
    size = 0
    for n, body in enumerate(bodies):
        if found[-1] and (len(found[-1]) >= most or size + len(body) + 1 > BATCH_BYTES):
            found.append([])
            size = 0
        found[-1].append(n)
        size += len(body) + 1
    return [indexes for indexes in found if indexes]


def _encode(event: Event | Mapping[str, Any] | bytes) -> bytes:
    if isinstance(event, bytes):
        return event
    if isinstance(event, Mapping):
        return to_json(event)  # the hub validates it and names every broken field
    return event.model_dump_json(exclude_none=True).encode()
