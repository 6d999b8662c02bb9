"""Assistance requests (Art. 20): a township asks a department for material or a test.

The department gives its written opinion within 7 working days of receiving the assistance
letter; if it needs more material it says so within 2 working days, and the days until the
material arrives do not count; a complex case may be extended once, in writing, with reasons and
a stated date.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field

from schemas.case_common import CaseNo, CaseRef, StoredAttachment
from schemas.common import Model, OrgId, Text


class AssistanceKind(StrEnum):
    """协助事项。"""

    MATERIAL = "material"
    APPRAISAL = "appraisal"
    INSPECTION = "inspection"
    TESTING = "testing"


ASSISTANCE_ZH = {
    AssistanceKind.MATERIAL: "提供资料",
    AssistanceKind.APPRAISAL: "鉴定",
    AssistanceKind.INSPECTION: "检验",
    AssistanceKind.TESTING: "检测",
}


class AssistanceRequest(Model):
    """协助函件（第二十条）：乡镇（街道）请县级执法部门提供资料或进行鉴定、检验、检测。"""

    case_no: CaseNo
    receiver: OrgId = Field(description="被请求协助的县级执法部门")
    kind: AssistanceKind = Field(
        description="协助事项：" + "、".join(f"{k.value} {v}" for k, v in ASSISTANCE_ZH.items())
    )
    matter: Text = Field(description="所涉案件及需协助的事项")
    attachments: tuple[StoredAttachment, ...] = Field(
        min_length=1, max_length=50, description="协助函及相关材料"
    )

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"协助请求 {self.case_no}（{ASSISTANCE_ZH[self.kind]}）：{self.matter[:60]}"


class SupplementRequest(Model):
    """需要补充资料的告知（收到协助函件之日起两个工作日内；补充所用时间不计入答复期限）。"""

    case: CaseRef
    needed: Text = Field(description="需要补充的资料")

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"补充资料告知 {self.case}"


class Supplement(Model):
    """补充的资料：收到后答复期限恢复计算。"""

    case: CaseRef
    note: Text = Field(description="说明")
    attachments: tuple[StoredAttachment, ...] = Field(
        min_length=1, max_length=50, description="补充资料"
    )

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"补充资料 {self.case}（{len(self.attachments)} 件）"


class AssistanceExtension(Model):
    """案情复杂需要延期的书面说明（一次，说明理由并明确答复期限）。"""

    case: CaseRef
    reason: Text = Field(description="延期理由")
    new_due: date = Field(description="明确的答复期限")

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"协助答复延期 {self.case}：延至 {self.new_due.isoformat()}"


class AssistanceReply(Model):
    """书面意见：协助事项的答复。"""

    case: CaseRef
    opinion: Text = Field(description="书面意见")
    attachments: tuple[StoredAttachment, ...] = Field(
        default=(), max_length=50, description="鉴定、检验、检测报告等"
    )

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"协助答复 {self.case}"
