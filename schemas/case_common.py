"""What every case message shares: the case it belongs to, stored attachments, an approval.

A case is named by its initiator and the initiator's case number: ``renqiu-chuan/YS-2026-001``.
Attachments are uploaded to the hub's attachment store first and referred to by SHA-256 digest.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from schemas.common import EVENT_ID_PATTERN, ORG_ID_PATTERN, Model, Title

CaseNo = Annotated[
    str,
    StringConstraints(pattern=EVENT_ID_PATTERN),
    Field(description="本单位的案件编号（字母、数字和 . _ : -，最长 128 个字符）"),
]
CaseRef = Annotated[
    str,
    StringConstraints(pattern=f"^{ORG_ID_PATTERN[1:-1]}/{EVENT_ID_PATTERN[1:-1]}$"),
    Field(description="案件：发起单位/案件编号，如 renqiu-chuan/YS-2026-001"),
]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


class AttachmentKind(StrEnum):
    """附件种类（第八条：移交函、案源材料、初步证据；第二十条：协助函、补充资料、书面意见）。"""

    TRANSFER_LETTER = "transfer_letter"
    INSPECTION_RECORD = "inspection_record"
    COMPLAINT_MATERIAL = "complaint_material"
    EVIDENCE = "evidence"
    ASSISTANCE_LETTER = "assistance_letter"
    SUPPLEMENT = "supplement"
    WRITTEN_OPINION = "written_opinion"
    OTHER = "other"


KIND_ZH = {
    AttachmentKind.TRANSFER_LETTER: "涉嫌违法案件移交函",
    AttachmentKind.INSPECTION_RECORD: "现场检查记录",
    AttachmentKind.COMPLAINT_MATERIAL: "投诉举报材料",
    AttachmentKind.EVIDENCE: "初步证明违法事实的证据材料",
    AttachmentKind.ASSISTANCE_LETTER: "协助函",
    AttachmentKind.SUPPLEMENT: "补充资料",
    AttachmentKind.WRITTEN_OPINION: "书面意见",
    AttachmentKind.OTHER: "其他材料",
}

MEDIA_TYPES = (
    "application/pdf",
    "application/ofd",
    "image/jpeg",
    "image/png",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
)


class StoredAttachment(Model):
    """附件：已上传至枢纽附件库的文件，以 SHA-256 摘要引用。"""

    kind: AttachmentKind = Field(
        description="种类：" + "、".join(f"{k.value} {v}" for k, v in KIND_ZH.items())
    )
    name: Title = Field(description="文件名")
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="SHA-256 摘要（64 位小写十六进制，上传时枢纽给出）"
    )


class Approval(Model):
    """领导批准（第八条：移交的案件应经乡镇（街道）或部门领导批准）。"""

    name: PersonName = Field(description="批准人姓名")
    title: Title = Field(description="职务")
    approved_on: date = Field(description="批准日期")
