"""What the hub answers a publisher: accepted (with the stored sequence) or rejected.

A request carrying several events (a JSON array, as a CloudEvents batch) is answered with
``Answers``: one reply per event, in the order sent.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from schemas.common import Model, OrgId


class FieldError(Model):
    """一条未通过的规则：字段（点分路径，$ 表示整条消息）、规则代码及中英文说明。"""

    field: str = Field(description="出错字段（点分路径，$ 表示整条消息）")
    rule: str = Field(description="违反的规则代码")
    message_zh: str = Field(description="中文说明")
    message_en: str = Field(description="English explanation")

    def __str__(self) -> str:
        return f"{self.field}: {self.message_zh}（{self.message_en}）"


class Accepted(Model):
    """已接收：事件已持久存储，将送达所列全部接收单位。"""

    status: Literal["accepted"] = "accepted"
    source: OrgId
    id: str
    seq: int = Field(description="事件流中的序号")
    duplicate: bool = Field(description="该事件此前已受理（同一 source 与 id），本次未重复存储")
    recipients: tuple[OrgId, ...] = Field(description="接收单位")
    warnings: tuple[FieldError, ...] = Field(default=(), description="需人工复核的提示")


class Rejected(Model):
    """已拒收：事件未存储，原消息连同全部原因存入隔离区。"""

    status: Literal["rejected"] = "rejected"
    id: str | None = Field(default=None, description="事件标识（能读出时）")
    errors: tuple[FieldError, ...] = Field(min_length=1, description="全部错误")
    quarantine_seq: int = Field(description="隔离区中的序号（被拒收的消息已存入隔离区）")


class Unavailable(Model):
    """暂不可用：枢纽暂时无法存储，未存储任何内容，请原样重发。"""

    status: Literal["unavailable"] = "unavailable"
    reason: str
    retry_after_s: float | None = Field(
        default=None, description="过多久再发（秒）：超出本单位的发送速率时给出"
    )


IngestReply = Annotated[Accepted | Rejected | Unavailable, Field(discriminator="status")]
REPLY_ADAPTER: TypeAdapter[IngestReply] = TypeAdapter(IngestReply)


class Answers(Model):
    """批量发布的答复：逐条答复，顺序与所发事件相同。"""

    status: Literal["answers"] = "answers"
    results: tuple[IngestReply, ...] = Field(description="每条事件的答复（受理、拒收或暂不可用）")


BatchReply = Annotated[Accepted | Rejected | Unavailable | Answers, Field(discriminator="status")]
BATCH_REPLY_ADAPTER: TypeAdapter[BatchReply] = TypeAdapter(BatchReply)
"""The answer to a batch: ``Answers``, or one reply for the whole request (too many events)."""
