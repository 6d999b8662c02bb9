"""A case as people read it: Chinese names, Beijing times, what is owed, by whom, by when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.cases.state import KIND_ZH, CaseState, Deadline
from hub.registry import Registry
from schemas.envelope import label_of
from schemas.shanghai import local_text


def deadline_view(deadline: Deadline, registry: Registry, now: datetime) -> dict[str, Any]:
    """One deadline: what, who, when, and whether it was met in time."""
    if deadline.met_at is not None:
        verdict, verdict_zh = ("late", "逾期完成") if deadline.late() else ("on_time", "按期完成")
    elif deadline.paused:
        verdict, verdict_zh = "paused", "暂停计算（待补充资料）"
    elif now >= deadline.due_at:
        verdict, verdict_zh = "overdue", "已逾期"
    else:
        verdict, verdict_zh = "open", "未到期"
    return {
        "name": deadline.name,
        "step_zh": deadline.step_zh,
        "party": deadline.party,
        "party_name": registry.name(deadline.party),
        "due_day": deadline.due_day.isoformat() if deadline.due_day else None,
        "due_at": local_text(deadline.due_at),
        "met_at": local_text(deadline.met_at) if deadline.met_at else None,
        "verdict": verdict,
        "verdict_zh": verdict_zh,
    }


def case_view(state: CaseState, registry: Registry, now: datetime) -> dict[str, Any]:
    """The case, with its deadlines and steps, for a page, a command or an API."""
    return {
        "case": state.key,
        "kind": state.kind.value,
        "kind_zh": KIND_ZH[state.kind],
        "status": state.status.value,
        "status_zh": state.status.zh,
        "closed": state.status.closed,
        "initiator": state.initiator,
        "initiator_name": registry.name(state.initiator),
        "receiver": state.receiver,
        "receiver_name": registry.name(state.receiver),
        "assigned_to": state.assigned_to,
        "escalated_to": [registry.name(o) for o in state.escalated_to],
        "opened_at": local_text(state.opened_at),
        "updated_at": local_text(state.updated_at),
        "deadlines": [deadline_view(d, registry, now) for d in state.deadlines.values()],
        "steps": [
            {
                "type": step.type,
                "label": label_of(step.type.split(".")[0]),
                "source": step.source,
                "source_name": registry.name(step.source),
                "at": local_text(step.at),
            }
            for step in state.steps
        ],
    }
