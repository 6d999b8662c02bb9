"""Working days (工作日) of the Chinese official calendar, for the case deadlines of Art. 7 and 20.

Weekends are off except make-up working days (调休), statutory holidays are off, and the schedule
changes every year by State Council notice. The maintained ``chinese-calendar`` library knows the
years it was released for; a county adds a later year (or corrects one) in an override file
(``HUB_WORKDAY_OVERRIDES``)::

    [years.2027]
    source = "国务院办公厅关于2027年部分节假日安排的通知（国办发明电〔2026〕…号）"
    holidays = ["2027-01-01", "2027-02-06", …]     # days off that would be working days
    workdays = ["2027-02-14", …]                   # weekend days that are working days

A date in a year that neither knows is an error naming the file, never a guess.

"Within N working days of" a day counts from the next working day after it: received on
Tue 2025-09-30, working day 1 is Thu 2025-10-09 and working day 3 is Sat 2025-10-11, a make-up day.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path

import chinese_calendar
from pydantic import BaseModel, ConfigDict, ValidationError

from hub.errors import ConfigError, HubError

LIBRARY = f"chinese-calendar {version('chinese-calendar')}"
MAX_SPAN_DAYS = 4000  # a deadline further than ten years away is a mistake, not a date


class UnknownYear(HubError):
    """Neither the library nor the override file knows this year's working days."""

    def __init__(self, year: int, overrides: Path | None) -> None:
        self.year, self.overrides = year, overrides
        where = f"覆盖文件 {overrides}" if overrides else "覆盖文件（HUB_WORKDAY_OVERRIDES）"
        super().__init__(
            f"不知道 {year} 年的工作日安排：{LIBRARY} 不含该年，请按国务院办公厅的节假日安排通知"
            f"在{where}中加入 [years.{year}] / no working-day schedule for {year}"
        )


class _Year(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    holidays: tuple[date, ...] = ()
    workdays: tuple[date, ...] = ()


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    years: dict[int, _Year]


@dataclass(frozen=True)
class Override:
    """One year's schedule from the override file."""

    source: str
    holidays: frozenset[date]
    workdays: frozenset[date]

    def is_workday(self, day: date) -> bool:
        """A working day by this year's schedule."""
        return day in self.workdays or (day.weekday() < 5 and day not in self.holidays)


@dataclass(frozen=True)
class WorkdayCalendar:
    """Working days from ``chinese-calendar`` and the county's override file (which wins)."""

    overrides: dict[int, Override] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | None) -> WorkdayCalendar:
        """The calendar with the override file at ``path`` (``None``: the library alone).

        Raises:
            ConfigError: the file is unreadable or malformed (naming the field).
        """
        if path is None:
            return cls()
        try:
            parsed = _File.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError("HUB_WORKDAY_OVERRIDES", f"{path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("HUB_WORKDAY_OVERRIDES", f"{path}: not valid TOML: {exc}") from exc
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError("HUB_WORKDAY_OVERRIDES", f"{path}: {where}: {first['msg']}") from exc
        years = {}
        for year, entry in parsed.years.items():
            stray = [d for d in (*entry.holidays, *entry.workdays) if d.year != year]
            if stray:
                raise ConfigError(
                    "HUB_WORKDAY_OVERRIDES", f"{path}: years.{year}: {stray[0]} is not in {year}"
                )
            years[year] = Override(
                entry.source, frozenset(entry.holidays), frozenset(entry.workdays)
            )
        return cls(years, path)

    def source(self, year: int) -> str:
        """Where ``year``'s schedule comes from.

        Raises:
            UnknownYear: nobody knows it.
        """
        if year in self.overrides:
            return f"覆盖文件 {self.path}：{self.overrides[year].source}"
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
        except NotImplementedError:
            raise UnknownYear(year, self.path) from None
        return LIBRARY

    def is_workday(self, day: date) -> bool:
        """Whether ``day`` is a working day.

        Raises:
            UnknownYear: the year's schedule is unknown.
        """
        if day.year in self.overrides:
            return self.overrides[day.year].is_workday(day)
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            raise UnknownYear(day.year, self.path) from None

    def add(self, day: date, count: int) -> date:
        """The ``count``-th working day after ``day`` (``day`` itself never counts)."""
        found, current = 0, day
        while found < count:
            current += timedelta(days=1)
            if (current - day).days > MAX_SPAN_DAYS:
                raise ValueError(f"{count} working days after {day} is beyond {MAX_SPAN_DAYS} days")
            if self.is_workday(current):
                found += 1
        return current

    def count(self, after: date, upto: date) -> int:
        """Working days in (``after``, ``upto``]: 0 when ``upto`` is not after ``after``."""
        found, current = 0, after
        while current < upto:
            current += timedelta(days=1)
            found += self.is_workday(current)
        return found
