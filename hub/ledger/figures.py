"""The reports' sums: pairs judged and counted by the database, not row by row in Python.

Art. 16's verdicts (``hub.timeliness.judge``) need no time zone here, because the ledger stores
each moment's Shanghai day beside it: a pair was acknowledged in time when its acknowledged day is
not after its formed day, published late when its published day is after it, and an open pair is
overdue once its formed day is before today. Delivery lags are whole microseconds (published →
acknowledged, never below zero), so they are exact on both databases; the ledger writes each
pair's as soon as it knows both times (``hub.ledger.upserts``).

One statement answers a report's side, read from the organisation's sums index
(``hub.ledger.tables``): the pairs summed per event, then per organisation and category every
count and the group's lags (its percentiles need each of them). An organisation's total, and the
total of everything, add up their categories, except for the number of distinct events, which the
statement counts too where a sum could count an event twice.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from itertools import chain
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    String,
    Text,
    and_,
    case,
    cast,
    distinct,
    func,
    literal,
    null,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.ledger.queries import PAIR_ORDER, in_period
from hub.ledger.records import DeliveryState, PairFigures
from hub.ledger.tables import deliveries_table

Side = Literal["recipient", "publisher"]
Level = Literal["category", "org", "all"]
FLAGS = (
    "acknowledged",
    "on_time",
    "late",
    "late_publisher",
    "late_delivery",
    "pending",
    "dead_lettered",
)
COUNTS = ("deliveries", "events", "same_day_events", *FLAGS)


def flags(today: date) -> dict[str, ColumnElement[Any]]:
    """Each pair's verdict as 0/1 columns to sum (``judge`` at any moment of ``today``)."""
    t = deliveries_table
    acknowledged = t.c.acknowledged_day.is_not(None)  # set with acknowledged_at, and indexed
    open_ = t.c.acknowledged_day.is_(None)
    late = (acknowledged & (t.c.acknowledged_day > t.c.formed_day)) | (
        open_ & (t.c.formed_day < today)
    )
    published_late = t.c.published_day > t.c.formed_day
    dead = t.c.state == DeliveryState.DEAD_LETTERED.value
    conditions = {
        "acknowledged": acknowledged,
        "on_time": acknowledged & (t.c.acknowledged_day <= t.c.formed_day),
        "late": late,
        "late_publisher": late & published_late,
        "late_delivery": late & ~published_late,
        "pending": open_ & ~dead,
        "dead_lettered": dead,
    }
    return {name: case((condition, 1), else_=0) for name, condition in conditions.items()}


def figures_query(
    scope: ColumnElement[bool], side: Side, today: date, levels: Sequence[Level]
) -> CompoundSelect[Any]:
    """Every figure per organisation and category, and the distinct events of the totals.

    Organisations are taken on ``side``. The pairs are first summed per event (its sequence in
    the events stream, one per event key): a recipient holds one pair of each event (the primary
    key), a publisher all of them. Per organisation and category the events are then counted
    and everything else added up; the organisation's total (``levels`` with "org") is added up
    from its categories too, except a publisher's events, counted distinct in case a key came
    twice with two categories. "all" counts the distinct events of every pair in ``scope``.
    """
    t = deliveries_table
    org = t.c[side]  # never NULL here: a known event names its publisher
    judged = and_(scope, t.c.published_day.is_not(None))  # its event is known
    same_day = case((t.c.published_day == t.c.formed_day, 1), else_=0)
    lag = cast(t.c.lag_us, Text)
    keys = (org.label("org"), t.c.category, t.c.events_seq)
    if side == "recipient":
        per_event = select(
            *keys,
            literal(1).label("deliveries"),
            same_day.label("same_day"),
            *(flag.label(name) for name, flag in flags(today).items()),
            lag.label("lags"),
        ).where(judged)
    else:
        per_event = (
            select(
                *keys,
                func.count().label("deliveries"),
                func.max(same_day).label("same_day"),
                *(func.sum(flag).label(name) for name, flag in flags(today).items()),
                func.aggregate_strings(lag, ",").label("lags"),
            )
            .where(judged)
            .group_by(*keys)
        )
    e = per_event.cte("per_event").c
    by_category = select(
        e.org,
        e.category,
        literal("category").label("level"),
        func.sum(e.deliveries).label("deliveries"),
        func.count().label("events"),
        func.sum(e.same_day).label("same_day_events"),
        *(func.sum(e[name]).label(name) for name in FLAGS),
        func.aggregate_strings(e.lags, ",").label("lags"),
    ).group_by(e.org, e.category)
    nothing = cast(null(), String)
    blanks = [cast(null(), Integer).label(name) for name in ("deliveries", *FLAGS)]

    def events_of(*group: Any) -> Select[Any]:
        """The distinct events of a total (its other columns are added up in Python)."""
        return select(
            *group,
            blanks[0],
            func.count(distinct(e.events_seq)).label("events"),
            func.count(distinct(case((e.same_day == 1, e.events_seq)))).label("same_day_events"),
            *blanks[1:],
            nothing,
        )

    totals = []
    if "org" in levels and side == "publisher":
        totals.append(events_of(e.org, nothing, literal("org")).group_by(e.org))
    if "all" in levels:
        totals.append(events_of(nothing, nothing, literal("all")))
    return union_all(by_category, *totals)


