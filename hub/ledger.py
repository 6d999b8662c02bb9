"""The delivery ledger: per event and recipient, when formed, published, delivered, acknowledged.

A projection of the events and receipts streams into SQL (SQLite by default, PostgreSQL in
production). Every write is an idempotent upsert whose result does not depend on how the two
streams interleave, so a rebuild from the streams gives the same rows as the live projection.

"Delivered" is what the recipient's receipts say: the earliest ``received_at`` of any receipt for
the pair (a ``failed`` attempt's too), never later than the hub stored that receipt. A recipient
system that dies before it sends any receipt leaves the pair pending, without a delivery time,
until a redelivery's receipt or the dead-letter record arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    case,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeEngine

from hub.errors import ConfigError
from hub.timeliness import shanghai_day
from schemas.receipt import Receipt

CHUNK = 500  # rows per statement: SQLite caps the number of bound parameters


class UtcDateTime(TypeDecorator[datetime]):
    """An aware moment stored in UTC with its offset (``timestamptz``; ISO text on SQLite)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Fixed-width ISO text on SQLite, so that text order is time order."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Refuse naive times; write UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger stores aware times only")
        utc = value.astimezone(UTC)
        return utc.isoformat(timespec="microseconds") if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Read back an aware UTC time."""
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.astimezone(UTC)


metadata = MetaData()

events_table = Table(
    "ledger_event",
    metadata,
    Column("event_key", String(200), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("category", String(40), nullable=False),
    Column("type", String(60), nullable=False),
    Column("formed_at", UtcDateTime, nullable=False),
    Column("formed_day", Date, nullable=False),
    Column("published_at", UtcDateTime, nullable=False),
    Column("events_seq", BigInteger, nullable=False),
    Column("recipients", Integer, nullable=False),
    Column("summary", String(400), nullable=False),
)

deliveries_table = Table(
    "ledger_delivery",
    metadata,
    Column("event_key", String(200), primary_key=True),
    Column("recipient", String(64), primary_key=True),
    # from the event (NULL while only a receipt is known)
    Column("publisher", String(64)),
    Column("category", String(40)),
    Column("formed_at", UtcDateTime),
    Column("formed_day", Date),
    Column("published_at", UtcDateTime),
    Column("published_day", Date),
    # from the receipts
    Column("delivered_at", UtcDateTime),
    Column("acknowledged_at", UtcDateTime),
    Column("acknowledged_day", Date),
    Column("dead_lettered_at", UtcDateTime),
    Column("attempts", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("reason", String(2000)),
    Column("receipt_seq", BigInteger),
    Index("ix_ledger_delivery_formed_day", "formed_day"),
    Index("ix_ledger_delivery_recipient_day", "recipient", "formed_day"),
    Index("ix_ledger_delivery_publisher_day", "publisher", "formed_day"),
    Index("ix_ledger_delivery_state", "state"),
)

STATE_ZH = {
    "pending": "待投递",
    "delivered": "已投递未签收",
    "acknowledged": "已签收",
    "dead_lettered": "死信",
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
    delivered_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_day: date | None
    dead_lettered_at: datetime | None
    attempts: int
    state: str
    reason: str | None
    receipt_seq: int | None

    @property
    def redeliveries(self) -> int:
        """Deliveries beyond the first."""
        return max(self.attempts - 1, 0)


def engine_url(url: str) -> str:
    """Accept plain ``sqlite:///…`` and ``postgresql://…`` URLs and pick the async drivers."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
    backend = parsed.get_backend_name()
    if backend not in driver:
        raise ConfigError(
            "HUB_LEDGER_URL", f"unsupported database {backend!r}: use sqlite or postgresql"
        )
    return parsed.set(drivername=driver[backend]).render_as_string(hide_password=False)


