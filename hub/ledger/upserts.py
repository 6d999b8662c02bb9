"""The ledger's writes: idempotent upserts whose outcome does not depend on arrival order.

Events fill in their pairs; receipts move a pair forward (pending → delivered → acknowledged, or
dead-lettered) and never back: an acknowledged pair changes only for an acknowledgement stored
before the one it holds (applied later, after a redelivery). Whichever of an event and its
acknowledgement comes second writes the pair's lag (published → acknowledged), so a pair's row is
the same in either order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import BigInteger, ColumnElement, Integer, Table, case, cast, extract, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from hub.ledger.records import DeliveryState, EventRecord, ReceiptRecord
from hub.ledger.tables import DATE_COLUMNS, TIME_COLUMNS, deliveries_table, events_table
from hub.timeliness import shanghai_day

Row = dict[str, Any]
T = TypeVar("T")
CHUNK = 500  # rows per statement: SQLite caps the number of bound parameters
EVENT_COLUMNS = (
    "publisher",
    "category",
    "formed_at",
    "formed_day",
    "published_at",
    "published_day",
    "events_seq",
)
RECEIPT_COLUMNS = (
    "delivered_at",
    "acknowledged_at",
    "acknowledged_day",
    "dead_lettered_at",
    "reason",
    "receipt_seq",
)


def lag_us(
    dialect: Dialect, published: ColumnElement[Any], acknowledged: ColumnElement[Any]
) -> ColumnElement[Any]:
    """Published → acknowledged in whole microseconds, at least 0 (NULL while either is)."""
    if dialect.name == "sqlite":  # fixed-width ISO text in UTC: YYYY-MM-DDTHH:MM:SS.ffffff+00:00

        def seconds(moment: ColumnElement[Any]) -> ColumnElement[Any]:
            return func.julianday(func.substr(moment, 1, 19))  # whole seconds, in days

        def micro(moment: ColumnElement[Any]) -> ColumnElement[Any]:
            return cast(func.substr(moment, 21, 6), Integer)

        # a day is 86,400 s exactly; the rounding only drops the float's error (< 1 ms)
        whole = cast(func.round((seconds(acknowledged) - seconds(published)) * 86_400), Integer)
        lag = whole * 1_000_000 + micro(acknowledged) - micro(published)
        return func.max(lag, 0)  # the scalar max: NULL when either time is
    # EXTRACT(epoch) is numeric: exact to the microsecond
    apart = extract("epoch", acknowledged) - extract("epoch", published)
    exact = cast(apart * 1_000_000, BigInteger)
    return case((exact < 0, 0), else_=exact)


def _insert(dialect: Dialect, table: Table) -> Any:
    return (sqlite if dialect.name == "sqlite" else postgresql).insert(table)


def upsert_events(dialect: Dialect) -> Any:
    """Insert accepted events; the first stored wins (a later copy of a key is ignored)."""
    return _insert(dialect, events_table).on_conflict_do_nothing(index_elements=["event_key"])


def upsert_pairs(dialect: Dialect) -> Any:
    """Insert the expected pairs of an event, or fill in a pair a receipt created first."""
    t = deliveries_table
    stmt = _insert(dialect, t)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["event_key", "recipient"],
        set_={name: new[name] for name in EVENT_COLUMNS}
        | {"lag_us": lag_us(dialect, new.published_at, t.c.acknowledged_at)},
        where=t.c.published_at.is_(None),
    )


def upsert_receipts(dialect: Dialect, status: str) -> Any:
    """Apply receipts of one status; an acknowledged pair keeps the first acknowledgement stored.

    Other receipts never change an acknowledged pair; an acknowledgement replaces one stored
    after it, with its own attempts (a receipts batch redelivered after a broker restart can be
    applied after a newer one).
    """
    t = deliveries_table
    stmt = _insert(dialect, t)
    new = stmt.excluded
    earliest_delivery = case(
        (t.c.delivered_at.is_(None), new.delivered_at),
        (new.delivered_at < t.c.delivered_at, new.delivered_at),
        else_=t.c.delivered_at,
    )
    most_attempts = case((new.attempts > t.c.attempts, new.attempts), else_=t.c.attempts)
    common = {"delivered_at": earliest_delivery, "attempts": most_attempts}
    if status == DeliveryState.ACKNOWLEDGED:
        # the first acknowledgement stored counts, whatever order they are applied in (after a
        # broker restart a redelivered receipts batch can come after a newer one)
        updates = common | {
            "attempts": new.attempts,
            "acknowledged_at": new.acknowledged_at,
            "acknowledged_day": new.acknowledged_day,
            "receipt_seq": new.receipt_seq,
            "state": new.state,
            "lag_us": lag_us(dialect, t.c.published_at, new.acknowledged_at),
        }
    elif status == DeliveryState.DEAD_LETTERED:
        updates = common | {
            "dead_lettered_at": case(
                (t.c.dead_lettered_at.is_(None), new.dead_lettered_at),
                else_=t.c.dead_lettered_at,
            ),
            "reason": new.reason,
            "state": new.state,
        }
    else:  # failed: handed over at least once
        updates = common | {
            "reason": new.reason,
            "state": case((t.c.state == DeliveryState.PENDING, new.state), else_=t.c.state),
        }
    unacknowledged = t.c.acknowledged_at.is_(None)
    if status == DeliveryState.ACKNOWLEDGED:
        unacknowledged = unacknowledged | (new.receipt_seq < t.c.receipt_seq)
    return stmt.on_conflict_do_update(
        index_elements=["event_key", "recipient"], set_=updates, where=unacknowledged
    )


def statement(dialect: Dialect, kind: str) -> Any:
    """The upsert of ``kind``: ``events``, ``pairs`` or a receipt status."""
    if kind == "events":
        return upsert_events(dialect)
    if kind == "pairs":
        return upsert_pairs(dialect)
    return upsert_receipts(dialect, kind)


@dataclass(frozen=True)
class Bound:
    """One upsert compiled for a database, and how rows become its parameters.

    The parameters go to the driver as it takes them, which spares SQLAlchemy's per-row
    parameter processing (the projection's main cost).
    """

    sql: str
    names: tuple[str, ...]  # of the parameters, in order
    getters: tuple[Callable[[Row], Any], ...]

    @classmethod
    def compile(cls, dialect: Dialect, kind: str) -> Bound:
        """The upsert of ``kind`` (``statement``) on ``dialect``."""
        compiled = statement(dialect, kind).compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        text = dialect.name == "sqlite"
        return cls(str(compiled), names, tuple(getter(n, compiled.params, text) for n in names))

    def params(self, rows: Iterable[Row]) -> Iterator[tuple[Any, ...]]:
        """Each row's parameters."""
        for row in rows:
            yield tuple([get(row) for get in self.getters])

    def receipt_params(self, records: Iterable[ReceiptRecord]) -> Iterator[tuple[Any, ...]]:
        """Each receipt's parameters: a stored message's converted once, then each receipt's own.

        The receipts of one message share its time, sequence and (in a run) status: only the
        columns in ``RECEIPT_OWN`` are converted again for the next receipt of the message.
        """
        own = [
            (i, get)
            for i, (n, get) in enumerate(zip(self.names, self.getters, strict=True))
            if n in RECEIPT_OWN
        ]
        values: list[Any] = []
        message: tuple[datetime, int, str] | None = None
        for record in records:
            row = receipt_row(record)
            if (record.at, record.seq, record.receipt.status) != message:
                message = (record.at, record.seq, record.receipt.status)
                values = [get(row) for get in self.getters]
            else:
                for i, get in own:
                    values[i] = get(row)
            yield tuple(values)

    def pair_params(self, events: Iterable[EventRecord]) -> Iterator[tuple[Any, ...]]:
        """Each expected pair's parameters: an event's converted once, each recipient put in."""
        slots = [i for i, name in enumerate(self.names) if name == "recipient"]
        for e in events:
            row = pair_row(e, "")
            values = [get(row) for get in self.getters]
            for recipient in e.recipients:
                for i in slots:
                    values[i] = recipient
                yield tuple(values)


def getter(name: str, defaults: dict[str, Any], text: bool) -> Callable[[Row], Any]:
    """How one bound parameter is read from a row, as the driver takes it.

    Times go in UTC (fixed-width ISO text on SQLite, as ``UtcDateTime`` writes them), dates as ISO
    text on SQLite; parameters that are not columns (constants of the statement) keep their value.
    """
    if name not in TIME_COLUMNS | DATE_COLUMNS:
        default = defaults.get(name)
        return lambda row: row.get(name, default)
    if name in DATE_COLUMNS:
        return (
            (lambda row: v.isoformat() if (v := row[name]) is not None else None)
            if text
            else (lambda row: row[name])
        )
    if text:
        return lambda row: _utc_text(v) if (v := row[name]) is not None else None
    return lambda row: _utc(v) if (v := row[name]) is not None else None


@functools.lru_cache(maxsize=8192)
def _utc_text(moment: datetime) -> str:
    # the receipts of one message share its stored time: each converted once, not per row
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@functools.lru_cache(maxsize=8192)
def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


@functools.lru_cache(maxsize=8192)
def _day(moment: datetime) -> date:
    return shanghai_day(moment)


def event_rows(events: Iterable[EventRecord]) -> Iterator[Row]:
    """The ``ledger_event`` rows of accepted events."""
    for e in events:
        yield {
            "event_key": e.key,
            "source": e.source,
            "event_id": e.event_id,
            "category": e.category,
            "type": e.type,
            "formed_at": e.formed_at,
            "formed_day": _day(e.formed_at),
            "published_at": e.published_at,
            "events_seq": e.events_seq,
            "recipients": len(e.recipients),
            "summary": e.summary[:400],
        }


def pair_row(e: EventRecord, recipient: str) -> Row:
    """An expected (event, recipient) pair, pending until a receipt says otherwise."""
    return {
        **dict.fromkeys(RECEIPT_COLUMNS),
        "event_key": e.key,
        "recipient": recipient,
        "publisher": e.source,
        "category": e.category,
        "formed_at": e.formed_at,
        "formed_day": _day(e.formed_at),
        "published_at": e.published_at,
        "published_day": _day(e.published_at),
        "events_seq": e.events_seq,
        "lag_us": None,  # written with the acknowledgement
        "attempts": 0,
        "state": DeliveryState.PENDING.value,
    }


RECEIPT_OWN = frozenset({"event_key", "recipient", "delivered_at", "attempts", "reason"})
"""The columns of a receipt's row that differ between the receipts of one stored message."""


def receipt_row(record: ReceiptRecord) -> Row:
    """The pair a receipt speaks of, as far as the receipt knows it."""
    receipt, at = record.receipt, record.at
    row: Row = {
        **dict.fromkeys(EVENT_COLUMNS),
        **dict.fromkeys(RECEIPT_COLUMNS),
        "event_key": receipt.event_key,
        "recipient": receipt.recipient,
        "delivered_at": min(receipt.received_at, at),  # the recipient's clock, capped by ours
        "attempts": receipt.deliveries,
        "reason": receipt.reason,
        "lag_us": None,  # written when the event is known
    }
    if receipt.status == "acknowledged":
        row |= {
            "acknowledged_at": at,
            "acknowledged_day": _day(at),
            "receipt_seq": record.seq,
            "state": DeliveryState.ACKNOWLEDGED.value,
            "reason": None,
        }
    elif receipt.status == "dead_lettered":
        row |= {"dead_lettered_at": at, "state": DeliveryState.DEAD_LETTERED.value}
    else:
        row["state"] = DeliveryState.DELIVERED.value
    return row


def runs(receipts: Sequence[ReceiptRecord]) -> Iterator[tuple[str, list[ReceiptRecord]]]:
    """Consecutive receipts of one status, each pair at most once per run, in stream order.

    One multi-row upsert may not touch a row twice (PostgreSQL refuses it), and receipts of the
    same pair must apply in the order they were stored.
    """
    run: list[ReceiptRecord] = []
    pairs: set[tuple[str, str]] = set()
    for record in receipts:
        pair = (record.receipt.event_key, record.receipt.recipient)
        if run and (record.receipt.status != run[0].receipt.status or pair in pairs):
            yield run[0].receipt.status, run
            run, pairs = [], set()
        run.append(record)
        pairs.add(pair)
    if run:
        yield run[0].receipt.status, run


def first_of_each_key(events: Sequence[EventRecord]) -> list[EventRecord]:
    """Drop a repeated key within one batch (the first stored wins, as across batches)."""
    seen: set[str] = set()
    kept = []
    for e in events:
        if e.key not in seen:
            seen.add(e.key)
            kept.append(e)
    return kept


def chunks(rows: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """``rows`` in lists of at most ``size``."""
    chunk: list[T] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
