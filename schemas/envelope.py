"""The CloudEvents 1.0 style envelope and the typed event of each Article 15 category.

Validation context (``TypeAdapter.validate_json(..., context=...)``):
``now`` (aware datetime) and ``clock_skew_s`` (float) bound how far in the future ``time`` may lie.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from schemas import (
    complaint_outcome,
    discretion_standard,
    inspection_record,
    law_change,
    other,
    permit,
    statistics,
)
from schemas.common import EventId, Model, OrgId, Title
from schemas.shanghai import local_iso

DEFAULT_CLOCK_SKEW_S = 300.0
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
    datacontenttype: Literal["application/json"] = Field(
        default="application/json", description="数据格式，固定为 application/json"
    )
    dataschema: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None, description="数据模式地址（可空）"
    )
    recipients: tuple[OrgId, ...] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description="指定接收单位（可空；为空时按登记簿的路由规则发送给本县（市、区）的对口单位）",
    )

    @field_validator("time")
    @classmethod
    def _not_in_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        context = info.context or {}
        if context.get("delivered"):
            return value
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


Event = Annotated[
    LawChangeEvent
    | PermitEvent
    | StatisticsEvent
    | DiscretionStandardEvent
    | InspectionRecordEvent
    | ComplaintOutcomeEvent
    | OtherEvent,
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
EVENT_TYPES: tuple[str, ...] = tuple(c.type for c in CATEGORIES.values())


def summary_zh(event: Event) -> str:
    """A one-line Chinese summary of an event's payload (never personal data)."""
    return event.data.summary_zh()
