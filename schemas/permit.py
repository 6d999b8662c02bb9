"""Category 2 (第十五条第二项): permits and supervision information tied to devolved penalties."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field, ValidationInfo, field_validator

from schemas.common import Code, Model, Text, Title, Uscc, not_before, required_when

TYPE = "permit.v1"
LABEL = "行政许可和监督管理信息"


class PermitAction(StrEnum):
    """许可或监管动作。"""

    GRANTED = "granted"
    CHANGED = "changed"
    RENEWED = "renewed"
    REVOKED = "revoked"
    CANCELLED = "cancelled"
    SUPERVISION = "supervision"


ACTION_ZH = {
    PermitAction.GRANTED: "准予许可",
    PermitAction.CHANGED: "变更",
    PermitAction.RENEWED: "延续",
    PermitAction.REVOKED: "撤销",
    PermitAction.CANCELLED: "注销",
    PermitAction.SUPERVISION: "监督管理信息",
}


class Permit(Model):
    """与下放处罚事项有关的行政许可事项和监督管理信息。"""

    action: PermitAction = Field(
        description="动作：" + "、".join(f"{k.value} {v}" for k, v in ACTION_ZH.items())
    )
    permit_name: Title = Field(description="许可事项名称，如 食品经营许可")
    entity_name: Title = Field(description="市场主体名称")
    entity_uscc: Uscc
    decided_on: date = Field(description="决定日期（监管信息为形成日期）")
    permit_number: Code | None = Field(
        default=None, validate_default=True, description="许可证编号（监管信息以外必填）"
    )
    valid_from: date | None = Field(default=None, description="有效期起")
    valid_until: date | None = Field(default=None, description="有效期止，不得早于有效期起")
    address: Title | None = Field(default=None, description="经营（住所）地址")
    legal_representative: Title | None = Field(default=None, description="法定代表人")
    supervision_note: Text | None = Field(
        default=None, validate_default=True, description="监督管理信息内容（动作为监管信息时必填）"
    )

    @field_validator("permit_number")
    @classmethod
    def _number_for_permits(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("action") in (None, PermitAction.SUPERVISION):
            return value
        return required_when(
            value, reason="action is a permit decision", reason_zh="动作为许可决定"
        )

    @field_validator("valid_until")
    @classmethod
    def _until_after_from(cls, value: date | None, info: ValidationInfo) -> date | None:
        return not_before(value, info.data.get("valid_from"), other="valid_from")

    @field_validator("supervision_note")
    @classmethod
    def _note_for_supervision(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("action") is not PermitAction.SUPERVISION:
            return value
        return required_when(
            value, reason="action is 'supervision'", reason_zh="动作为监督管理信息"
        )

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"{self.entity_name} {self.permit_name} {ACTION_ZH[self.action]}"
