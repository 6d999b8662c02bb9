"""Hazard notices (Art. 18): a major public-security or safety hazard of another department's.

The department notified must send officers to deal with it; the notice is tracked until it
reports officers sent and the outcome. The measures set no deadline: the county configures the
hours within which officers must be reported sent (``HUB_HAZARD_RESPONSE_HOURS``).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field, ValidationInfo, field_validator

from schemas.case_common import CaseNo, CaseRef, PersonName, StoredAttachment
from schemas.common import Model, OrgId, Text, Title, forbidden_when, required_when


class HazardKind(StrEnum):
    """隐患类别。"""

    PUBLIC_SECURITY = "public_security"
    SAFETY = "safety"
    OTHER = "other"


HAZARD_ZH = {
    HazardKind.PUBLIC_SECURITY: "重大治安隐患",
    HazardKind.SAFETY: "重大安全隐患",
    HazardKind.OTHER: "其他违法行为",
}


class HazardNotice(Model):
    """隐患通知（第十八条）：发现涉及其他部门管辖的重大治安、安全隐患等违法行为。"""

    case_no: CaseNo
    receiver: OrgId = Field(description="有管辖权的县级执法部门")
    kind: HazardKind = Field(
        description="类别：" + "、".join(f"{k.value} {v}" for k, v in HAZARD_ZH.items())
    )
    found_at: AwareDatetime = Field(description="发现时间（须带时区）")
    location: Title = Field(description="地点")
    description: Text = Field(description="情况描述")
    attachments: tuple[StoredAttachment, ...] = Field(default=(), max_length=50)

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"{HAZARD_ZH[self.kind]}通知 {self.case_no}：{self.location}"


class ResponseStage(StrEnum):
    """处置进展。"""

    OFFICERS_SENT = "officers_sent"
    OUTCOME = "outcome"


STAGE_ZH = {ResponseStage.OFFICERS_SENT: "已派员", ResponseStage.OUTCOME: "处置结果"}


class HazardResponse(Model):
    """接到通知的部门报告派员及处置结果。"""

    case: CaseRef
    stage: ResponseStage = Field(
        description="进展：" + "、".join(f"{k.value} {v}" for k, v in STAGE_ZH.items())
    )
    officers: tuple[PersonName, ...] = Field(
        default=(),
        validate_default=True,
        max_length=20,
        description="派出的执法人员（已派员时必填）",
    )
    outcome: Text | None = Field(
        default=None, validate_default=True, description="处置结果（报告结果时必填）"
    )

    @field_validator("officers")
    @classmethod
    def _officers_when_sent(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if info.data.get("stage") is ResponseStage.OFFICERS_SENT:
            return required_when(value, reason="stage is officers_sent", reason_zh="进展为已派员")
        return value

    @field_validator("outcome")
    @classmethod
    def _outcome_when_done(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("stage") is ResponseStage.OUTCOME:
            return required_when(value, reason="stage is outcome", reason_zh="进展为处置结果")
        return forbidden_when(value, reason="stage is officers_sent", reason_zh="进展为已派员")

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"隐患处置 {self.case}：{STAGE_ZH[self.stage]}"
