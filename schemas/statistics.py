"""Category 3 (第十五条第三项): statistics for comprehensive enforcement, and data requests."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from schemas.common import Model, Text, Title, forbidden_when, not_before, required_when

TYPE = "statistics.v1"
LABEL = "综合执法统计分析数据"


class StatisticsKind(StrEnum):
    """统计信息种类。"""

    DATASET = "dataset"
    DATA_REQUEST = "data_request"


KIND_ZH = {StatisticsKind.DATASET: "统计数据", StatisticsKind.DATA_REQUEST: "数据需求"}

Unit = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]


class Indicator(Model):
    """一项统计指标及其数值。"""

    name: Title = Field(description="指标名称，如 行政检查次数")
    value: Decimal = Field(
        ge=0, max_digits=18, decimal_places=4, description="指标值（非负，最多 4 位小数）"
    )
    unit: Unit = Field(description="计量单位，如 次、件、万元")


class Statistics(Model):
    """综合执法相关的统计分析数据（含部门需要乡镇提供的数据）。"""

    kind: StatisticsKind = Field(description="种类：dataset 统计数据 / data_request 数据需求")
    title: Title = Field(description="标题")
    period_start: date = Field(description="统计期间起")
    period_end: date = Field(description="统计期间止，不得早于统计期间起")
    indicators: tuple[Indicator, ...] = Field(
        default=(), validate_default=True, max_length=1000, description="指标（统计数据必填）"
    )
    requested_items: tuple[Title, ...] = Field(
        default=(),
        validate_default=True,
        max_length=200,
        description="需要提供的数据项（数据需求必填）",
    )
    due_on: date | None = Field(
        default=None, validate_default=True, description="报送期限（数据需求必填）"
    )
    note: Text | None = Field(default=None, description="说明")

    @field_validator("period_end")
    @classmethod
    def _end_after_start(cls, value: date, info: ValidationInfo) -> date | None:
        return not_before(value, info.data.get("period_start"), other="period_start")

    @field_validator("indicators")
    @classmethod
    def _indicators_for_datasets(
        cls, value: tuple[Indicator, ...], info: ValidationInfo
    ) -> tuple[Indicator, ...]:
        if info.data.get("kind") is StatisticsKind.DATASET:
            return required_when(value, reason="kind is 'dataset'", reason_zh="种类为统计数据")
        return value

    @field_validator("requested_items", "due_on")
    @classmethod
    def _request_fields(cls, value: object, info: ValidationInfo) -> object:
        kind = info.data.get("kind")
        if kind is StatisticsKind.DATA_REQUEST:
            return required_when(value, reason="kind is 'data_request'", reason_zh="种类为数据需求")
        if kind is StatisticsKind.DATASET:
            return forbidden_when(value, reason="kind is 'dataset'", reason_zh="种类为统计数据")
        return value

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        span = f"{self.period_start.isoformat()}至{self.period_end.isoformat()}"
        return f"{KIND_ZH[self.kind]}：{self.title}（{span}）"
