"""The case tables: each case's latest state, and one row per deadline, for lists and scorecards.

Written from the ``Hub-Case-State`` header of every case step in the events stream; a row only
moves forward (a later stream sequence wins), so replaying the stream gives the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.cases.state import CaseState
from hub.ledger.tables import case_deadlines_table, cases_table


@dataclass(frozen=True)
class CaseStep:
    """A case step as the events stream holds it: the sequence, and the case after it."""

    seq: int
    state: CaseState


@dataclass(frozen=True)
class DeadlineRow:
    """One deadline of one case."""

    case_key: str
    name: str
    kind: str
    party: str
    step_zh: str
    due_at: datetime
    met_at: datetime | None
    paused: bool
    noticed_overdue: bool

    def overdue(self, now: datetime) -> bool:
        """Still owed, running, and past due."""
        return self.met_at is None and not self.paused and now >= self.due_at


def _insert(conn: AsyncConnection) -> Any:
    return sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert


async def record(conn: AsyncConnection, steps: Sequence[CaseStep]) -> None:
    """Upsert the cases and deadlines of ``steps`` (in stream order)."""
    insert = _insert(conn)
    for step in steps:
        state = step.state
        row = {
            "case_key": state.key,
            "kind": state.kind.value,
            "county": state.county,
            "initiator": state.initiator,
            "receiver": state.receiver,
            "status": state.status.value,
            "closed": int(state.status.closed),
            "opened_at": state.opened_at,
            "updated_at": state.updated_at,
            "last_seq": step.seq,
            "state": state.model_dump_json(),
        }
        stmt = insert(cases_table).values(row)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["case_key"],
                set_={k: stmt.excluded[k] for k in row if k != "case_key"},
                where=cases_table.c.last_seq < stmt.excluded.last_seq,
            )
        )
        for deadline in state.deadlines.values():
            values = {
                "case_key": state.key,
                "name": deadline.name,
                "kind": state.kind.value,
                "party": deadline.party,
                "step_zh": deadline.step_zh,
                "due_at": deadline.due_at,
                "met_at": deadline.met_at,
                "paused": int(deadline.paused),
                "noticed_overdue": int(deadline.noticed_overdue),
                "last_seq": step.seq,
            }
            stmt = insert(case_deadlines_table).values(values)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["case_key", "name"],
                    set_={k: stmt.excluded[k] for k in values if k not in ("case_key", "name")},
                    where=case_deadlines_table.c.last_seq < stmt.excluded.last_seq,
                )
            )


async def states(
    conn: AsyncConnection, *, org: str | None = None, open_only: bool = False
) -> list[CaseState]:
    """Cases an organisation is party to (every case when ``org`` is None), newest first."""
    t = cases_table
    query = select(t.c.state).order_by(t.c.updated_at.desc())
    if org is not None:
        query = query.where(
            or_(t.c.initiator == org, t.c.receiver == org, t.c.state.contains(f'"{org}"'))
        )
    if open_only:
        query = query.where(t.c.closed == 0)
    found = [CaseState.model_validate_json(row[0]) for row in await conn.execute(query)]
    return [s for s in found if org is None or org in s.parties]


async def state(conn: AsyncConnection, key: str) -> CaseState | None:
    """One case."""
    row = (
        await conn.execute(select(cases_table.c.state).where(cases_table.c.case_key == key))
    ).first()
    return CaseState.model_validate_json(row[0]) if row else None


async def deadlines(
    conn: AsyncConnection,
    *,
    party: str | None = None,
    due_before: datetime | None = None,
    unnoticed: bool = False,
) -> list[DeadlineRow]:
    """Deadlines, optionally one party's, those still owed and due before a moment, unnoticed."""
    t = case_deadlines_table
    query = select(t).order_by(t.c.due_at)
    if party is not None:
        query = query.where(t.c.party == party)
    if due_before is not None:
        query = query.where(and_(t.c.met_at.is_(None), t.c.paused == 0, t.c.due_at <= due_before))
    if unnoticed:
        query = query.where(t.c.noticed_overdue == 0)
    result = await conn.execute(query)
    return [
        DeadlineRow(
            case_key=r.case_key,
            name=r.name,
            kind=r.kind,
            party=r.party,
            step_zh=r.step_zh,
            due_at=r.due_at,
            met_at=r.met_at,
            paused=bool(r.paused),
            noticed_overdue=bool(r.noticed_overdue),
        )
        for r in result
    ]
