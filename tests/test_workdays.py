"""Working days against the State Council's published holiday schedules (expected dates by hand).

2025 (国办发明电〔2024〕12号): 春节 1月28日–2月4日放假，1月26日（周日）、2月8日（周六）上班；
国庆中秋 10月1日–8日放假，9月28日（周日）、10月11日（周六）上班.
2026 (国办发明电〔2025〕7号): 春节 2月15日–23日放假，2月14日（周六）、2月28日（周六）上班；
中秋 9月25日放假；国庆 10月1日–7日放假，9月20日（周日）、10月10日（周六）上班.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from hub.config import HubSettings
from hub.errors import ConfigError
from hub.workdays import UnknownYear, WorkdayCalendar
from tests.helpers import run_hub

D = date.fromisoformat


@pytest.mark.parametrize(
    ("received", "count", "due", "why"),
    [
        (
            "2025-09-30",
            3,
            "2025-10-11",
            "National Day; the 3rd working day is the make-up Saturday",
        ),
        ("2025-09-26", 2, "2025-09-29", "the make-up Sunday 9-28 is working day 1"),
        ("2025-09-26", 7, "2025-10-13", "across National Day, 10-11 counts"),
        ("2025-01-27", 3, "2025-02-07", "Spring Festival 1-28 to 2-4 off"),
        ("2025-01-27", 5, "2025-02-10", "the make-up Saturday 2-8 is working day 4"),
        ("2025-01-24", 3, "2025-02-05", "the make-up Sunday 1-26 is working day 1"),
        ("2026-02-13", 1, "2026-02-14", "the make-up Saturday 2-14"),
        ("2026-02-13", 3, "2026-02-25", "Spring Festival 2-15 to 2-23 off"),
        ("2026-02-13", 7, "2026-03-02", "the make-up Saturday 2-28 is working day 6"),
        ("2026-09-30", 3, "2026-10-10", "National Day 10-1 to 10-7; make-up Saturday 10-10"),
        ("2026-09-30", 5, "2026-10-13", "then Monday and Tuesday"),
        ("2026-09-18", 1, "2026-09-20", "the make-up Sunday 9-20"),
        ("2026-09-18", 7, "2026-09-29", "Mid-Autumn 9-25 off"),
    ],
)
def test_deadlines_follow_the_state_councils_schedules(
    received: str, count: int, due: str, why: str
) -> None:
    assert WorkdayCalendar.load(None).add(D(received), count) == D(due), why


def test_counting_working_days_skips_holidays_and_counts_make_up_days() -> None:
    calendar = WorkdayCalendar.load(None)
    assert calendar.count(D("2025-09-30"), D("2025-10-11")) == 3
    assert calendar.count(D("2026-02-13"), D("2026-02-28")) == 6
    assert calendar.count(D("2026-02-13"), D("2026-02-13")) == 0


def test_a_year_nobody_knows_is_an_error_naming_the_override_file(tmp_path: Path) -> None:
    overrides = tmp_path / "workdays.toml"
    overrides.write_text('[years.2028]\nsource = "x"\n', encoding="utf-8")
    with pytest.raises(UnknownYear) as unknown:
        WorkdayCalendar.load(overrides).add(D("2026-12-31"), 3)
    assert unknown.value.year == 2027 and str(overrides) in str(unknown.value)


def test_the_same_date_works_once_the_override_file_has_the_year(tmp_path: Path) -> None:
    overrides = tmp_path / "workdays.toml"
    overrides.write_text(
        '[years.2027]\nsource = "本县据国务院办公厅通知录入"\n'
        'holidays = ["2027-01-01"]\nworkdays = ["2027-01-09"]\n',
        encoding="utf-8",
    )
    calendar = WorkdayCalendar.load(overrides)
    assert calendar.add(D("2026-12-31"), 3) == D("2027-01-06")  # 1-1 off, then Mon–Wed
    assert calendar.add(D("2027-01-07"), 2) == D("2027-01-09")  # a make-up Saturday
    assert "本县据国务院办公厅通知录入" in calendar.source(2027)


def test_a_malformed_override_file_names_the_field(tmp_path: Path) -> None:
    overrides = tmp_path / "workdays.toml"
    overrides.write_text('[years.2027]\nsource = "x"\nholidays = ["2027-02-30"]\n')
    with pytest.raises(ConfigError, match=r"years\.2027\.holidays"):
        WorkdayCalendar.load(overrides)


async def test_the_calendar_commands_answer_with_the_date_and_the_source(
    settings: HubSettings, tmp_path: Path
) -> None:
    code, out, _ = await run_hub(settings, "calendar", "add-workdays", "2026-09-30", "3")
    assert code == 0 and out.strip() == "2026-10-10"
    code, out, _ = await run_hub(settings, "calendar", "check", "2026")
    assert code == 0 and "chinese-calendar" in out
    code, _, err = await run_hub(settings, "calendar", "check", "2027")
    assert code == 1 and "HUB_WORKDAY_OVERRIDES" in err
    code, _, err = await run_hub(settings, "calendar", "add-workdays", "2026-12-31", "3")
    assert code == 2 and "2027" in err and "Traceback" not in err
