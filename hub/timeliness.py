"""Article 16's rule: shared on the Asia/Shanghai calendar day the information was formed.

A (event, recipient) pair is on time when the recipient acknowledged it before the end of the
Shanghai day of ``formed_at``. A late pair has one cause: the publisher, when it published after
that day had ended; otherwise the delivery (the recipient or the hub). A pair still unacknowledged
when its day has ended counts as late, and stays tracked until it is acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from schemas.shanghai import SHANGHAI, end_of_day, shanghai_day

__all__ = [
    "CAUSE_ZH",
    "SHANGHAI",
    "VERDICT_ZH",
    "Cause",
    "Clock",
    "Judgement",
    "Verdict",
    "end_of_day",
    "judge",
    "shanghai_day",
]

Clock = Callable[[], datetime]  # "now"; the hub uses UTC, tests inject their own

Cause = Literal["publisher", "delivery"]
CAUSE_ZH: dict[Cause, str] = {"publisher": "发布迟延", "delivery": "送达迟延"}


class Verdict(StrEnum):
    """Where a pair stands against the same-day rule."""

    ON_TIME = "on_time"
    LATE = "late"  # acknowledged after its day
    OVERDUE = "overdue"  # not acknowledged, and its day is over: counted late
    OPEN = "open"  # not acknowledged, its day not over yet


VERDICT_ZH = {
    Verdict.ON_TIME: "按时",
    Verdict.LATE: "迟延签收",
    Verdict.OVERDUE: "逾期未签收",
    Verdict.OPEN: "当日待签收",
}


@dataclass(frozen=True)
class Judgement:
    """The verdict on one pair, with its cause when late."""

    verdict: Verdict
    cause: Cause | None

    @property
    def counts_late(self) -> bool:
        """Late for the assessment: acknowledged late, or overdue."""
        return self.verdict in (Verdict.LATE, Verdict.OVERDUE)


def judge(
    *, formed_at: datetime, published_at: datetime, acknowledged_at: datetime | None, now: datetime
) -> Judgement:
    """Judge one (event, recipient) pair at ``now``."""
    day_ends = end_of_day(shanghai_day(formed_at))
    if acknowledged_at is not None:
        verdict = Verdict.ON_TIME if acknowledged_at < day_ends else Verdict.LATE
    else:
        verdict = Verdict.OVERDUE if now >= day_ends else Verdict.OPEN
    if verdict in (Verdict.ON_TIME, Verdict.OPEN):
        return Judgement(verdict, None)
    return Judgement(verdict, "publisher" if published_at >= day_ends else "delivery")
