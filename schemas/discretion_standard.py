"""Category 4 (第十五条第四项): discretion benchmarks of penalty items and enforcement workflows."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from schemas.common import (
    Attachment,
    Model,
    PenaltyItem,
    Text,
    Title,
    forbidden_when,
    not_before,
    required_when,
)

TYPE = "discretion_standard.v1"
LABEL = "自由裁量标准及执法工作流程"


class StandardKind(StrEnum):
    """标准种类。"""

    BENCHMARK = "benchmark"
    WORKFLOW = "workflow"


KIND_ZH = {StandardKind.BENCHMARK: "自由裁量基准", StandardKind.WORKFLOW: "执法工作流程"}


class Severity(StrEnum):
    """违法情节等级。"""

    SLIGHT = "slight"
    MINOR = "minor"
    ORDINARY = "ordinary"
    SERIOUS = "serious"
    GRAVE = "grave"


SEVERITY_ZH = {
    Severity.SLIGHT: "轻微",
    Severity.MINOR: "较轻",
    Severity.ORDINARY: "一般",
    Severity.SERIOUS: "较重",
    Severity.GRAVE: "严重",
}

Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
Version = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


class Benchmark(Model):
    """裁量基准的一行：违法情节 → 处罚幅度。"""

    severity: Severity = Field(
        description="情节等级：" + "、".join(f"{k.value} {v}" for k, v in SEVERITY_ZH.items())
    )
    circumstance: Text = Field(description="违法情节")
    penalty: Text = Field(description="处罚种类和幅度，如 警告，并处五千元以上一万元以下罚款")
    fine_min_yuan: Money | None = Field(default=None, description="罚款下限（元）")
    fine_max_yuan: Money | None = Field(default=None, description="罚款上限（元），不得低于下限")

    @field_validator("fine_max_yuan")
    @classmethod
    def _max_not_below_min(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        return not_before(value, info.data.get("fine_min_yuan"), other="fine_min_yuan")


class DiscretionStandard(Model):
    """处罚事项的自由裁量标准及各类执法工作流程。"""

    kind: StandardKind = Field(description="种类：benchmark 自由裁量基准 / workflow 执法工作流程")
    title: Title = Field(description="标题")
    version: Version = Field(description="版本，如 2025版")
    effective_on: date = Field(description="施行日期")
    legal_basis: Text = Field(description="制定依据")
    penalty_item: PenaltyItem | None = Field(
        default=None, validate_default=True, description="对应处罚事项（自由裁量基准必填）"
    )
    benchmarks: tuple[Benchmark, ...] = Field(
        default=(),
        validate_default=True,
        max_length=200,
        description="裁量基准（自由裁量基准必填）",
    )
    workflow_steps: tuple[Title, ...] = Field(
        default=(),
        validate_default=True,
        max_length=100,
        description="流程步骤（执法工作流程必填）",
    )
    supersedes_version: Version | None = Field(default=None, description="被替代的版本")
    expires_on: date | None = Field(default=None, description="失效日期，不得早于施行日期")
    attachments: tuple[Attachment, ...] = Field(default=(), max_length=20, description="原文附件")

    @field_validator("penalty_item", "benchmarks")
    @classmethod
    def _benchmark_fields(cls, value: object, info: ValidationInfo) -> object:
        kind = info.data.get("kind")
        if kind is StandardKind.BENCHMARK:
            return required_when(
                value, reason="kind is 'benchmark'", reason_zh="种类为自由裁量基准"
            )
        if kind is StandardKind.WORKFLOW:
            return forbidden_when(
                value, reason="kind is 'workflow'", reason_zh="种类为执法工作流程"
            )
        return value

    @field_validator("workflow_steps")
    @classmethod
    def _workflow_fields(cls, value: object, info: ValidationInfo) -> object:
        kind = info.data.get("kind")
        if kind is StandardKind.WORKFLOW:
            return required_when(value, reason="kind is 'workflow'", reason_zh="种类为执法工作流程")
        if kind is StandardKind.BENCHMARK:
            return forbidden_when(
                value, reason="kind is 'benchmark'", reason_zh="种类为自由裁量基准"
            )
        return value

    @field_validator("expires_on")
    @classmethod
    def _expiry_after_start(cls, value: date | None, info: ValidationInfo) -> date | None:
        return not_before(value, info.data.get("effective_on"), other="effective_on")

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"{KIND_ZH[self.kind]}：{self.title}（{self.version}）"
