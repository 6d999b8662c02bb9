"""A case as the hub knows it after each step: its parties, status, steps and deadlines.

The state is stored with every step (a header of the step's message in the events stream), so
the latest step of a case tells its whole state; the ledger's case tables are a projection of it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class CaseKind(StrEnum):
    """The four workflows."""

    TRANSFER = "transfer"
    ASSISTANCE = "assistance"
    HAZARD = "hazard"
    COMPLAINT = "complaint"


KIND_ZH = {
    CaseKind.TRANSFER: "移交",
    CaseKind.ASSISTANCE: "协助",
    CaseKind.HAZARD: "隐患通知",
    CaseKind.COMPLAINT: "投诉举报移交",
}


class Status(StrEnum):
    """Where a case stands."""

    EXTENSION_NOTICED = "extension_noticed"  # transfer announced late, not yet sent
    AWAITING_REPLY = "awaiting_reply"
    ACCEPTED = "accepted"
    ESCALATED = "escalated"  # "not ours": the county government decides
    DECIDED = "decided"
    DISPUTED = "disputed"  # Art. 21: the staffing office and justice bureau decide
    SETTLED = "settled"
    AWAITING_ANSWER = "awaiting_answer"
    AWAITING_SUPPLEMENT = "awaiting_supplement"
    ANSWERED = "answered"
    AWAITING_OFFICERS = "awaiting_officers"
    OFFICERS_SENT = "officers_sent"
    HANDLED = "handled"
    AWAITING_FEEDBACK = "awaiting_feedback"
    FED_BACK = "fed_back"

    @property
    def zh(self) -> str:
        """The status in Chinese."""
        return STATUS_ZH[self]

    @property
    def closed(self) -> bool:
        """Nothing more is owed."""
        return self in CLOSED


STATUS_ZH = {
    Status.EXTENSION_NOTICED: "已告知延期，待移交",
    Status.AWAITING_REPLY: "待书面告知受理情况",
    Status.ACCEPTED: "已受理",
    Status.ESCALATED: "不属管辖，报县人民政府决定",
    Status.DECIDED: "县人民政府已决定管辖",
    Status.DISPUTED: "职责争议，编办和司法局协调中",
    Status.SETTLED: "争议已协调",
    Status.AWAITING_ANSWER: "待出具书面意见",
    Status.AWAITING_SUPPLEMENT: "待补充资料（答复期限暂停）",
    Status.ANSWERED: "已出具书面意见",
    Status.AWAITING_OFFICERS: "待派员处理",
    Status.OFFICERS_SENT: "已派员处理",
    Status.HANDLED: "已处置",
    Status.AWAITING_FEEDBACK: "待反馈处理结果",
    Status.FED_BACK: "已反馈处理结果",
}
CLOSED = frozenset(
    {
        Status.ACCEPTED,
        Status.DECIDED,
        Status.SETTLED,
        Status.ANSWERED,
        Status.HANDLED,
        Status.FED_BACK,
    }
)


class Deadline(BaseModel):
    """One thing a party owes the case by a moment."""

    model_config = ConfigDict(extra="forbid")

    name: str
    step_zh: str  # what is owed, in Chinese
    party: str  # who owes it
    due_at: datetime  # the first instant past the deadline
    due_day: date | None = None  # the last day, for working-day deadlines
    met_at: datetime | None = None
    paused: bool = False  # Art. 20: the clock stops while material is awaited
    noticed_overdue: bool = False

    @property
    def open(self) -> bool:
        """Still owed."""
        return self.met_at is None

    def late(self) -> bool:
        """Met after it was due."""
        return self.met_at is not None and self.met_at >= self.due_at


class StepRef(BaseModel):
    """One step of the case."""

    model_config = ConfigDict(extra="forbid")

    key: str  # the event key (source/id)
    type: str
    source: str
    at: datetime  # when the hub accepted it
    recipients: tuple[str, ...] = ()
    seq: int | None = None  # its events-stream sequence (known once a later step is read)


class CaseState(BaseModel):
    """A case after its latest step."""

    model_config = ConfigDict(extra="forbid")

    key: str  # initiator/case number
    kind: CaseKind
    county: str
    initiator: str
    receiver: str
    status: Status
    opened_at: datetime
    updated_at: datetime
    received_on: date | None = None  # the day the receiver got the opening letter
    discovered_on: date | None = None  # transfers: the clock of Art. 7 starts here
    extended_to: date | None = None
    supplement_asked_on: date | None = None
    paused_workdays: int = 0
    assigned_to: str | None = None
    reply: str | None = None  # transfers: the receiver's decision (accepted, not_ours)
    escalated_to: tuple[str, ...] = ()
    steps: list[StepRef] = Field(default_factory=list)
    deadlines: dict[str, Deadline] = Field(default_factory=dict)
    digests: tuple[str, ...] = ()

    @property
    def parties(self) -> tuple[str, ...]:
        """Everyone the case concerns: its two parties, and whoever decides or was assigned."""
        found = [self.initiator, self.receiver, *self.escalated_to]
        if self.assigned_to:
            found.append(self.assigned_to)
        return tuple(dict.fromkeys(found))

    def step(self, key: str) -> StepRef | None:
        """The step with this event key, if the case has it."""
        return next((s for s in self.steps if s.key == key), None)

    def header(self) -> str:
        """The state as a message header: one line of ASCII (Chinese travels JSON-escaped)."""
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=True, separators=(",", ":"))


def case_token(case_key: str) -> str:
    """The subject token of a case: case numbers may hold dots, subject tokens may not."""
    return hashlib.sha256(case_key.encode()).hexdigest()[:32]
