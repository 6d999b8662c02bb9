"""The case desk: a case step is judged against its case and appended, one step at a time.

The steps of a case share one subject of the events stream. The desk reads the case's latest step
(its state travels in a header), judges the new step, and appends it only if that subject has not
moved since (``Nats-Expected-Last-Subject-Sequence``): of two answers sent at once, one is stored
and the other is judged again against the case it finds, and refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hub.cases.rules import CaseRules, case_key
from hub.cases.state import CaseState, case_token
from hub.errors import EventRejected
from schemas.envelope import Event
from schemas.rules import explain
from schemas.wire import HEADER_CASE_STATE, HEADER_EXPECTED_LAST, HEADER_RECIPIENTS, Wire

log = logging.getLogger(__name__)

RACES = 8  # a case changing under a step this many times running is not a race but a flood


class CaseRaced(Exception):
    """The case's subject moved between reading it and appending to it."""


@dataclass(frozen=True)
class LastStep:
    """The latest stored step of a case."""

    seq: int
    body: bytes
    state: CaseState


class CaseStore(Protocol):
    """Where case steps are kept (the events stream)."""

    async def last(self, subject: str) -> LastStep | None:
        """The latest step stored on ``subject``."""

    async def body(self, seq: int) -> bytes:
        """The stored body at ``seq``."""

    async def append(self, subject: str, body: bytes, headers: dict[str, str]) -> tuple[int, bool]:
        """Store a step; raises ``CaseRaced`` when the expected sequence no longer holds."""


class AttachmentCheck(Protocol):
    """What the desk asks of the attachment store."""

    async def check(self, event: Event, opening_transfer: bool) -> None:
        """Refuse attachments the source may not use."""

    async def grant(self, state: CaseState) -> None:
        """Record the case's use of its attachments."""


@dataclass(frozen=True)
class Admitted:
    """A step stored: its sequence, whether it was a resend, the case after it, its recipients."""

    seq: int
    duplicate: bool
    state: CaseState
    recipients: tuple[str, ...]


class CaseDesk:
    """Judges and stores case steps."""

    def __init__(
        self, store: CaseStore, rules: CaseRules, attachments: AttachmentCheck, wire: Wire
    ) -> None:
        self.store, self.rules, self.attachments, self.wire = store, rules, attachments, wire

    def subject(self, key: str) -> str:
        """The events-stream subject of a case."""
        return self.wire.case(case_token(key))

    async def state(self, key: str) -> CaseState | None:
        """A case's state after its latest step."""
        last = await self.store.last(self.subject(key))
        return last.state if last else None

    async def admit(
        self, event: Event, body: bytes, headers: dict[str, str], at: datetime
    ) -> Admitted:
        """Judge ``event`` against its case and append it.

        Raises:
            EventRejected: the step is not allowed (every reason named), or is a changed resend.
            StoreUnavailable: the store did not confirm (from the store).
        """
        key = case_key(event)
        subject = self.subject(key)
        for _ in range(RACES):
            last = await self.store.last(subject)
            state = last.state if last else None
            if state is not None and (done := state.step(event.key)) is not None:
                return await self._resent(event, body, state, done.seq or (last.seq if last else 0))
            outcome = self.rules.apply(state.model_copy(deep=True) if state else None, event, at)
            opening = event.category == "case_transfer" and state is None
            await self.attachments.check(event, opening or _after_extension(event, state))
            stamped = headers | {
                HEADER_CASE_STATE: outcome.state.header(),
                HEADER_EXPECTED_LAST: str(last.seq if last else 0),
                HEADER_RECIPIENTS: ",".join(outcome.recipients),
            }
            try:
                seq, duplicate = await self.store.append(subject, body, stamped)
            except CaseRaced:
                log.info("case.raced", extra={"case": key, "step": event.key})
                continue
            await self.attachments.grant(outcome.state)
            log.info("case.step", extra={"case": key, "step": event.type, "seq": seq})
            return Admitted(seq, duplicate, outcome.state, outcome.recipients)
        raise EventRejected([explain("data.case", "case_state", _busy(key))])

    async def _resent(self, event: Event, body: bytes, state: CaseState, seq: int) -> Admitted:
        """The same step again: harmless when identical, an id conflict when changed."""
        if await self.store.body(seq) != body:
            raise EventRejected([explain("id", "id_conflict", {"id": event.id, "seq": seq})])
        step = state.step(event.key)
        return Admitted(seq, True, state, step.recipients if step else ())


def _after_extension(event: Event, state: CaseState | None) -> bool:
    """A transfer sent after its extension notice opens the transfer proper."""
    return event.category == "case_transfer" and state is not None and len(state.steps) == 1


def _busy(key: str) -> dict[str, str]:
    return {"case": key, "status": "busy", "status_zh": "正被频繁更新", "step_zh": "办理此步骤"}
