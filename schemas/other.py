"""Category 7 (第十五条第七项): other enforcement information to be shared."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from schemas.common import Attachment, Model, Text, Title

TYPE = "other.v1"
LABEL = "其他需要共享的执法信息"

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]


class Other(Model):
    """其他需要共享的执法信息。"""

    title: Title = Field(description="标题")
    content: Text = Field(description="正文")
    tags: tuple[Tag, ...] = Field(default=(), max_length=10, description="标签")
    attachments: tuple[Attachment, ...] = Field(default=(), max_length=20, description="附件")

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return self.title
