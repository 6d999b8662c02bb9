"""The running hub verifies its record every ``HUB_AUDIT_VERIFY_S``, keeping the outcome for ops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy.exc import DBAPIError

from hub.audit.record import Verification, genesis_key, verify_live
from hub.audit.trust import RecordTrust
from hub.periodic import Schedule, repeat
from hub.recompute import RowDifference
from hub.timeliness import Clock
from schemas.wire import Wire

log = logging.getLogger(__name__)

RETRY_PAUSE_S = 5.0
VERIFY_TIMEOUT_S = 600.0
SHOWN = 20  # findings kept for the ops page (all are counted)
FIRST_CHECK_S = 60.0  # a hub that starts (or takes a role over) serves its backlog first
IDLE_FACTOR = 9.0  # after a check that took t seconds, at least 9 t before the next (≤ 10 % busy)


@dataclass
class AuditState:
    """The latest verification, for the ops page and the metrics (``verified_at`` None: not yet)."""

    public_key: str
    suite: str
    verified_at: datetime | None = None
    checkpoints: int = 0
    last_checkpoint_at: datetime | None = None
    messages: int = 0
    findings: int = 0
    examples: tuple[str, ...] = ()
    trouble: str | None = None
    refused: dict[str, int] = field(default_factory=dict)  # per recipient: bundles its SDK refused
    ledger_checked_at: datetime | None = None  # the deep check: every ledger row recomputed
    ledger_differences: int = 0
    ledger_examples: tuple[str, ...] = ()
    ledger_trouble: str | None = None


@dataclass
class AuditWatch:
    """Verifies the record on a schedule."""

    js: JetStreamContext
    wire: Wire
    trust: RecordTrust
    clock: Clock
    every_s: float
    state: AuditState = field(init=False)

    def __post_init__(self) -> None:
        keys = self.trust.keys
        self.state = AuditState(public_key=keys.public, suite=keys.suite)

    async def check(self) -> Verification:
        """Verify once and keep the outcome; new findings are logged as errors."""
        before = set(self.state.examples)
        result = await verify_live(self.js, self.wire, genesis_key(self.trust.keys.history))
        texts = tuple(f.text() for f in result.findings)
        state = self.state
        state.verified_at, state.messages = self.clock(), result.messages
        state.checkpoints, state.last_checkpoint_at = result.checkpoints, result.last_checkpoint_at
        state.findings, state.examples = len(texts), texts[:SHOWN]
        if new := [t for t in texts[:SHOWN] if t not in before]:
            log.error("audit.findings", extra={"count": len(texts), "new": new})
        else:
            log.info("audit.verified", extra={"checkpoints": result.checkpoints})
        return result

    async def count_refused(self, msg: Msg) -> None:
        """A recipient's SDK terminated a bundle: not signed by the hub, or unreadable."""
        consumer = msg.subject.rsplit(".", 1)[-1]
        org = consumer.removeprefix(self.wire.delivery_consumer(""))
        self.state.refused[org] = self.state.refused.get(org, 0) + 1
        log.error("audit.bundle_refused", extra={"recipient": org})

    async def check_ledger(self, deep: DeepCheck) -> list[RowDifference]:
        """Recompute every ledger row once and keep the outcome; differences are logged."""
        found = await deep()
        texts = tuple(d.text() for d in found)
        state = self.state
        state.ledger_checked_at, state.ledger_differences = self.clock(), len(texts)
        state.ledger_examples = texts[:SHOWN]
        if texts:
            log.error("audit.ledger_differs", extra={"count": len(texts), "rows": texts[:SHOWN]})
        else:
            log.info("audit.ledger_recomputed")
        return found

    async def run(self, stop: asyncio.Event) -> None:
        """Verify after ``every_s`` (at most a minute), then every ``every_s``; retry trouble."""
        await _every(stop, self.every_s, self.check, self._noted("trouble"), "audit.deferred")

    async def run_ledger(self, stop: asyncio.Event, deep: DeepCheck, every_s: float) -> None:
        """Recompute the ledger after ``every_s`` (at most a minute), then every ``every_s``.

        Not at once: a process that starts, or takes the role over from one that died, has a
        backlog to serve first, and a check re-reads the whole record.
        """
        check, noted = (lambda: self.check_ledger(deep)), self._noted("ledger_trouble")
        await _every(stop, every_s, check, noted, "audit.ledger_check_deferred")

    def _noted(self, trouble: str) -> Callable[[str | None], None]:
        return lambda text: setattr(self.state, trouble, text)


DeepCheck = Callable[[], Awaitable[list[RowDifference]]]


async def _every(
    stop: asyncio.Event,
    every_s: float,
    check: Callable[[], Awaitable[object]],
    noted: Callable[[str | None], None],
    event: str,
) -> None:
    schedule = Schedule(
        # a check re-reads the whole record: never let it take more than its share of the hub
        pause=lambda took: max(every_s, took * IDLE_FACTOR),
        retry_s=min(RETRY_PAUSE_S, every_s),
        timeout_s=VERIFY_TIMEOUT_S,
        trouble=(TimeoutError, nats.errors.Error, DBAPIError, OSError),
        first_after_s=min(every_s, FIRST_CHECK_S),
    )
    await repeat(stop, check, schedule, noted, event)
