"""The receipts a recipient emits for every attempt: acknowledged, failed or dead-lettered.

A recipient sends the receipts of one fetched batch of deliveries as one message (``ReceiptBatch``):
one write to the receipts stream per batch instead of one per delivery.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field, model_validator

from schemas.common import EventId, Model, OrgId

ReceiptStatus = Literal["acknowledged", "failed", "dead_lettered"]


class Receipt(Model):
    """回执：一个接收单位对一次投递的处理结果（第十六条时效统计的依据）。"""

    event_source: OrgId = Field(description="事件发布单位")
    event_id: EventId = Field(description="事件标识")
    recipient: OrgId = Field(description="接收单位")
    status: ReceiptStatus = Field(
        description=(
            "acknowledged 已签收 / failed 本次处理失败（将重投） / dead_lettered 处理失败转入死信"
        )
    )
    delivery_seq: int = Field(ge=1, description="投递流中的序号")
    deliveries: int = Field(ge=1, description="第几次投递时完成")
    received_at: AwareDatetime = Field(description="接收方首次收到本次投递的时间")
    finished_at: AwareDatetime = Field(description="签收或转入死信的时间")
    reason: str | None = Field(default=None, max_length=2000, description="处理失败的原因")
    agent: str = Field(max_length=100, description="出具回执的程序，如 subscribers/0.1.0")

    @property
    def event_key(self) -> str:
        """The event's identity, as ``EnvelopeBase.key``."""
        return f"{self.event_source}/{self.event_id}"


class ReceiptBatch(Model):
    """回执批：一个接收单位对一批投递的回执，为回执流中的一条消息。"""

    recipient: OrgId = Field(description="接收单位")
    receipts: tuple[Receipt, ...] = Field(min_length=1, max_length=1000, description="回执")

    @model_validator(mode="after")
    def _all_from_the_recipient(self) -> ReceiptBatch:
        if any(r.recipient != self.recipient for r in self.receipts):
            raise ValueError("every receipt of a batch belongs to its recipient")
        return self
