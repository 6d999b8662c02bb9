"""The CloudEvents 1.0 style envelope and the typed event of each Article 15 category.

Validation context (``TypeAdapter.validate_json(..., context=...)``):
``now`` (aware datetime) and ``clock_skew_s`` (float) bound how far in the future ``time`` may lie.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    field_serializer,
    field_validator,
)
from pydantic_core import PydanticCustomError

from schemas import (
    assistance,
    case_notice,
    complaint_outcome,
    discretion_standard,
    hazard,
    inspection_record,
    law_change,
    other,
    permit,
    referral,
    statistics,
    transfer,
)
from schemas.common import EventId, Model, OrgId, Title, delivered_copy
from schemas.shanghai import local_iso

DEFAULT_CLOCK_SKEW_S = 300.0
# RFC 3339 section 5.6 date-time: a T between date and time, seconds, a Z or ±hh:mm offset
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
RFC3339_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?")
TRACEPARENT = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
DELIVERED = {"delivered": True}  # validation context of a copy the hub already accepted
MAX_RECIPIENTS = 500


class EnvelopeBase(Model):
    """CloudEvents 1.0 attributes plus the hub's routing extension ``recipients``."""

    specversion: Literal["1.0"] = Field(description="CloudEvents 规范版本，固定为 1.0")
    id: EventId
    source: OrgId = Field(description="发布单位（登记簿中的组织标识，须与发布身份一致）")
    time: AwareDatetime = Field(
        description="信息形成时间（RFC 3339，须带时区，如 2025-09-30T10:15:00+08:00）"
    )
    subject: Title | None = Field(default=None, description="事件主题，如文号、许可证号")
    datacontenttype: str = Field(
        default="application/json",
        description="数据格式：application/json（可带 charset=utf-8）",
    )
    traceparent: Annotated[str, StringConstraints(pattern=TRACEPARENT)] | None = Field(
        default=None, description="W3C 分布式追踪扩展（traceparent），原样转发"
    )
    tracestate: Annotated[str, StringConstraints(max_length=512)] | None = Field(
        default=None, description="W3C 分布式追踪扩展（tracestate），原样转发"
    )
    dataschema: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None, description="数据模式地址（可空）"
    )
    recipients: tuple[OrgId, ...] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description=(
            "指定接收单位，以空格分隔的组织标识（CloudEvents 扩展属性须为字符串；旧的 JSON 数组"
            "写法仍可读）。可空：为空时按登记簿的路由规则发送给本县（市、区）的对口单位"
        ),
        json_schema_extra={
            "anyOf": [
                {"type": "string", "pattern": r"^\s*[a-z0-9-]+(\s+[a-z0-9-]+)*\s*$"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                {"type": "null"},
            ]
        },
    )

    @field_validator("recipients", mode="before")
    @classmethod
    def _space_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(value.split())
        if isinstance(value, list):  # the earlier JSON array form
            return tuple(value)
        return value

    @field_serializer("recipients")
    def _as_string(self, value: tuple[str, ...] | None) -> str | None:
        return " ".join(value) if value is not None else None

    @field_validator("time", mode="before")
    @classmethod
    def _rfc3339(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        # no offset at all (RFC3339_LOCAL): the timezone_aware rule says so, not this one
        if not delivered_copy(info) and not (
            RFC3339.fullmatch(value) or RFC3339_LOCAL.fullmatch(value)
        ):
            raise PydanticCustomError(
                "time_not_rfc3339",
                "{value} is not an RFC 3339 time (e.g. 2025-09-30T10:15:00+08:00)",
                {"value": value[:40]},
            )
        try:  # (a copy accepted before the rule came in is read as it was)
            return datetime.fromisoformat(value.upper())
        except ValueError:
            return value

    @field_validator("datacontenttype")
    @classmethod
    def _json_content(cls, value: str) -> str:
        media, *parameters = (part.strip().lower() for part in value.split(";"))
        charset_ok = all(p in ("charset=utf-8", 'charset="utf-8"') for p in parameters if p)
        if media != "application/json" or not charset_ok:
            raise PydanticCustomError(
                "content_type",
                "{value} is not application/json (optionally charset=utf-8)",
                {"value": value[:80]},
            )
        return value

    @field_validator("time")
    @classmethod
    def _not_in_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        if delivered_copy(info):
            return value
        context = info.context or {}
        now: datetime = context.get("now") or datetime.now(UTC)
        skew = timedelta(seconds=float(context.get("clock_skew_s", DEFAULT_CLOCK_SKEW_S)))
        if value > now + skew:
            raise PydanticCustomError(
                "time_in_future",
                "formed time {time} lies in the future (hub clock {now})",
                {
                    "time": local_iso(value),
                    "now": local_iso(now.replace(microsecond=0)),
                },
            )
        return value

    @field_validator("recipients")
    @classmethod
    def _unique_recipients(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and len(set(value)) != len(value):
            repeated = sorted({org for org in value if value.count(org) > 1})
            raise PydanticCustomError(
                "duplicate_recipient", "lists {orgs} more than once", {"orgs": ", ".join(repeated)}
            )
        return value

    @property
    def category(self) -> str:
        """The Article 15 category, e.g. ``permit`` for ``permit.v1``."""
        return str(getattr(self, "type")).split(".", 1)[0]  # noqa: B009 - declared by subclasses

    @property
    def key(self) -> str:
        """The event's identity across the hub: CloudEvents makes (source, id) unique."""
        return f"{self.source}/{self.id}"


class LawChangeEvent(EnvelopeBase):
    """第十五条（一）法律、法规、规章、国家标准等调整情况的事件。"""

    type: Literal["law_change.v1"]
    data: law_change.LawChange


class PermitEvent(EnvelopeBase):
    """第十五条（二）行政许可事项和监督管理信息的事件。"""

    type: Literal["permit.v1"]
    data: permit.Permit


class StatisticsEvent(EnvelopeBase):
    """第十五条（三）统计分析数据的事件。"""

    type: Literal["statistics.v1"]
    data: statistics.Statistics


class DiscretionStandardEvent(EnvelopeBase):
    """第十五条（四）自由裁量标准及执法工作流程的事件。"""

    type: Literal["discretion_standard.v1"]
    data: discretion_standard.DiscretionStandard


class InspectionRecordEvent(EnvelopeBase):
    """第十五条（五）行政检查记录等动态信息的事件。"""

    type: Literal["inspection_record.v1"]
    data: inspection_record.InspectionRecord


class ComplaintOutcomeEvent(EnvelopeBase):
    """第十五条（六）投诉举报案件受理与处理情况的事件。"""

    type: Literal["complaint_outcome.v1"]
    data: complaint_outcome.ComplaintOutcome


class OtherEvent(EnvelopeBase):
    """第十五条（七）其他需要共享的执法信息的事件。"""

    type: Literal["other.v1"]
    data: other.Other


class CaseTransferEvent(EnvelopeBase):
    """第七至九条：案件移交。"""

    type: Literal["case_transfer.v1"]
    data: transfer.CaseTransfer


class TransferExtensionEvent(EnvelopeBase):
    """第七条：延长移交期限的事先告知。"""

    type: Literal["case_transfer_extension.v1"]
    data: transfer.TransferExtension


class TransferReplyEvent(EnvelopeBase):
    """第七条：受理情况的书面告知。"""

    type: Literal["case_transfer_reply.v1"]
    data: transfer.TransferReply


class CaseDecisionEvent(EnvelopeBase):
    """第七条：县人民政府的管辖决定。"""

    type: Literal["case_decision.v1"]
    data: transfer.CaseDecision


class JurisdictionDisputeEvent(EnvelopeBase):
    """第二十一条：职责分工争议。"""

    type: Literal["jurisdiction_dispute.v1"]
    data: transfer.JurisdictionDispute


class DisputeDecisionEvent(EnvelopeBase):
    """第二十一条：争议的协调决定。"""

    type: Literal["dispute_decision.v1"]
    data: transfer.DisputeDecision


class AssistanceRequestEvent(EnvelopeBase):
    """第二十条：协助函件。"""

    type: Literal["assistance_request.v1"]
    data: assistance.AssistanceRequest


class SupplementRequestEvent(EnvelopeBase):
    """第二十条：需要补充资料的告知。"""

    type: Literal["assistance_supplement_request.v1"]
    data: assistance.SupplementRequest


class SupplementEvent(EnvelopeBase):
    """第二十条：补充的资料。"""

    type: Literal["assistance_supplement.v1"]
    data: assistance.Supplement


class AssistanceExtensionEvent(EnvelopeBase):
    """第二十条：答复延期。"""

    type: Literal["assistance_extension.v1"]
    data: assistance.AssistanceExtension


class AssistanceReplyEvent(EnvelopeBase):
    """第二十条：书面意见。"""

    type: Literal["assistance_reply.v1"]
    data: assistance.AssistanceReply


class HazardNoticeEvent(EnvelopeBase):
    """第十八条：隐患通知。"""

    type: Literal["hazard_notice.v1"]
    data: hazard.HazardNotice


class HazardResponseEvent(EnvelopeBase):
    """第十八条：派员及处置结果。"""

    type: Literal["hazard_response.v1"]
    data: hazard.HazardResponse


class ComplaintReferralEvent(EnvelopeBase):
    """第十至十四条：投诉举报的移交或告知处理。"""

    type: Literal["complaint_referral.v1"]
    data: referral.ComplaintReferral


class ComplaintFeedbackEvent(EnvelopeBase):
    """第十、十四条：处理结果反馈。"""

    type: Literal["complaint_feedback.v1"]
    data: referral.ComplaintFeedback


class CaseOverdueEvent(EnvelopeBase):
    """枢纽发出的逾期提醒。"""

    type: Literal["case_overdue.v1"]
    data: case_notice.CaseOverdue


Event = Annotated[
    LawChangeEvent
    | PermitEvent
    | StatisticsEvent
    | DiscretionStandardEvent
    | InspectionRecordEvent
    | ComplaintOutcomeEvent
    | OtherEvent
    | CaseTransferEvent
    | TransferExtensionEvent
    | TransferReplyEvent
    | CaseDecisionEvent
    | JurisdictionDisputeEvent
    | DisputeDecisionEvent
    | AssistanceRequestEvent
    | SupplementRequestEvent
    | SupplementEvent
    | AssistanceExtensionEvent
    | AssistanceReplyEvent
    | HazardNoticeEvent
    | HazardResponseEvent
    | ComplaintReferralEvent
    | ComplaintFeedbackEvent
    | CaseOverdueEvent,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


@dataclass(frozen=True)
class Category:
    """One Article 15 category: its number, names and event model."""

    number: int
    name: str
    label: str
    short: str
    event: type[EnvelopeBase]

    @property
    def type(self) -> str:
        """The current versioned event type, e.g. ``permit.v1``."""
        return f"{self.name}.v1"


CATEGORIES: dict[str, Category] = {
    c.name: c
    for c in (
        Category(1, "law_change", law_change.LABEL, "法规调整", LawChangeEvent),
        Category(2, "permit", permit.LABEL, "许可监管", PermitEvent),
        Category(3, "statistics", statistics.LABEL, "统计数据", StatisticsEvent),
        Category(
            4, "discretion_standard", discretion_standard.LABEL, "裁量标准", DiscretionStandardEvent
        ),
        Category(
            5, "inspection_record", inspection_record.LABEL, "检查记录", InspectionRecordEvent
        ),
        Category(
            6, "complaint_outcome", complaint_outcome.LABEL, "投诉举报", ComplaintOutcomeEvent
        ),
        Category(7, "other", other.LABEL, "其他信息", OtherEvent),
    )
}


@dataclass(frozen=True)
class CaseStep:
    """One kind of case message: its type, the kind of case, its name, whether it opens a case."""

    name: str
    case_kind: str  # transfer, assistance, hazard, complaint, notice
    label: str
    event: type[EnvelopeBase]
    opens: bool = False

    @property
    def type(self) -> str:
        """The versioned event type, e.g. ``case_transfer.v1``."""
        return f"{self.name}.v1"


CASE_STEPS: dict[str, CaseStep] = {
    s.name: s
    for s in (
        CaseStep("case_transfer", "transfer", "案件移交", CaseTransferEvent, opens=True),
        CaseStep(
            "case_transfer_extension", "transfer", "延长移交期限告知", TransferExtensionEvent, True
        ),
        CaseStep("case_transfer_reply", "transfer", "移交案件受理回复", TransferReplyEvent),
        CaseStep("case_decision", "transfer", "县政府管辖决定", CaseDecisionEvent),
        CaseStep("jurisdiction_dispute", "transfer", "职责分工争议", JurisdictionDisputeEvent),
        CaseStep("dispute_decision", "transfer", "争议协调决定", DisputeDecisionEvent),
        CaseStep("assistance_request", "assistance", "协助函", AssistanceRequestEvent, True),
        CaseStep(
            "assistance_supplement_request", "assistance", "补充资料告知", SupplementRequestEvent
        ),
        CaseStep("assistance_supplement", "assistance", "补充资料", SupplementEvent),
        CaseStep("assistance_extension", "assistance", "协助答复延期", AssistanceExtensionEvent),
        CaseStep("assistance_reply", "assistance", "协助书面意见", AssistanceReplyEvent),
        CaseStep("hazard_notice", "hazard", "隐患通知", HazardNoticeEvent, opens=True),
        CaseStep("hazard_response", "hazard", "隐患处置报告", HazardResponseEvent),
        CaseStep("complaint_referral", "complaint", "投诉举报移交", ComplaintReferralEvent, True),
        CaseStep("complaint_feedback", "complaint", "投诉举报处理反馈", ComplaintFeedbackEvent),
        CaseStep("case_overdue", "notice", "逾期提醒", CaseOverdueEvent),
    )
}
EVENT_TYPES: tuple[str, ...] = tuple(c.type for c in CATEGORIES.values())
CASE_TYPES: tuple[str, ...] = tuple(s.type for s in CASE_STEPS.values())


def model_of(category: str) -> type[EnvelopeBase]:
    """The event class of an Art. 15 category or of a kind of case message."""
    return CATEGORIES[category].event if category in CATEGORIES else CASE_STEPS[category].event


def label_of(category: str) -> str:
    """The Chinese name of an Art. 15 category or of a kind of case message."""
    if category in CATEGORIES:
        return CATEGORIES[category].label
    return CASE_STEPS[category].label if category in CASE_STEPS else category


def summary_zh(event: Event) -> str:
    """A one-line Chinese summary of an event's payload (never personal data)."""
    return event.data.summary_zh()
