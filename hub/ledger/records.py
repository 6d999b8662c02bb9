"""What goes into the ledger (events and receipts) and what comes out (rows, backlogs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from schemas.receipt import Receipt


class DeliveryState(StrEnum):
    """Where one (event, recipient) pair stands."""

    PENDING = "pending"  # expected, no receipt yet
    DELIVERED = "delivered"  # handed over at least once (a failed receipt), not acknowledged
    ACKNOWLEDGED = "acknowledged"  # final (only the first acknowledgement stored counts)
    DEAD_LETTERED = "dead_lettered"  # the recipient could not take it after every attempt

    @property
    def zh(self) -> str:
        """The state in Chinese."""
        return STATE_ZH[self]


STATE_ZH = {
    DeliveryState.PENDING: "待投递",
    DeliveryState.DELIVERED: "已投递未签收",
    DeliveryState.ACKNOWLEDGED: "已签收",
    DeliveryState.DEAD_LETTERED: "死信",
}


@dataclass(frozen=True)
class EventRecord:
    """An accepted event, as the events stream holds it."""

    key: str
    source: str
    event_id: str
    category: str
    type: str
    formed_at: datetime
    published_at: datetime
    events_seq: int
    recipients: tuple[str, ...]
    summary: str


@dataclass(frozen=True)
class ReceiptRecord:
    """A receipt with the time the hub's store received it (the time the ledger trusts)."""

    receipt: Receipt
    at: datetime
    seq: int


@dataclass(frozen=True)
class Backlog:
    """One recipient's unacknowledged events, and its last receipt."""

    waiting: int
    oldest: datetime | None  # when the oldest waiting event was published
    last_receipt: datetime | None
    dead_lettered: int


@dataclass(frozen=True)
class EventRow:
    """An accepted event as the ledger recorded it."""

    event_key: str
    events_seq: int
    source: str
    category: str
    formed_at: datetime


@dataclass(frozen=True)
class DeliveryRow:
    """One (event, recipient) pair as the ledger knows it."""

    event_key: str
    recipient: str
    publisher: str | None
    category: str | None
    formed_at: datetime | None
    formed_day: date | None
    published_at: datetime | None
    published_day: date | None
    events_seq: int | None
    delivered_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_day: date | None
    dead_lettered_at: datetime | None
    attempts: int
    state: DeliveryState
    reason: str | None
    receipt_seq: int | None
    lag_us: int | None  # published → acknowledged, once both are known

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", DeliveryState(self.state))

    @property
    def redeliveries(self) -> int:
        """Deliveries beyond the first."""
        return max(self.attempts - 1, 0)

    @property
    def is_waiting(self) -> bool:
        """Not acknowledged and not given up on: the recipient still owes a receipt."""
        return self.acknowledged_at is None and self.state is not DeliveryState.DEAD_LETTERED


@dataclass(frozen=True)
class PairFigures:
    """The sums of a group of judged pairs, as the database counts them (``hub.ledger.figures``).

    ``org`` is ``None`` for every organisation together, ``category`` ``None`` for every category
    of ``org``.
    """

    org: str | None
    category: str | None
    deliveries: int
    events: int
    same_day_events: int  # events published on the Shanghai day they were formed
    acknowledged: int
    on_time: int
    late: int
    late_publisher: int
    late_delivery: int
    pending: int
    dead_lettered: int
    lags_us: tuple[int, ...]  # published → acknowledged, whole microseconds, ascending
