"""The ledger's tables, their column types and the schema version stored beside them."""

from __future__ import annotations

from datetime import UTC, datetime
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
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.types import TypeEngine

SCHEMA_VERSION = 3
"""The version of the tables below; a change to them is a new version (rebuild from the streams).

Version 2 added the case tables: a ledger of version 1 is upgraded in place (the new tables are
created; they fill from the streams with ``hub ledger rebuild``, or as new case steps arrive).
Version 3 added a pair's ``events_seq`` and ``lag_us``, which the sums indexes hold instead of
the event key and both times: a ledger of version 1 or 2 gets the columns, filled from what it
holds, when it is opened (``hub.ledger.upgrade``). Indexes are no part of the version: a ledger
gets the missing ones when it is opened.
"""
ADDITIVE_SINCE = {1, 2}  # versions that become the current one by adding what is missing


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

meta_table = Table(
    "ledger_meta",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", String(200), nullable=False),
)

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

FIGURES_READ = ("published_day", "acknowledged_day", "state", "lag_us", "events_seq")
"""What the reports' figures read of a pair besides its organisation, formed day and category.

Short integers rather than the event key and two times: a receipt rewrites the pair's entry in
the recipient's index, and with 50-character keys and two 32-character times in it that rewrite
cost the ledger more than the rest of the receipt (``bench/README.md``, "The ledger's writes")."""

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
    Column("events_seq", BigInteger),  # the event's place in the events stream: one per event
    # from the receipts
    Column("delivered_at", UtcDateTime),
    Column("acknowledged_at", UtcDateTime),
    Column("acknowledged_day", Date),
    Column("dead_lettered_at", UtcDateTime),
    Column("attempts", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("reason", String(2000)),
    Column("receipt_seq", BigInteger),
    # published → acknowledged in whole microseconds, at least 0, once both are known
    Column("lag_us", BigInteger),
    Index("ix_ledger_delivery_formed_day", "formed_day"),
    # An organisation's year for the reports (hub.ledger.figures). Its rows are spread over the
    # whole table (a recipient's one per event, every few pages): these indexes hold what the
    # figures read, so that a year is read from them, not from the table. On PostgreSQL both do,
    # at little cost in writes: a receipt changes state, which is indexed, so every index of its
    # row gets a new entry anyway (no HOT update). SQLite rewrites an index only when its own
    # columns change, and a covering index costs its ledger writes CPU: there only the
    # recipient's covers, and a publisher's pairs, which lie together (an event's pairs are
    # written at once), are read from the table. The day comes second so that the entries
    # written each day stay together at the end of each organisation's. PostgreSQL also keeps
    # the event key in both, for the scorecard's items (``figures.faults``): it checks an index
    # scan's conditions only after reading the row from the table, unless the index covers the
    # query. SQLite checks them in the index and reads only the matching rows.
    Index(
        "ix_ledger_delivery_recipient_sums",
        "recipient",
        "formed_day",
        "category",
        *FIGURES_READ,
        postgresql_include=["event_key"],
    ),
    Index(
        "ix_ledger_delivery_publisher_sums",
        "publisher",
        "formed_day",
        postgresql_include=["category", *FIGURES_READ, "recipient", "event_key"],
    ),
    Index("ix_ledger_delivery_state", "state"),
    # each recipient's last acknowledgement (the backlog): an entry only once a pair is
    # acknowledged, written after the recipient's others (acknowledgement times only grow)
    Index(
        "ix_ledger_delivery_acknowledged",
        "recipient",
        "category",
        "acknowledged_at",
        sqlite_where=text("acknowledged_at IS NOT NULL AND published_at IS NOT NULL"),
        postgresql_where=text("acknowledged_at IS NOT NULL AND published_at IS NOT NULL"),
    ),
)
OBSOLETE_INDEXES = (
    "ix_ledger_delivery_recipient_day",
    "ix_ledger_delivery_publisher_day",
    "ix_ledger_delivery_recipient_figures",
    "ix_ledger_delivery_publisher_figures",
)
"""Indexes of earlier versions, dropped on opening (the sums indexes serve their queries)."""

DATA_TABLES = (events_table, deliveries_table)
TIME_COLUMNS = frozenset(
    c.name for t in DATA_TABLES for c in t.columns if isinstance(c.type, UtcDateTime)
)
DATE_COLUMNS = frozenset(c.name for t in DATA_TABLES for c in t.columns if isinstance(c.type, Date))

cases_table = Table(
    "ledger_case",
    metadata,
    Column("case_key", String(200), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("county", String(64), nullable=False),
    Column("initiator", String(64), nullable=False),
    Column("receiver", String(64), nullable=False),
    Column("status", String(30), nullable=False),
    Column("closed", Integer, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("state", Text, nullable=False),  # the case's state after its latest step (JSON)
    Index("ix_ledger_case_initiator", "initiator"),
    Index("ix_ledger_case_receiver", "receiver"),
)

case_deadlines_table = Table(
    "ledger_case_deadline",
    metadata,
    Column("case_key", String(200), primary_key=True),
    Column("name", String(40), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("party", String(64), nullable=False),
    Column("step_zh", String(100), nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("met_at", UtcDateTime),
    Column("paused", Integer, nullable=False),
    Column("noticed_overdue", Integer, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Index("ix_ledger_case_deadline_open", "met_at", "due_at"),
    Index("ix_ledger_case_deadline_party", "party"),
)
CASE_TABLES = (cases_table, case_deadlines_table)
