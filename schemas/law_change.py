"""Category 1 (第十五条第一项): changes to the legal basis of penalty items."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field, ValidationInfo, field_validator

from schemas.common import Attachment, Model, PenaltyItem, Text, Title, forbidden_when, not_before

TYPE = "law_change.v1"
LABEL = "法律法规规章标准调整情况"


class DocumentKind(StrEnum):
    """法律文件类别。"""

    LAW = "law"
    ADMINISTRATIVE_REGULATION = "administrative_regulation"
    LOCAL_REGULATION = "local_regulation"
    DEPARTMENTAL_RULE = "departmental_rule"
    LOCAL_RULE = "local_rule"
    NATIONAL_STANDARD = "national_standard"
    INDUSTRY_STANDARD = "industry_standard"
    LOCAL_STANDARD = "local_standard"
    NORMATIVE_DOCUMENT = "normative_document"


DOCUMENT_KIND_ZH = {
    DocumentKind.LAW: "法律",
    DocumentKind.ADMINISTRATIVE_REGULATION: "行政法规",
    DocumentKind.LOCAL_REGULATION: "地方性法规",
    DocumentKind.DEPARTMENTAL_RULE: "部门规章",
    DocumentKind.LOCAL_RULE: "地方政府规章",
    DocumentKind.NATIONAL_STANDARD: "国家标准",
    DocumentKind.INDUSTRY_STANDARD: "行业标准",
    DocumentKind.LOCAL_STANDARD: "地方标准",
    DocumentKind.NORMATIVE_DOCUMENT: "规范性文件",
}


class Change(StrEnum):
    """调整类型。"""

    ENACTED = "enacted"
    AMENDED = "amended"
    REPEALED = "repealed"


CHANGE_ZH = {Change.ENACTED: "新制定", Change.AMENDED: "修订", Change.REPEALED: "废止"}


class LawChange(Model):
    """处罚事项设定依据的法律、法规、规章、国家标准等调整情况。"""

    document_title: Title = Field(description="文件名称，如《中华人民共和国食品安全法》")
    document_number: Title = Field(description="文号或标准号，如 国务院令第777号、GB 2760-2024")
    document_kind: DocumentKind = Field(
        description="文件类别：" + "、".join(f"{k.value} {v}" for k, v in DOCUMENT_KIND_ZH.items())
    )
    issuing_authority: Title = Field(description="制定机关")
    change: Change = Field(description="调整类型：enacted 新制定 / amended 修订 / repealed 废止")
    promulgated_on: date = Field(description="公布日期")
    effective_on: date = Field(description="施行（或废止）日期，不得早于公布日期")
    affected_items: tuple[PenaltyItem, ...] = Field(
        min_length=1, max_length=500, description="受影响的处罚事项（至少一项）"
    )
    summary: Text = Field(description="主要变化内容")
    replaced_by: Title | None = Field(
        default=None, description="替代文件名称（仅废止时填写，可空）"
    )
    attachments: tuple[Attachment, ...] = Field(default=(), max_length=20, description="原文附件")

    @field_validator("effective_on")
    @classmethod
    def _effective_after_promulgation(cls, value: date, info: ValidationInfo) -> date | None:
        return not_before(value, info.data.get("promulgated_on"), other="promulgated_on")

    @field_validator("replaced_by")
    @classmethod
    def _replacement_only_on_repeal(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("change") is Change.REPEALED:
            return value
        return forbidden_when(
            value, reason="change is not 'repealed'", reason_zh="调整类型不是废止"
        )

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"{self.document_title}（{self.document_number}）{CHANGE_ZH[self.change]}"


__all__ = ["CHANGE_ZH", "DOCUMENT_KIND_ZH", "LABEL", "TYPE", "Change", "DocumentKind", "LawChange"]
