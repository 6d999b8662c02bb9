"""What a recipient reads: bundles of the events shared with it, in publication order.

The hub writes, per recipient, one message for all the events of a fan-out batch addressed to it
(so a busy county costs one stored message per recipient per batch, not one per event). Each item
is a complete event with what the hub adds: its identity, when it was accepted, and whether the
complainant's personal data was removed from this recipient's copy.
"""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from schemas.common import Model, OrgId
from schemas.envelope import Event


class BundledEvent(Model):
    """投递包中的一个事件。"""

    key: str = Field(description="事件在枢纽中的标识（发布单位/事件标识）")
    published_at: AwareDatetime = Field(description="枢纽受理时间")
    redacted: bool = Field(description="本副本已去除投诉人个人信息")
    event: Event


class DeliveryBundle(Model):
    """投递包：发给一个接收单位的一批事件，为投递流中的一条消息。"""

    recipient: OrgId = Field(description="接收单位")
    items: tuple[BundledEvent, ...] = Field(min_length=1, description="按发布顺序排列的事件")