class Ledger:
    """Writes and reads the ledger tables."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._write = asyncio.Lock()  # one writer: SQLite would refuse a second
        self._compiled: dict[tuple[str, str], tuple[str, list[Callable[[Row], Any]]]] = {}

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *, schema: str | None = None) -> AsyncIterator[Ledger]:
        """Open (creating the tables if needed) and close the ledger at ``url``."""
        options: dict[str, Any] = {}
        if schema is not None:  # tests: one PostgreSQL schema per test
            options["connect_args"] = {"server_settings": {"search_path": schema}}
        engine = create_async_engine(engine_url(url), **options)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
            yield cls(engine)
        finally:
            await engine.dispose()

    async def apply(self, events: Sequence[EventRecord], receipts: Sequence[ReceiptRecord]) -> None:
        """Record events and receipts in one transaction (receipts in stream order)."""
        events = _first_of_each_key(events)
        async with self._write, self.engine.begin() as conn:
            for chunk in _chunks(list(_event_rows(events)), CHUNK):
                await self._execute(conn, "events", chunk)
            for chunk in _chunks([_pair_row(e, r) for e in events for r in e.recipients], CHUNK):
                await self._execute(conn, "pairs", chunk)
            for status, run in _runs(receipts):
                await self._execute(conn, status, [_receipt_row(r) for r in run])

    async def _execute(self, conn: AsyncConnection, kind: str, rows: list[dict[str, Any]]) -> None:
        """Run one upsert over many rows straight through the driver.

        The statement is compiled once per database; the rows' values are converted here, which
        spares SQLAlchemy's per-row parameter processing (the projection's main cost).
        """
        key = (conn.dialect.name, kind)
        if key not in self._compiled:
            statement = {
                "events": self._upsert_events,
                "pairs": self._upsert_pairs,
            }.get(kind, lambda c: self._upsert_receipts(c, kind))(conn)
            compiled = statement.compile(dialect=conn.dialect)
            text = conn.dialect.name == "sqlite"
            self._compiled[key] = (
                str(compiled),
                [_getter(name, compiled.params, text) for name in compiled.positiontup or []],
            )
        sql, getters = self._compiled[key]
        await conn.exec_driver_sql(sql, [tuple(get(row) for get in getters) for row in rows])

    async def wipe(self) -> None:
        """Delete every row (before a rebuild)."""
        async with self._write, self.engine.begin() as conn:
            await conn.execute(delete(deliveries_table))
            await conn.execute(delete(events_table))

    async def pairs(
        self,
        *,
        day_from: date,
        day_to: date,
        recipient: str | None = None,
        publisher: str | None = None,
    ) -> list[DeliveryRow]:
        """Pairs of events formed on ``day_from``..``day_to`` (Shanghai days), or one org's."""
        t = deliveries_table
        query = select(t).where(t.c.formed_day >= day_from, t.c.formed_day <= day_to)
        if recipient is not None:
            query = query.where(t.c.recipient == recipient)
        if publisher is not None:
            query = query.where(t.c.publisher == publisher)
        async with self.engine.connect() as conn:
            result = await conn.execute(query.order_by(t.c.formed_at, t.c.event_key, t.c.recipient))
            return [DeliveryRow(**row._mapping) for row in result]

    async def dump(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Every row of both tables, in key order (to compare two ledgers)."""
        async with self.engine.connect() as conn:
            events = await conn.execute(select(events_table).order_by(events_table.c.event_key))
            pairs = await conn.execute(
                select(deliveries_table).order_by(
                    deliveries_table.c.event_key, deliveries_table.c.recipient
                )
            )
            return [tuple(r) for r in events], [tuple(r) for r in pairs]

    async def events(self) -> list[EventRow]:
        """Every accepted event the ledger knows, in stream order."""
        t = events_table
        query = select(t.c.event_key, t.c.events_seq, t.c.source, t.c.category, t.c.formed_at)
        async with self.engine.connect() as conn:
            result = await conn.execute(query.order_by(t.c.events_seq))
            return [EventRow(**row._mapping) for row in result]

    async def counts(self) -> dict[str, int]:
        """How many pairs are in each state."""
        t = deliveries_table
        async with self.engine.connect() as conn:
            result = await conn.execute(select(t.c.state, func.count()).group_by(t.c.state))
            return {state: int(n) for state, n in result}

    async def backlog(self, *, category: str | None = None) -> dict[str, Backlog]:
        """Per recipient: events still waiting for its acknowledgement (dead letters apart)."""
        t = deliveries_table
        waiting = t.c.acknowledged_at.is_(None) & (t.c.state != "dead_lettered")
        query = (
            select(
                t.c.recipient,
                func.count().filter(waiting),
                func.min(t.c.published_at).filter(waiting),
                func.max(t.c.acknowledged_at),
                func.count().filter(t.c.state == "dead_lettered"),
            )
            .where(t.c.published_at.is_not(None))
            .group_by(t.c.recipient)
        )
        if category is not None:
            query = query.where(t.c.category == category)
        published, acknowledged = UtcDateTime(), UtcDateTime()
        async with self.engine.connect() as conn:
            dialect = conn.dialect
            rows = (await conn.execute(query)).all()
        return {
            recipient: Backlog(
                waiting=int(waiting_n),
                oldest=published.process_result_value(oldest, dialect),
                last_receipt=acknowledged.process_result_value(last, dialect),
                dead_lettered=int(dead),
            )
            for recipient, waiting_n, oldest, last, dead in rows
        }

    # -- the upserts ----------------------------------------------------------------------------

    @staticmethod
    def _insert(conn: AsyncConnection, table: Table) -> Any:
        dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
        return dialect.insert(table)

    def _upsert_events(self, conn: AsyncConnection) -> Any:
        # first stored wins: a later copy of the same key (outside the de-dup window) is ignored
        return self._insert(conn, events_table).on_conflict_do_nothing(index_elements=["event_key"])

    def _upsert_pairs(self, conn: AsyncConnection) -> Any:
        t = deliveries_table
        stmt = self._insert(conn, t)
        event_columns = (
            "publisher",
            "category",
            "formed_at",
            "formed_day",
            "published_at",
            "published_day",
        )
        return stmt.on_conflict_do_update(
            index_elements=["event_key", "recipient"],
            set_={name: stmt.excluded[name] for name in event_columns},
            where=t.c.published_at.is_(None),  # a receipt came first: fill in the event
        )

    def _upsert_receipts(self, conn: AsyncConnection, status: str) -> Any:
        t = deliveries_table
        stmt = self._insert(conn, t)
        new = stmt.excluded
        earliest_delivery = case(
            (t.c.delivered_at.is_(None), new.delivered_at),
            (new.delivered_at < t.c.delivered_at, new.delivered_at),
            else_=t.c.delivered_at,
        )
        most_attempts = case((new.attempts > t.c.attempts, new.attempts), else_=t.c.attempts)
        common = {"delivered_at": earliest_delivery, "attempts": most_attempts}
        if status == "acknowledged":
            updates = common | {
                "acknowledged_at": new.acknowledged_at,
                "acknowledged_day": new.acknowledged_day,
                "receipt_seq": new.receipt_seq,
                "state": new.state,
            }
        elif status == "dead_lettered":
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
                "state": case((t.c.state == "pending", new.state), else_=t.c.state),
            }
        # an acknowledged pair is final: duplicates and late failures change nothing
        return stmt.on_conflict_do_update(
            index_elements=["event_key", "recipient"],
            set_=updates,
            where=t.c.acknowledged_at.is_(None),
        )


Row = dict[str, Any]
_TIMES = {
    c.name
    for t in (events_table, deliveries_table)
    for c in t.columns
    if isinstance(c.type, UtcDateTime)
}
_DATES = {
    c.name for t in (events_table, deliveries_table) for c in t.columns if isinstance(c.type, Date)
}


def _getter(name: str, defaults: dict[str, Any], text: bool) -> Callable[[Row], Any]:
    """How one bound parameter is read from a row, as the driver takes it.

    Times go in UTC (fixed-width ISO text on SQLite, as ``UtcDateTime`` writes them), dates as ISO
    text on SQLite; parameters that are not columns (constants of the statement) keep their value.
    """
    if name not in _TIMES | _DATES:
        default = defaults.get(name)
        return lambda row: row.get(name, default)
    if name in _DATES:
        return (
            (lambda row: v.isoformat() if (v := row[name]) is not None else None)
            if text
            else (lambda row: row[name])
        )
    if text:
        return lambda row: (
            v.astimezone(UTC).isoformat(timespec="microseconds")
            if (v := row[name]) is not None
            else None
        )
    return lambda row: v.astimezone(UTC) if (v := row[name]) is not None else None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # reports read while the projector writes
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _event_rows(events: Iterable[EventRecord]) -> Iterator[dict[str, Any]]:
    for e in events:
        yield {
            "event_key": e.key,
            "source": e.source,
            "event_id": e.event_id,
            "category": e.category,
            "type": e.type,
            "formed_at": e.formed_at,
            "formed_day": shanghai_day(e.formed_at),
            "published_at": e.published_at,
            "events_seq": e.events_seq,
            "recipients": len(e.recipients),
            "summary": e.summary[:400],
        }


def _pair_row(e: EventRecord, recipient: str) -> dict[str, Any]:
    return {
        **_EMPTY_RECEIPT,
        "event_key": e.key,
        "recipient": recipient,
        "publisher": e.source,
        "category": e.category,
        "formed_at": e.formed_at,
        "formed_day": shanghai_day(e.formed_at),
        "published_at": e.published_at,
        "published_day": shanghai_day(e.published_at),
        "attempts": 0,
        "state": "pending",
    }


_EMPTY_EVENT = dict.fromkeys(
    ("publisher", "category", "formed_at", "formed_day", "published_at", "published_day")
)
_EMPTY_RECEIPT = dict.fromkeys(
    (
        "delivered_at",
        "acknowledged_at",
        "acknowledged_day",
        "dead_lettered_at",
        "reason",
        "receipt_seq",
    )
)


def _receipt_row(record: ReceiptRecord) -> dict[str, Any]:
    receipt, at = record.receipt, record.at
    row: dict[str, Any] = {
        **_EMPTY_EVENT,
        **_EMPTY_RECEIPT,
        "event_key": receipt.event_key,
        "recipient": receipt.recipient,
        "delivered_at": min(receipt.received_at, at),  # the recipient's clock, capped by ours
        "attempts": receipt.deliveries,
        "reason": receipt.reason,
    }
    if receipt.status == "acknowledged":
        row |= {
            "acknowledged_at": at,
            "acknowledged_day": shanghai_day(at),
            "receipt_seq": record.seq,
            "state": "acknowledged",
            "reason": None,
        }
    elif receipt.status == "dead_lettered":
        row |= {"dead_lettered_at": at, "state": "dead_lettered"}
    else:
        row["state"] = "delivered"
    return row


def _runs(receipts: Sequence[ReceiptRecord]) -> Iterator[tuple[str, list[ReceiptRecord]]]:
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


def _first_of_each_key(events: Sequence[EventRecord]) -> list[EventRecord]:
    """Drop a repeated key within one batch (the first stored wins, as across batches)."""
    seen: set[str] = set()
    return [e for e in events if e.key not in seen and not seen.add(e.key)]  # type: ignore[func-returns-value]


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
