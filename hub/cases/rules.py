"""The case workflows' rules: which step may follow which, by whom, by when.

``CaseRules.apply`` takes a case's state (``None`` before its first step) and a step, and returns
the new state and the step's recipients, or refuses the step naming the field and the rule. The
hub's clock decides: a step counts when the hub accepted it. Working-day deadlines end with their
last day (Asia/Shanghai); day 1 is the next working day after the triggering day (Art. 7, 20).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from hub.cases.state import KIND_ZH, CaseKind, CaseState, Deadline, Status, StepRef
from hub.errors import EventRejected
from hub.registry import Organisation, OrgKind, Registry
from hub.workdays import WorkdayCalendar
from schemas import assistance, case_notice, hazard, referral, transfer
from schemas.envelope import CASE_STEPS, Event
from schemas.referral import Direction
from schemas.rules import explain
from schemas.shanghai import end_of_day, local_text, shanghai_day

TRANSFER_DAYS, TRANSFER_LIMIT_DAYS, REPLY_DAYS = 3, 5, 5  # Art. 7
ANSWER_DAYS, SUPPLEMENT_DAYS = 7, 2  # Art. 20
TOWNSHIPS = frozenset({OrgKind.TOWNSHIP, OrgKind.STREET})
DEPARTMENTS = frozenset({OrgKind.DEPARTMENT})


@dataclass(frozen=True)
class Direction_:
    """Which kinds of organisation a step may go between."""

    pairs: tuple[tuple[frozenset[OrgKind], frozenset[OrgKind]], ...]
    zh: str
    en: str


ANYONE = frozenset(OrgKind)
BETWEEN = Direction_(
    ((TOWNSHIPS, DEPARTMENTS), (DEPARTMENTS, TOWNSHIPS)),
    "在乡镇（街道）与县级执法部门之间进行",
    "between a township and a county department",
)
UPWARD = Direction_(
    ((TOWNSHIPS, DEPARTMENTS),), "由乡镇（街道）发给县级执法部门", "from a township to a department"
)
DOWNWARD = Direction_(
    ((DEPARTMENTS, TOWNSHIPS),), "由县级执法部门发给乡镇（街道）", "from a department to a township"
)
TO_DEPARTMENT = Direction_(((ANYONE, DEPARTMENTS),), "发给县级执法部门", "to a county department")


@dataclass(frozen=True)
class Outcome:
    """A step admitted: the case after it, and who receives the step."""

    state: CaseState
    recipients: tuple[str, ...]


def refuse(field: str, rule: str, **context: Any) -> EventRejected:
    """A refusal of one rule."""
    return EventRejected([explain(field, rule, context)])


def case_key(event: Event) -> str:
    """The case a step belongs to: ``initiator/case_no`` for an opening step, else its ``case``."""
    data: Any = event.data
    return f"{event.source}/{data.case_no}" if hasattr(data, "case_no") else str(data.case)


class CaseRules:
    """Admits the steps of the case workflows."""

    def __init__(self, registry: Registry, calendar: WorkdayCalendar, hazard_hours: float) -> None:
        self.registry, self.calendar, self.hazard_hours = registry, calendar, hazard_hours
        self._steps: dict[str, Callable[[CaseState | None, Event, datetime], Outcome]] = {
            "case_transfer": self._transfer,
            "case_transfer_extension": self._transfer_extension,
            "case_transfer_reply": self._transfer_reply,
            "case_decision": self._decision,
            "jurisdiction_dispute": self._dispute,
            "dispute_decision": self._dispute_decision,
            "assistance_request": self._assistance_request,
            "assistance_supplement_request": self._supplement_request,
            "assistance_supplement": self._supplement,
            "assistance_extension": self._assistance_extension,
            "assistance_reply": self._assistance_reply,
            "hazard_notice": self._hazard_notice,
            "hazard_response": self._hazard_response,
            "complaint_referral": self._complaint_referral,
            "complaint_feedback": self._complaint_feedback,
            "case_overdue": self._overdue,
        }

    def apply(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        """Admit ``event`` into the case ``state`` at ``at``.

        Raises:
            EventRejected: the step is not allowed now, by this organisation, in this case.
        """
        step = CASE_STEPS[event.category]
        if event.recipients is not None:
            raise refuse("recipients", "case_recipients")
        key = case_key(event)
        if not step.opens:
            if state is None:
                raise refuse("data.case", "case_unknown", case=key, step_zh=step.label)
            if step.case_kind not in (state.kind, "notice"):
                kind_zh = KIND_ZH[state.kind]
                raise refuse(
                    "type", "case_kind", case=key, kind=state.kind, kind_zh=kind_zh,
                    step_zh=step.label,
                )  # fmt: skip
        outcome = self._steps[event.category](state, event, at)
        outcome.state.steps.append(
            StepRef(
                key=event.key,
                type=event.type,
                source=event.source,
                at=at,
                recipients=outcome.recipients,
            )
        )
        outcome.state.updated_at = at
        digests = [a.sha256 for a in getattr(event.data, "attachments", ())]
        outcome.state.digests = tuple(dict.fromkeys((*outcome.state.digests, *digests)))
        return outcome

    # -- helpers -------------------------------------------------------------------------------

    def _due(self, day: date, workdays: int) -> tuple[date, datetime]:
        last = self.calendar.add(day, workdays)
        return last, end_of_day(last)

    def _counterpart(self, event: Event, receiver: str, direction: Direction_) -> Organisation:
        """The receiver, checked: registered, of the publisher's county, of the right kind."""
        source = self.registry.org(event.source)
        if receiver not in self.registry:
            raise refuse("data.receiver", "unknown_recipient", org=receiver)
        org = self.registry.org(receiver)
        if org.county != source.county:
            raise refuse(
                "data.receiver", "outside_county", org=receiver, name=org.name,
                org_county=self.registry.county(org.county).name,
                county=self.registry.county(source.county).name,
            )  # fmt: skip
        if receiver == source.id:
            raise refuse("data.receiver", "self_recipient")
        if not any(source.kind in a and org.kind in b for a, b in direction.pairs):
            raise refuse(
                "data.receiver", "counterpart_kind", step_zh=CASE_STEPS[event.category].label,
                allowed_zh=direction.zh, allowed=direction.en,
                source_kind=source.kind_zh, receiver_kind=org.kind_zh,
            )  # fmt: skip
        return org

    def _party(self, state: CaseState, event: Event, party: str, role_zh: str, role: str) -> None:
        if event.source != party:
            raise refuse(
                "source", "not_case_party", org=event.source, case=state.key, role_zh=role_zh,
                role=role, step_zh=CASE_STEPS[event.category].label,
            )  # fmt: skip

    def _status(self, state: CaseState, event: Event, *allowed: Status) -> None:
        if state.status not in allowed:
            raise refuse(
                "data.case", "case_state", case=state.key, status=state.status.value,
                status_zh=state.status.zh, step_zh=CASE_STEPS[event.category].label,
            )  # fmt: skip

    def _new(
        self, event: Event, kind: CaseKind, receiver: str, status: Status, at: datetime
    ) -> CaseState:
        return CaseState(
            key=case_key(event),
            kind=kind,
            county=self.registry.org(event.source).county,
            initiator=event.source,
            receiver=receiver,
            status=status,
            opened_at=at,
            updated_at=at,
            received_on=shanghai_day(at),
        )

    def _governments(self, county: str) -> tuple[str, ...]:
        return tuple(o.id for o in self.registry.members(county) if o.kind == OrgKind.GOVERNMENT)

    # -- Art. 7–9, 21: transfers ----------------------------------------------------------------

    def _transfer(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        data = _data(event, transfer.CaseTransfer)
        key = case_key(event)
        if state is not None and not (
            state.status is Status.EXTENSION_NOTICED and state.receiver == data.receiver
        ):
            raise refuse(
                "data.case_no", "case_exists", case=key, status=state.status.value,
                status_zh=state.status.zh,
            )  # fmt: skip
        self._counterpart(event, data.receiver, BETWEEN)
        if state is None:
            state = self._new(event, CaseKind.TRANSFER, data.receiver, Status.AWAITING_REPLY, at)
            last, due = self._due(data.discovered_on, TRANSFER_DAYS)
            state.deadlines["transfer"] = Deadline(
                name="transfer", step_zh="移交案件", party=event.source, due_at=due, due_day=last
            )
        state.discovered_on = data.discovered_on
        state.deadlines["transfer"].met_at = at
        state.status, state.received_on = Status.AWAITING_REPLY, shanghai_day(at)
        last, due = self._due(shanghai_day(at), REPLY_DAYS)
        state.deadlines["reply"] = Deadline(
            name="reply", step_zh="书面告知受理情况", party=data.receiver, due_at=due, due_day=last
        )
        return Outcome(state, (data.receiver,))

    def _transfer_extension(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        data = _data(event, transfer.TransferExtension)
        _fresh(state, event)
        self._counterpart(event, data.receiver, BETWEEN)
        last, due = self._due(data.discovered_on, TRANSFER_DAYS)
        if at >= due:
            raise refuse("time", "extension_too_late", due=last.isoformat(), now=local_text(at))
        limit = self.calendar.add(data.discovered_on, TRANSFER_LIMIT_DAYS)
        if data.new_due > limit:
            raise refuse(
                "data.new_due", "extension_beyond_limit", new_due=data.new_due.isoformat(),
                limit=limit.isoformat(),
            )  # fmt: skip
        if data.new_due <= last:
            raise refuse(
                "data.new_due", "extension_not_later", new_due=data.new_due.isoformat(),
                due=last.isoformat(),
            )  # fmt: skip
        state = self._new(event, CaseKind.TRANSFER, data.receiver, Status.EXTENSION_NOTICED, at)
        state.discovered_on, state.extended_to, state.received_on = (
            data.discovered_on,
            data.new_due,
            None,
        )
        state.deadlines["transfer"] = Deadline(
            name="transfer", step_zh="移交案件", party=event.source,
            due_at=end_of_day(data.new_due), due_day=data.new_due,
        )  # fmt: skip
        return Outcome(state, (data.receiver,))

    def _transfer_reply(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        assert state is not None
        data = _data(event, transfer.TransferReply)
        self._party(state, event, state.receiver, "接收单位", "receiver")
        self._status(state, event, Status.AWAITING_REPLY)
        state.deadlines["reply"].met_at, state.reply = at, data.decision.value
        if data.decision is transfer.ReplyDecision.ACCEPTED:
            state.status = Status.ACCEPTED
            return Outcome(state, (state.initiator,))
        state.status = Status.ESCALATED
        state.escalated_to = self._governments(state.county)
        return Outcome(state, (state.initiator, *state.escalated_to))

    def _decision(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        assert state is not None
        data = _data(event, transfer.CaseDecision)
        if event.source not in self._governments(state.county):
            self._party(state, event, "县人民政府", "县人民政府", "county government")
        self._status(state, event, Status.ESCALATED)
        self._assignee(state, data.assigned_to)
        state.status, state.assigned_to = Status.DECIDED, data.assigned_to
        return Outcome(
            state, _others(event.source, state.initiator, state.receiver, data.assigned_to)
        )

    def _dispute(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        assert state is not None
        if event.source not in (state.initiator, state.receiver):
            self._party(
                state,
                event,
                state.initiator,
                "移交单位或接收单位",
                "transferring or receiving party",
            )
        self._status(
            state, event, Status.AWAITING_REPLY, Status.ESCALATED, Status.DECIDED, Status.ACCEPTED
        )
        offices = self.registry.county(state.county).dispute_offices
        state.status = Status.DISPUTED
        state.escalated_to = tuple(dict.fromkeys((*state.escalated_to, *offices)))
        other = state.receiver if event.source == state.initiator else state.initiator
        return Outcome(state, (*offices, other))

    def _dispute_decision(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        assert state is not None
        data = _data(event, transfer.DisputeDecision)
        offices = self.registry.county(state.county).dispute_offices
        if event.source not in offices:
            self._party(
                state,
                event,
                "编办或司法局",
                "编制部门或司法行政部门",
                "staffing office or justice bureau",
            )
        self._status(state, event, Status.DISPUTED)
        self._assignee(state, data.assigned_to)
        state.status, state.assigned_to = Status.SETTLED, data.assigned_to
        return Outcome(
            state,
            _others(event.source, state.initiator, state.receiver, *offices, data.assigned_to),
        )

    def _assignee(self, state: CaseState, org: str) -> None:
        if org not in self.registry or self.registry.org(org).county != state.county:
            raise refuse("data.assigned_to", "unknown_recipient", org=org)

    # -- Art. 20: assistance ---------------------------------------------------------------------

    def _assistance_request(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        data = _data(event, assistance.AssistanceRequest)
        _fresh(state, event)
        self._counterpart(event, data.receiver, UPWARD)
        state = self._new(event, CaseKind.ASSISTANCE, data.receiver, Status.AWAITING_ANSWER, at)
        last, due = self._due(shanghai_day(at), ANSWER_DAYS)
        state.deadlines["answer"] = Deadline(
            name="answer", step_zh="出具书面意见", party=data.receiver, due_at=due, due_day=last
        )
        return Outcome(state, (data.receiver,))

    def _supplement_request(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        assert state is not None and state.received_on is not None
        self._party(state, event, state.receiver, "被请求协助的部门", "assisting department")
        self._status(state, event, Status.AWAITING_ANSWER)
        last, due = self._due(state.received_on, SUPPLEMENT_DAYS)
        if at >= due or state.supplement_asked_on is not None:
            raise refuse("time", "supplement_too_late", due=last.isoformat())
        state.status, state.supplement_asked_on = Status.AWAITING_SUPPLEMENT, shanghai_day(at)
        state.deadlines["answer"].paused = True
        return Outcome(state, (state.initiator,))

    def _supplement(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        assert state is not None
        self._party(state, event, state.initiator, "请求协助的乡镇（街道）", "requesting township")
        self._status(state, event, Status.AWAITING_SUPPLEMENT)
        self._resume(state, at)
        state.status = Status.AWAITING_ANSWER
        return Outcome(state, (state.receiver,))

    def _resume(self, state: CaseState, at: datetime) -> None:
        """The material arrived: the days it took are added to the answer's deadline."""
        assert state.supplement_asked_on is not None and state.received_on is not None
        state.paused_workdays += self.calendar.count(state.supplement_asked_on, shanghai_day(at))
        answer = state.deadlines["answer"]
        base = state.extended_to or self.calendar.add(state.received_on, ANSWER_DAYS)
        answer.due_day = self.calendar.add(base, state.paused_workdays)
        answer.due_at, answer.paused = end_of_day(answer.due_day), False

    def _assistance_extension(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        assert state is not None
        data = _data(event, assistance.AssistanceExtension)
        self._party(state, event, state.receiver, "被请求协助的部门", "assisting department")
        self._status(state, event, Status.AWAITING_ANSWER, Status.AWAITING_SUPPLEMENT)
        answer = state.deadlines["answer"]
        if state.extended_to is not None:
            extended = next(s.at for s in state.steps if s.type == event.type)
            raise refuse("type", "already_extended", at=local_text(extended))
        if at >= answer.due_at and not answer.paused:
            raise refuse("time", "extension_too_late", due=str(answer.due_day), now=local_text(at))
        if answer.due_day is not None and data.new_due <= answer.due_day:
            raise refuse(
                "data.new_due", "extension_not_later", new_due=data.new_due.isoformat(),
                due=answer.due_day.isoformat(),
            )  # fmt: skip
        state.extended_to, state.paused_workdays = data.new_due, 0  # a stated date from now on
        answer.due_day, answer.due_at = data.new_due, end_of_day(data.new_due)
        return Outcome(state, (state.initiator,))

    def _assistance_reply(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        assert state is not None
        self._party(state, event, state.receiver, "被请求协助的部门", "assisting department")
        self._status(state, event, Status.AWAITING_ANSWER, Status.AWAITING_SUPPLEMENT)
        if state.status is Status.AWAITING_SUPPLEMENT:
            self._resume(state, at)  # answered without waiting for the material
        state.deadlines["answer"].met_at, state.status = at, Status.ANSWERED
        return Outcome(state, (state.initiator,))

    # -- Art. 18: hazard notices -----------------------------------------------------------------

    def _hazard_notice(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        data = _data(event, hazard.HazardNotice)
        _fresh(state, event)
        self._counterpart(event, data.receiver, TO_DEPARTMENT)
        state = self._new(event, CaseKind.HAZARD, data.receiver, Status.AWAITING_OFFICERS, at)
        state.deadlines["officers"] = Deadline(
            name="officers", step_zh="派执法人员处理", party=data.receiver,
            due_at=at + timedelta(hours=self.hazard_hours),
        )  # fmt: skip
        return Outcome(state, (data.receiver,))

    def _hazard_response(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        assert state is not None
        data = _data(event, hazard.HazardResponse)
        self._party(state, event, state.receiver, "接到通知的部门", "notified department")
        if data.stage is hazard.ResponseStage.OFFICERS_SENT:
            self._status(state, event, Status.AWAITING_OFFICERS)
            state.status = Status.OFFICERS_SENT
        else:
            self._status(state, event, Status.AWAITING_OFFICERS, Status.OFFICERS_SENT)
            state.status = Status.HANDLED
        if state.deadlines["officers"].met_at is None:
            state.deadlines["officers"].met_at = at
        return Outcome(state, (state.initiator,))

    # -- Art. 10–14: complaint referrals ---------------------------------------------------------

    def _complaint_referral(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        data = _data(event, referral.ComplaintReferral)
        _fresh(state, event)
        self._counterpart(
            event, data.receiver, UPWARD if data.direction is Direction.TRANSFER else DOWNWARD
        )
        state = self._new(event, CaseKind.COMPLAINT, data.receiver, Status.AWAITING_FEEDBACK, at)
        return Outcome(state, (data.receiver,))

    def _complaint_feedback(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        assert state is not None
        self._party(state, event, state.receiver, "承办单位", "handling party")
        self._status(state, event, Status.AWAITING_FEEDBACK)
        state.status = Status.FED_BACK
        return Outcome(state, (state.initiator,))

    # -- the hub's own notices -------------------------------------------------------------------

    def _overdue(self, state: CaseState | None, event: Event, at: datetime) -> Outcome:
        assert state is not None
        data = _data(event, case_notice.CaseOverdue)
        deadline = state.deadlines.get(data.deadline)
        if deadline is None or not deadline.open or deadline.paused or deadline.noticed_overdue:
            raise refuse("data.deadline", "case_state", case=state.key, status=state.status.value,
                         status_zh=state.status.zh, step_zh="发出逾期提醒")  # fmt: skip
        if at < deadline.due_at:
            raise refuse("data.due_at", "case_state", case=state.key, status=state.status.value,
                         status_zh=state.status.zh, step_zh="在期限届满前发出逾期提醒")  # fmt: skip
        deadline.noticed_overdue = True
        return Outcome(state, (state.initiator, state.receiver))


def _fresh(state: CaseState | None, event: Event) -> None:
    """An opening step needs a case number not used before."""
    if state is not None:
        raise refuse(
            "data.case_no", "case_exists", case=case_key(event), status=state.status.value,
            status_zh=state.status.zh,
        )  # fmt: skip


def _data(event: Event, kind: type[Any]) -> Any:
    if not isinstance(event.data, kind):
        raise TypeError(f"{event.type} carries {type(event.data).__name__}, not {kind.__name__}")
    return event.data


def _others(source: str, *orgs: str) -> tuple[str, ...]:
    return tuple(o for o in dict.fromkeys(orgs) if o != source)
