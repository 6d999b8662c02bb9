"""Notices the hub itself sends about a case: a deadline passed with its step still missing."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field, StringConstraints

from schemas.case_common import CaseRef
from schemas.common import Model, OrgId, Title

HUB_SOURCE = "zhifa-hub"  # the ``source`` of notices the hub writes; never an organisation's id
HUB_SOURCE_ZH = "执法协作信息共享枢纽"


class CaseOverdue(Model):
    """逾期提醒：案件的某项期限已过而相应步骤仍未完成（枢纽发出，送达双方）。"""

    case: CaseRef
    deadline: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")] = Field(
        description="期限（answer、reply、officers 等）"
    )
    due_at: AwareDatetime = Field(description="期限（截止时刻）")
    owed_by: OrgId = Field(description="应完成该步骤的单位")
    step_zh: Title = Field(description="应完成的步骤")

    def summary_zh(self) -> str:
        """One line for dashboards and logs."""
        return f"逾期提醒 {self.case}：{self.step_zh}（{self.owed_by}）"
