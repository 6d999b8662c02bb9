"""Art. 23 for the case workflows: per kind of case and role, what an organisation owed and did.

A case counts in the period its first step was accepted in (Shanghai days). The deadline figures
are over the deadlines the organisation itself owed in those cases, judged at ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from hub.cases.state import KIND_ZH, CaseKind, CaseState
from schemas.shanghai import shanghai_day

ROLE_ZH = {"initiator": "发起", "receiver": "接收"}


@dataclass(frozen=True)
class CaseRow:
    """One kind of case, one role: how many, and how the organisation's own deadlines went."""

    role: str
    role_zh: str
    kind: str
    kind_zh: str
    cases: int
    on_time: int  # its deadlines met in time
    late: int  # met after the deadline
    overdue: int  # still owed, past the deadline
    pending: int  # still owed, not yet due (or paused)
    not_ours: int  # transfers answered "not ours" (the receiver refused them)
    escalated: int  # went to the county government or to the staffing office and justice bureau


def case_rows(
    states: Iterable[CaseState], org: str, day_from: date, day_to: date, now: datetime
) -> list[CaseRow]:
    """The rows of ``org`` for cases opened ``day_from``..``day_to``."""
    grouped: dict[tuple[str, CaseKind], list[CaseState]] = {}
    for state in states:
        if not day_from <= shanghai_day(state.opened_at) <= day_to:
            continue
        role = (
            "initiator" if state.initiator == org else "receiver" if state.receiver == org else ""
        )
        if role:
            grouped.setdefault((role, state.kind), []).append(state)
    return [
        _row(role, kind, group, org, now)
        for (role, kind), group in sorted(grouped.items(), key=lambda g: (g[0][0], g[0][1].value))
    ]


def _row(role: str, kind: CaseKind, states: list[CaseState], org: str, now: datetime) -> CaseRow:
    owed = [d for s in states for d in s.deadlines.values() if d.party == org]
    return CaseRow(
        role=role,
        role_zh=ROLE_ZH[role],
        kind=kind.value,
        kind_zh=KIND_ZH[kind],
        cases=len(states),
        on_time=sum(d.met_at is not None and not d.late() for d in owed),
        late=sum(d.late() for d in owed),
        overdue=sum(d.open and not d.paused and now >= d.due_at for d in owed),
        pending=sum(d.open and (d.paused or now < d.due_at) for d in owed),
        not_ours=sum(s.reply == "not_ours" for s in states),
        escalated=sum(bool(s.escalated_to) for s in states),
    )
