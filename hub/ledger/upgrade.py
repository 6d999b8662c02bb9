"""Bringing a ledger of an earlier schema version up to today's columns, keeping its rows."""

from __future__ import annotations

import logging

from sqlalchemy import Connection, inspect, select, text, update

from hub.ledger.tables import deliveries_table, events_table
from hub.ledger.upserts import lag_us

log = logging.getLogger(__name__)


def add_missing_columns(conn: Connection, existing: set[str]) -> None:
    """Give the pairs table of an earlier version the columns it lacks, filled from its rows.

    Version 3's ``events_seq`` comes from the event's row and ``lag_us`` from the pair's own
    times, as the upserts would have written them. Runs before the indexes, which use them.
    """
    t = deliveries_table
    if t.name not in existing:
        return  # just created, with every column
    present = {c["name"] for c in inspect(conn).get_columns(t.name)}
    missing = [c for c in t.columns if c.name not in present]
    if not missing:
        return
    log.info("ledger.adding_columns", extra={"columns": [c.name for c in missing]})
    quote = conn.dialect.identifier_preparer
    for column in missing:
        conn.execute(
            text(
                f"ALTER TABLE {quote.format_table(t)} ADD COLUMN {quote.format_column(column)}"
                f" {column.type.compile(dialect=conn.dialect)}"
            )
        )
    e = events_table
    seq = select(e.c.events_seq).where(e.c.event_key == t.c.event_key).scalar_subquery()
    conn.execute(
        update(t)
        .where(t.c.published_at.is_not(None))
        .values(events_seq=seq, lag_us=lag_us(conn.dialect, t.c.published_at, t.c.acknowledged_at))
    )