async def figures(
    conn: AsyncConnection,
    *,
    day_from: date,
    day_to: date,
    today: date,
    side: Side,
    levels: Sequence[Level],
    recipient: str | None = None,
    publisher: str | None = None,
    members: Collection[str] | None = None,
) -> list[PairFigures]:
    """The figures per group of ``levels``, each organisation on ``side``; ``today``: Shanghai's."""
    scope = in_period(day_from, day_to, recipient, publisher, members)
    query = figures_query(scope, side, today, levels)
    rows = [row._mapping for row in await conn.execute(query)]
    by_category = [_category(row) for row in rows if row["level"] == "category"]
    counted = {(row["level"], row["org"]): row for row in rows if row["level"] != "category"}
    found = list(by_category)
    if "org" in levels:
        for org in dict.fromkeys(f.org for f in by_category):
            parts = [f for f in by_category if f.org == org]
            found.append(_total(org, parts, counted.get(("org", org))))
    if "all" in levels and by_category:
        found.append(_total(None, by_category, counted[("all", None)]))
    return found


def _category(row: Any) -> PairFigures:
    """One organisation's figures in one category (the lags come as one comma-separated text)."""
    counts = {name: int(row[name]) for name in COUNTS}
    lags = tuple(sorted(map(int, row["lags"].split(",")))) if row["lags"] else ()
    return PairFigures(row["org"], row["category"], lags_us=lags, **counts)


def _total(
    org: str | None, parts: Sequence[PairFigures], distinct_events: Any | None
) -> PairFigures:
    """Figures of several categories together: added up, but events as counted distinct."""

    def added(name: str) -> int:
        return sum(getattr(part, name) for part in parts)

    if distinct_events is None:  # a recipient's: one pair per event
        events, same_day = added("events"), added("same_day_events")
    else:
        events, same_day = distinct_events["events"], distinct_events["same_day_events"]
    return PairFigures(
        org=org,
        category=None,
        deliveries=added("deliveries"),
        events=int(events),
        same_day_events=int(same_day),
        acknowledged=added("acknowledged"),
        on_time=added("on_time"),
        late=added("late"),
        late_publisher=added("late_publisher"),
        late_delivery=added("late_delivery"),
        pending=added("pending"),
        dead_lettered=added("dead_lettered"),
        lags_us=tuple(sorted(chain.from_iterable(part.lags_us for part in parts))),
    )


def faults(day_from: date, day_to: date, org: str, role: Side, today: date) -> Select[Any]:
    """The pairs an organisation is to answer for on its scorecard, in the order of formation.

    As publisher: late pairs of events it published after their day. As recipient: pairs it has
    not acknowledged, or acknowledged late although they were published in time. The pairs are
    found in the sums index (``.correlate(None)``: a query of its own, on its own table), and
    only they are read from the table.
    """
    t = deliveries_table
    acknowledged = t.c.acknowledged_day.is_not(None)
    late_ack = acknowledged & (t.c.acknowledged_day > t.c.formed_day)
    published_late = t.c.published_day > t.c.formed_day
    if role == "publisher":
        overdue = t.c.acknowledged_day.is_(None) & (t.c.formed_day < today)
        answers_for = and_(published_late, late_ack | overdue)
    else:
        answers_for = t.c.acknowledged_day.is_(None) | (late_ack & ~published_late)
    by_role = {role: org}
    recipient, publisher = by_role.get("recipient"), by_role.get("publisher")
    pairs = select(t.c.event_key, t.c.recipient).where(
        in_period(day_from, day_to, recipient, publisher), answers_for
    )
    return (
        select(t)
        .where(tuple_(t.c.event_key, t.c.recipient).in_(pairs.correlate(None)))
        .order_by(*PAIR_ORDER)
    )
