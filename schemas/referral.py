"""Complaint referrals (Art. 10–14): an out-of-scope complaint moved to the competent party.

A township refers a complaint outside its duties to the department with jurisdiction (Art. 10,
12), or a department tells a township to handle one (Art. 13); the handler feeds the result back
(Art. 10, 14). The complainant's personal data goes only to the handling party.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field

from schemas.case_common import CaseNo, CaseRef, StoredAttachment
from schemas.common import Code, Model, OrgId, Text
from schemas.complaint_outcome import CHANNEL_ZH, Channel, Complainant


class Direction(StrEnum):
    """移交方向。"""

    TRANSFER = "transfer"  # 乡镇（街道）→ 部门：不属职责范围，移交有管辖权的部门
    ASSIGN = "assign"  # 部门 → 乡镇（街道）：书面告知乡镇（街道）组织调查，依法处理


DIRECTION_ZH = {Direction.TRANSFER: "移交", Direction.ASSIGN: "告知处理"}


class ComplaintReferral(Model):
    """投诉举报的移交或告知处理。"""

    case_no: CaseNo
    receiver: OrgId = Field(description="承办单位")
    direction: Direction = Field(
        description="方向：" + "、".join(f"{k.value} {v}" for k, v in DIRECTION_ZH.items())
    )
    complaint_no: Code = Field(description="投诉举报编号")
    channel: Channel = Field(
        description="渠道：" + "、".join(f"{k.value} {v}" for k, v in CHANNEL_ZH.items())
    )
    received_on: date = Field(description="接收日期")
    matter: Text = Field(description="反映事项（不含投诉人个人信息）")
    complainant: Complainant | None = Field(
        default=None, description="投诉举报人（个人信息，只送承办单位）"
    )
    attachments: tuple[StoredAttachment, ...] = Field(default=(), max_length=50)

    def summary_zh(self) -> str:
        """One line for dashboards and logs; never contains the complainant."""
        return f"投诉举报{DIRECTION_ZH[self.direction]} {self.complaint_no}：{self.matter[:60]}"


class ComplaintFeedback(Model):
    """承办单位反馈调查处理结果（第十、十四条）。"""

    case: CaseRef
    result: Text = Field(description="调查处理结果")
    complainant_informed_on: date | None = Field(default=None, description="已告知投诉举报人的日期")

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"投诉举报处理结果反馈 {self.case}"
