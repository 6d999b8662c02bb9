"""The ledger's reads: pairs by day and organisation, backlogs, counts, accepted events."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Collection, Iterable
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.ledger.records import Backlog, DeliveryRow, DeliveryState, EventRow
from hub.ledger.tables import UtcDateTime, deliveries_table, events_table
from schemas.envelope import CATEGORIES

_t = deliveries_table
PAIR_ORDER = (_t.c.formed_at, _t.c.event_key, _t.c.recipient)  # the order of formation
IN_CHUNK = 500  # values per IN list: SQLite caps the number of bound parameters


def in_period(
    day_from: date,
    day_to: date,
    recipient: str | None = None,
    publisher: str | None = None,
    members: Collection[str] | None = None,
) -> ColumnElement[bool]:
    """Pairs of Art. 15 events formed on ``day_from``..``day_to`` (Shanghai days), or one org's.

    Case steps are delivered and acknowledged like events, but judged by their own deadlines
    (``hub.cases``), not by Art. 16's same day: they are left out here. ``members``: pairs sent
    or received by one of these organisations (a county's).
    """
    t = deliveries_table
    found = [
        t.c.formed_day >= day_from,
        t.c.formed_day <= day_to,
        t.c.category.in_(tuple(CATEGORIES)),
    ]
    if recipient is not None:
        found.append(t.c.recipient == recipient)
    if publisher is not None:
        found.append(t.c.publisher == publisher)
    if members is not None:
        found.append(t.c.recipient.in_(tuple(members)) | t.c.publisher.in_(tuple(members)))
    return and_(*found)


def pairs_query(
    day_from: date, day_to: date, recipient: str | None, publisher: str | None
) -> Select[Any]:
    """The pairs ``in_period``, in the order of formation."""
    query = select(deliveries_table).where(in_period(day_from, day_to, recipient, publisher))
    return query.order_by(*PAIR_ORDER)


async def pairs(conn: AsyncConnection, query: Select[Any]) -> list[DeliveryRow]:
    """The rows of a pairs query."""
    return [DeliveryRow(**row._mapping) for row in await conn.execute(query)]


ROWS_PER_PART = 1000
KEY_COLUMNS = {
    "events": (events_table, (events_table.c.event_key,)),
    "deliveries": (deliveries_table, (deliveries_table.c.event_key, deliveries_table.c.recipient)),
}


async def rows_in_key_order(
    conn: AsyncConnection, table: str, per_part: int
) -> AsyncGenerator[list[tuple[Any, ...]], None]:
    """Every row of ``table`` in binary order of its key, ``per_part`` rows at a time.

    Binary on both databases (PostgreSQL's collation "C", SQLite's default), which is also the
    order Python compares the keys in: a locale's order would set "a-b" and "ab" differently.
    """
    t, columns = KEY_COLUMNS[table]
    binary = conn.dialect.name == "postgresql"
    keys = [c.collate("C") if binary else c for c in columns]
    query = select(t).order_by(*keys).execution_options(yield_per=per_part)
    async with conn.stream(query) as result:
        async for part in result.partitions(per_part):
            yield [tuple(row) for row in part]


async def events(conn: AsyncConnection, up_to_seq: int | None = None) -> list[EventRow]:
    """Accepted events the ledger knows, in stream order (up to a sequence, if given)."""
    t = events_table
    query = select(t.c.event_key, t.c.events_seq, t.c.source, t.c.category, t.c.formed_at)
    if up_to_seq is not None:
        query = query.where(t.c.events_seq <= up_to_seq)
    result = await conn.execute(query.order_by(t.c.events_seq))
    return [EventRow(**row._mapping) for row in result]


async def high_water(conn: AsyncConnection) -> int:
    """The highest events-stream sequence the ledger recorded (0 when it has none)."""
    value = (await conn.execute(select(func.max(events_table.c.events_seq)))).scalar()
    return int(value or 0)


async def events_gone(
    conn: AsyncConnection, up_to_seq: int, first_seq: int, last_seq: int, deleted: Iterable[int]
) -> list[EventRow]:
    """Recorded events up to ``up_to_seq`` outside ``first_seq``..``last_seq`` or deleted."""
    t = events_table
    columns = (t.c.event_key, t.c.events_seq, t.c.source, t.c.category, t.c.formed_at)
    outside = (t.c.events_seq < first_seq) | (t.c.events_seq > last_seq)
    found = [
        EventRow(**row._mapping)
        for row in await conn.execute(select(*columns).where(t.c.events_seq <= up_to_seq, outside))
    ]
    wanted = sorted(s for s in deleted if s <= up_to_seq)
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start : start + IN_CHUNK]
        query = select(*columns).where(t.c.events_seq.in_(chunk))
        found += [EventRow(**row._mapping) for row in await conn.execute(query)]
    return sorted(found, key=lambda e: e.events_seq)


async def counts(conn: AsyncConnection) -> dict[DeliveryState, int]:
    """How many pairs are in each state."""
    t = deliveries_table
    result = await conn.execute(select(t.c.state, func.count()).group_by(t.c.state))
    return {DeliveryState(state): int(n) for state, n in result}


async def backlog(conn: AsyncConnection, category: str | None) -> dict[str, Backlog]:
    """Per recipient: events still waiting for its acknowledgement (dead letters apart).

    Three small reads rather than one pass over every pair: the waiting and the dead-lettered
    pairs through the state index (few, however long the ledger), the last acknowledgement
    through the acknowledged pairs' index (``ix_ledger_delivery_acknowledged``).
    """
    t = deliveries_table
    known: list[ColumnElement[bool]] = [t.c.published_at.is_not(None)]  # the event is known
    if category is not None:
        known.append(t.c.category == category)
    waiting_states = (DeliveryState.PENDING.value, DeliveryState.DELIVERED.value)
    waiting = select(t.c.recipient, func.count(), func.min(t.c.published_at)).where(
        t.c.state.in_(waiting_states), *known
    )
    dead = select(t.c.recipient, func.count()).where(
        t.c.state == DeliveryState.DEAD_LETTERED.value, *known
    )
    last = select(t.c.recipient, func.max(t.c.acknowledged_at)).where(
        t.c.acknowledged_at.is_not(None), *known
    )
    moment = UtcDateTime()

    async def per_recipient(query: Select[Any]) -> dict[str, tuple[Any, ...]]:
        rows = await conn.execute(query.group_by(t.c.recipient))
        return {row[0]: tuple(row[1:]) for row in rows}

    open_, dead_n, acknowledged = [await per_recipient(q) for q in (waiting, dead, last)]
    return {
        recipient: Backlog(
            waiting=int(open_.get(recipient, (0,))[0]),
            oldest=moment.process_result_value(open_.get(recipient, (0, None))[1], conn.dialect),
            last_receipt=moment.process_result_value(
                acknowledged.get(recipient, (None,))[0], conn.dialect
            ),
            dead_lettered=int(dead_n.get(recipient, (0,))[0]),
        )
        for recipient in sorted(open_.keys() | dead_n.keys() | acknowledged.keys())
    }
