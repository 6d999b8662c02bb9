"""Category 5 (第十五条第五项): inspection records and other dynamic information from duty."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from schemas.common import (
    Attachment,
    Model,
    Text,
    Title,
    Uscc,
    forbidden_when,
    not_before,
    required_when,
)

TYPE = "inspection_record.v1"
LABEL = "行政检查记录等动态信息"


class RecordKind(StrEnum):
    """记录种类。"""

    INSPECTION = "inspection"
    DYNAMIC = "dynamic"


KIND_ZH = {RecordKind.INSPECTION: "行政检查记录", RecordKind.DYNAMIC: "动态信息"}


class InspectionResult(StrEnum):
    """检查结果。"""

    NO_PROBLEM = "no_problem"
    RECTIFICATION_ORDERED = "rectification_ordered"
    CASE_FILED = "case_filed"
    TRANSFERRED = "transferred"


RESULT_ZH = {
    InspectionResult.NO_PROBLEM: "未发现问题",
    InspectionResult.RECTIFICATION_ORDERED: "责令整改",
    InspectionResult.CASE_FILED: "立案查处",
    InspectionResult.TRANSFERRED: "移送处理",
}

CertificateNo = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Za-z-]{6,32}$")
]


class Inspector(Model):
    """参与的执法人员及其执法证号。"""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=20)] = (
        Field(description="执法人员姓名")
    )
    certificate_no: CertificateNo = Field(description="行政执法证件号")


class InspectionRecord(Model):
    """履职中收集、制作的各类动态信息，包括行政检查记录。"""

    kind: RecordKind = Field(description="种类：inspection 行政检查记录 / dynamic 动态信息")
    title: Title = Field(description="标题")
    occurred_on: date = Field(description="检查（或信息形成）日期")
    location: Title = Field(description="地点")
    content: Text = Field(description="检查内容或信息正文")
    inspectors: tuple[Inspector, ...] = Field(
        default=(),
        validate_default=True,
        max_length=20,
        description="执法人员（行政检查不少于两人）",
    )
    entity_name: Title | None = Field(default=None, description="检查对象名称")
    entity_uscc: Uscc | None = Field(default=None, description="检查对象统一社会信用代码")
    result: InspectionResult | None = Field(
        default=None,
        validate_default=True,
        description="检查结果（行政检查必填）："
        + "、".join(f"{k.value} {v}" for k, v in RESULT_ZH.items()),
    )
    rectification_due: date | None = Field(
        default=None, validate_default=True, description="整改期限（责令整改时必填）"
    )
    attachments: tuple[Attachment, ...] = Field(
        default=(), max_length=20, description="检查记录附件"
    )

    @field_validator("inspectors")
    @classmethod
    def _two_inspectors(
        cls, value: tuple[Inspector, ...], info: ValidationInfo
    ) -> tuple[Inspector, ...]:
        if info.data.get("kind") is RecordKind.INSPECTION and len(value) < 2:
            raise PydanticCustomError(
                "two_inspectors",
                "an inspection needs at least 2 law-enforcement officers, got {count}",
                {"count": len(value)},
            )
        return value

    @field_validator("result")
    @classmethod
    def _result_for_inspections(
        cls, value: InspectionResult | None, info: ValidationInfo
    ) -> InspectionResult | None:
        kind = info.data.get("kind")
        if kind is RecordKind.INSPECTION:
            return required_when(
                value, reason="kind is 'inspection'", reason_zh="种类为行政检查记录"
            )
        return value

    @field_validator("rectification_due")
    @classmethod
    def _due_for_rectification(cls, value: date | None, info: ValidationInfo) -> date | None:
        if info.data.get("result") is InspectionResult.RECTIFICATION_ORDERED:
            required_when(
                value, reason="result is 'rectification_ordered'", reason_zh="检查结果为责令整改"
            )
            return not_before(value, info.data.get("occurred_on"), other="occurred_on")
        return forbidden_when(
            value, reason="result is not 'rectification_ordered'", reason_zh="检查结果不是责令整改"
        )

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        result = f" {RESULT_ZH[self.result]}" if self.result else ""
        return f"{KIND_ZH[self.kind]}：{self.title}{result}"
