"""Category 6 (第十五条第六项): acceptance and handling of complaints and reports.

The complainant's personal data (Art. 10–14: fed back to the complainant, never broadcast) travels
only to the organisations named in ``complainant_shared_with``; every other recipient gets the event
with ``complainant`` removed (see ``hub.delivery``).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from schemas.common import (
    Code,
    Model,
    OrgId,
    Phone,
    ResidentId,
    Text,
    forbidden_when,
    not_before,
    required_when,
)

TYPE = "complaint_outcome.v1"
LABEL = "投诉举报案件受理与处理情况"


class Channel(StrEnum):
    """投诉举报渠道。"""

    HOTLINE_12345 = "hotline_12345"
    PHONE = "phone"
    LETTER = "letter"
    VISIT = "visit"
    ONLINE = "online"
    REFERRAL = "referral"


CHANNEL_ZH = {
    Channel.HOTLINE_12345: "12345热线",
    Channel.PHONE: "电话",
    Channel.LETTER: "来信",
    Channel.VISIT: "来访",
    Channel.ONLINE: "网络",
    Channel.REFERRAL: "上级交办或转办",
}


class ComplaintStatus(StrEnum):
    """处理状态。"""

    ACCEPTED = "accepted"
    NOT_ACCEPTED = "not_accepted"
    HANDLED = "handled"
    TRANSFERRED = "transferred"


STATUS_ZH = {
    ComplaintStatus.ACCEPTED: "已受理",
    ComplaintStatus.NOT_ACCEPTED: "不予受理",
    ComplaintStatus.HANDLED: "已办结",
    ComplaintStatus.TRANSFERRED: "已移送",
}

PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


class Complainant(Model):
    """投诉举报人信息（个人信息，仅向 complainant_shared_with 所列单位传递）。"""

    name: PersonName = Field(description="姓名")
    phone: Phone | None = Field(default=None, description="联系电话")
    id_number: ResidentId | None = Field(default=None, description="居民身份证号码")
    anonymous_to_respondent: bool = Field(default=True, description="对被投诉方保密")


class ComplaintOutcome(Model):
    """投诉举报案件的受理与处理情况。"""

    complaint_no: Code = Field(description="投诉举报编号")
    channel: Channel = Field(
        description="渠道：" + "、".join(f"{k.value} {v}" for k, v in CHANNEL_ZH.items())
    )
    received_on: date = Field(description="接收日期")
    status: ComplaintStatus = Field(
        description="状态：" + "、".join(f"{k.value} {v}" for k, v in STATUS_ZH.items())
    )
    matter: Text = Field(description="反映事项（不含投诉人个人信息）")
    respondent_name: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None
    ) = Field(default=None, description="被投诉举报对象")
    result: Text | None = Field(
        default=None,
        validate_default=True,
        description="处理结果或不予受理理由（不予受理、办结时必填）",
    )
    transferred_to: OrgId | None = Field(
        default=None, validate_default=True, description="移送接收单位（已移送时必填）"
    )
    decided_on: date | None = Field(
        default=None, description="受理、办结或移送日期，不得早于接收日期"
    )
    feedback_on: date | None = Field(default=None, description="向投诉举报人反馈日期")
    complainant: Complainant | None = Field(default=None, description="投诉举报人（个人信息）")
    complainant_shared_with: tuple[OrgId, ...] = Field(
        default=(),
        validate_default=True,
        max_length=10,
        description="可接收投诉人信息的单位（须为本事件的接收单位；有投诉人信息时必填）",
    )

    @field_validator("result")
    @classmethod
    def _result_when_closed(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("status") in (ComplaintStatus.NOT_ACCEPTED, ComplaintStatus.HANDLED):
            return required_when(
                value,
                reason="status is 'not_accepted' or 'handled'",
                reason_zh="状态为不予受理或已办结",
            )
        return value

    @field_validator("transferred_to")
    @classmethod
    def _target_when_transferred(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("status") is ComplaintStatus.TRANSFERRED:
            return required_when(value, reason="status is 'transferred'", reason_zh="状态为已移送")
        return forbidden_when(
            value, reason="status is not 'transferred'", reason_zh="状态不是已移送"
        )

    @field_validator("decided_on", "feedback_on")
    @classmethod
    def _after_receipt(cls, value: date | None, info: ValidationInfo) -> date | None:
        return not_before(value, info.data.get("received_on"), other="received_on")

    @field_validator("complainant_shared_with")
    @classmethod
    def _personal_data_has_addressees(
        cls, value: tuple[str, ...], info: ValidationInfo
    ) -> tuple[str, ...]:
        if info.data.get("complainant") is not None:
            return required_when(
                value, reason="complainant is given", reason_zh="填写了投诉举报人信息"
            )
        return forbidden_when(
            value, reason="no complainant is given", reason_zh="未填写投诉举报人信息"
        )

    def summary_zh(self) -> str:
        """One line for dashboards and logs; never contains the complainant."""
        return (
            f"投诉举报 {self.complaint_no} {STATUS_ZH[self.status]}（{CHANNEL_ZH[self.channel]}）"
        )
