"""``hub calendar``: working days, as the case deadlines count them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from hub.cli.common import Exit, settings_of
from hub.cli.root import app
from hub.workdays import UnknownYear, WorkdayCalendar

calendar_app = typer.Typer(help="工作日 (working days)", no_args_is_help=True)
app.add_typer(calendar_app, name="calendar")


@calendar_app.command("add-workdays")
def add_workdays(
    ctx: typer.Context,
    day: Annotated[datetime, typer.Argument(formats=["%Y-%m-%d"], help="起算日（不计入）")],
    count: Annotated[int, typer.Argument(help="工作日数", min=0)],
) -> None:
    """The COUNT-th working day after DAY (day 1 is the next working day after DAY)."""
    calendar = WorkdayCalendar.load(settings_of(ctx).workday_overrides)
    typer.echo(calendar.add(day.date(), count).isoformat())


@calendar_app.command("check")
def check(
    ctx: typer.Context, year: Annotated[int, typer.Argument(help="年份", min=1900, max=2200)]
) -> None:
    """Whether a year's working days are known, and from where; exit 1 when unknown."""
    calendar = WorkdayCalendar.load(settings_of(ctx).workday_overrides)
    try:
        typer.echo(f"{year} 年的工作日安排已知：{calendar.source(year)}")
    except UnknownYear as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(Exit.REJECTED) from exc
