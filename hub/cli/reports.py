"""``hub report``: the Article 16 daily report and the Article 23 scorecard of one organisation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from hub.cli.common import (
    fail,
    known_county,
    known_org,
    period,
    registry_of,
    run,
    settings_of,
)
from hub.cli.root import app
from hub.ledger import Ledger
from hub.report_output import Format, render_daily, render_org
from hub.reports import daily_report, org_report

report_app = typer.Typer(
    help="报表 (Art. 16 daily report, Art. 23 scorecard)", no_args_is_help=True
)
app.add_typer(report_app, name="report")

FormatOption = Annotated[Format, typer.Option("--format", help="输出格式：table、csv 或 json")]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="写入文件（CSV 带 BOM，Excel、WPS 可直接打开）")
]
AtOption = Annotated[
    datetime | None,
    typer.Option("--at", help="按此时刻评判未签收事项（默认当前时间，须带时区）"),
]
DayOption = Annotated[datetime, typer.Option(formats=["%Y-%m-%d"])]


def moment(at: datetime | None) -> datetime:
    """``--at``, or now; a time without an offset is refused."""
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        fail("--at 须带时区，如 2025-10-01T08:00:00+08:00")
    return at


def emit(text: str, out: Path | None) -> None:
    """Print the report, or write it to ``out``."""
    if out is None:
        typer.echo(text)
        return
    out.write_text(text, encoding="utf-8")
    typer.echo(f"已写入 {out}", err=True)


@report_app.command("daily")
def report_daily(
    ctx: typer.Context,
    day: Annotated[datetime, typer.Option("--date", formats=["%Y-%m-%d"], help="日期（上海时间）")],
    county: Annotated[str | None, typer.Option(help="只统计某县（县 id）")] = None,
    fmt: FormatOption = Format.TABLE,
    at: AtOption = None,
    out: OutOption = None,
) -> None:
    """Art. 16: per recipient and per publisher, per category, for one day."""
    settings = settings_of(ctx)
    registry = registry_of(settings)
    known_county(registry, county)
    now = moment(at)

    async def work(stop: asyncio.Event) -> str:
        async with Ledger.open(settings.ledger_database) as ledger:
            report = await daily_report(ledger, registry, day.date(), now=now, county=county)
        return render_daily(report, fmt)

    emit(run(work), out)


@report_app.command("org")
def report_org(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(help="单位标识（登记簿中的 id）")],
    day_from: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="起始日期")],
    day_to: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="截止日期")],
    fmt: FormatOption = Format.TABLE,
    items: Annotated[
        bool, typer.Option("--items", help="CSV 输出迟延及未签收事项清单（缺省输出考核汇总）")
    ] = False,
    cases: Annotated[
        bool, typer.Option("--cases", help="CSV 输出案件办理情况（移交、协助、隐患通知、投诉举报）")
    ] = False,
    at: AtOption = None,
    out: OutOption = None,
) -> None:
    """Art. 23: one organisation as publisher and as recipient, its late items, its cases."""
    settings = settings_of(ctx)
    registry = registry_of(settings)
    known_org(registry, org)
    first, last = period(day_from.date(), day_to.date())
    now = moment(at)

    async def work(stop: asyncio.Event) -> str:
        async with Ledger.open(settings.ledger_database) as ledger:
            report = await org_report(ledger, registry, org, first, last, now=now)
        return render_org(report, fmt, items_only=items, cases_only=cases)

    emit(run(work), out)
