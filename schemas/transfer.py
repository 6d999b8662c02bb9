"""Case transfers between townships and county departments (Art. 7–9), and disputes (Art. 21).

The discoverer transfers within 3 working days of discovery (5 at most, extended only by notice
sent before the deadline); the receiver answers in writing within 5 working days of receipt,
accepting the case or saying it is not its own, which goes to the county government to decide;
a case is never transferred a second time. A jurisdiction dispute goes to the county's staffing
office and justice bureau. The hub checks every step against the case and the calendar.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from schemas.case_common import (
    KIND_ZH,
    Approval,
    AttachmentKind,
    CaseNo,
    CaseRef,
    StoredAttachment,
)
from schemas.common import Model, OrgId, Text, Title, Uscc, required_when

REQUIRED_MATERIALS = {
    "transfer_letter": {AttachmentKind.TRANSFER_LETTER},
    "case_source": {AttachmentKind.INSPECTION_RECORD, AttachmentKind.COMPLAINT_MATERIAL},
    "evidence": {AttachmentKind.EVIDENCE},
}
REQUIRED_ZH = {
    "transfer_letter": KIND_ZH[AttachmentKind.TRANSFER_LETTER],
    "case_source": "案源材料（现场检查记录或投诉举报材料）",
    "evidence": KIND_ZH[AttachmentKind.EVIDENCE],
}


class CaseTransfer(Model):
    """案件移交（第七至九条）：以县级执法部门或乡镇（街道）的名义，经领导批准，书面移交。"""

    case_no: CaseNo
    receiver: OrgId = Field(description="有管辖权的接收单位（本县（市、区）的部门或乡镇（街道））")
    discovered_on: date = Field(description="发现违法行为的日期（移交期限由此起算）")
    violation: Text = Field(description="基本违法事实")
    location: Title = Field(description="违法行为发生地")
    party_name: Title | None = Field(default=None, description="当事人名称")
    party_uscc: Uscc | None = None
    jurisdiction: Text = Field(description="移交理由：管辖依据")
    ongoing: bool = Field(description="违法行为是否正在进行")
    measures_taken: Text | None = Field(
        default=None,
        validate_default=True,
        description="已责令停止或采取的制止措施（违法行为正在进行时必填）",
    )
    attachments: tuple[StoredAttachment, ...] = Field(
        min_length=3,
        max_length=50,
        description="移交材料：移交函、案源材料（现场检查记录或投诉举报材料）、初步证据",
    )
    approved_by: Approval

    @field_validator("measures_taken")
    @classmethod
    def _measures_when_ongoing(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("ongoing"):
            return required_when(value, reason="ongoing is true", reason_zh="违法行为正在进行")
        return value

    @field_validator("attachments")
    @classmethod
    def _the_three_materials(
        cls, value: tuple[StoredAttachment, ...]
    ) -> tuple[StoredAttachment, ...]:
        kinds = {a.kind for a in value}
        missing = [name for name, wanted in REQUIRED_MATERIALS.items() if not kinds & wanted]
        if missing:
            raise PydanticCustomError(
                "materials_missing",
                "the transfer lacks {missing}",
                {
                    "missing": ", ".join(missing),
                    "missing_zh": "、".join(REQUIRED_ZH[m] for m in missing),
                },
            )
        return value

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        party = f"（当事人 {self.party_name}）" if self.party_name else ""
        return f"案件移交 {self.case_no}：{self.violation[:60]}{party}"


class TransferExtension(Model):
    """延长移交期限的事先告知（第七条：须在 3 个工作日期限届满前告知，最长不超过 5 个工作日）。"""

    case_no: CaseNo
    receiver: OrgId = Field(description="拟移交的接收单位")
    discovered_on: date = Field(description="发现违法行为的日期")
    new_due: date = Field(description="延长后的移交期限（不得超过发现之日起 5 个工作日）")
    reason: Text = Field(description="延长理由（调查核实等客观原因）")

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"延长移交期限告知 {self.case_no}：延至 {self.new_due.isoformat()}"


class ReplyDecision(StrEnum):
    """受理情况。"""

    ACCEPTED = "accepted"
    NOT_OURS = "not_ours"


DECISION_ZH = {ReplyDecision.ACCEPTED: "受理", ReplyDecision.NOT_OURS: "不属本单位管辖"}


class TransferReply(Model):
    """受理情况的书面告知（第七条：5 个工作日内；不属管辖的报请县人民政府决定，不得再次移交）。"""

    case: CaseRef
    decision: ReplyDecision = Field(
        description="受理情况：" + "、".join(f"{k.value} {v}" for k, v in DECISION_ZH.items())
    )
    opinion: Text = Field(description="书面意见")
    handler: Title | None = Field(default=None, description="承办人")

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"移交案件回复 {self.case}：{DECISION_ZH[self.decision]}"


class CaseDecision(Model):
    """县人民政府对“不属本单位管辖”案件的管辖决定。"""

    case: CaseRef
    assigned_to: OrgId = Field(description="决定由其管辖的单位")
    reason: Text = Field(description="决定理由")

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"管辖决定 {self.case}：由 {self.assigned_to} 管辖"


class JurisdictionDispute(Model):
    """职责分工争议（第二十一条）：提请县级编制部门和司法行政部门协调解决。"""

    case: CaseRef
    position: Text = Field(description="本单位意见及依据")

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"职责分工争议 {self.case}"


class DisputeDecision(Model):
    """编制部门或司法行政部门对职责分工争议的协调决定。"""

    case: CaseRef
    assigned_to: OrgId = Field(description="决定由其管辖的单位")
    reason: Text = Field(description="协调意见")
    measures: Text | None = Field(default=None, description="其他安排")

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"争议协调决定 {self.case}：由 {self.assigned_to} 管辖"
