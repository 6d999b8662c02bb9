"""Reports as a table for people, CSV for spreadsheets, JSON for programs; Chinese labels."""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict
from enum import StrEnum
from typing import Any, Concatenate, ParamSpec, TypeVar

from rich.console import Console
from rich.table import Table

from hub.cases.scores import CaseRow
from hub.ledger import DeliveryState
from hub.reports import DailyReport, Item, Line, OrgReport, Tally
from hub.timeliness import CAUSE_ZH, VERDICT_ZH
from schemas.envelope import CATEGORIES
from schemas.personal import mask_text, mask_values
from schemas.shanghai import local_text

P = ParamSpec("P")
R = TypeVar("R")


class Format(StrEnum):
    """Output formats."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


TALLY_COLUMNS = (
    ("events", "事件数"),
    ("deliveries", "应送达"),
    ("acknowledged", "已签收"),
    ("on_time", "按时"),
    ("late", "迟延"),
    ("pending", "未签收"),
    ("dead_lettered", "死信"),
    ("on_time_rate", "按时率"),
    ("lag_p50_s", "送达时延P50"),
    ("lag_p95_s", "送达时延P95"),
    ("lag_max_s", "送达时延最大"),
    ("late_publisher", "其中发布迟延"),
    ("late_delivery", "其中送达迟延"),
)
ITEM_COLUMNS = (
    ("role", "角色"),
    ("event_key", "事件"),
    ("category", "类别"),
    ("counterpart", "对方单位"),
    ("formed_at", "形成时间"),
    ("published_at", "发布时间"),
    ("acknowledged_at", "签收时间"),
    ("verdict", "判定"),
    ("cause", "迟延原因"),
    ("state", "状态"),
)
CSV_UNITS = {"lag_p50_s": "秒", "lag_p95_s": "秒", "lag_max_s": "秒", "on_time_rate": "%"}
"""Units of the CSV columns whose table cells carry their own (``3分20秒``, ``98.5%``)."""
BOM = "\ufeff"  # Excel and WPS read a CSV file as UTF-8 only when it starts with this mark
ROLE_ZH = {"publisher": "作为发布单位", "recipient": "作为接收单位"}


def category_zh(category: str | None) -> str:
    """The short Chinese name of a category; ``None`` is the organisation's total."""
    if category is None:
        return "合计"
    return CATEGORIES[category].short if category in CATEGORIES else category


def duration_zh(seconds: float | None) -> str:
    """``3分20秒``-style durations; ``—`` when there is none."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f}毫秒"
    if seconds < 60:
        return f"{seconds:.1f}秒"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}小时{minutes}分" if hours else f"{minutes}分{secs}秒"


def rate_zh(rate: float | None) -> str:
    """A percentage with one decimal; ``—`` for an empty group."""
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _tally_cells(t: Tally) -> list[str]:
    return [
        str(t.events),
        str(t.deliveries),
        str(t.acknowledged),
        str(t.on_time),
        str(t.late),
        str(t.pending),
        str(t.dead_lettered),
        rate_zh(t.on_time_rate),
        duration_zh(t.lag_p50_s),
        duration_zh(t.lag_p95_s),
        duration_zh(t.lag_max_s),
        str(t.late_publisher),
        str(t.late_delivery),
    ]


def _tally_dict(t: Tally) -> dict[str, Any]:
    return asdict(t) | {"on_time_rate": t.on_time_rate}


def _line_dict(line: Line) -> dict[str, Any]:
    return {"org": line.org, "org_name": line.org_name, "category": line.category} | _tally_dict(
        line.tally
    )


def _item_cells(item: Item) -> list[str]:
    return [
        ROLE_ZH[item.role],
        item.event_key,
        category_zh(item.category),
        item.counterpart,
        local_text(item.formed_at),
        local_text(item.published_at),
        local_text(item.acknowledged_at),
        VERDICT_ZH[item.verdict],
        CAUSE_ZH[item.cause] if item.cause else "—",
        DeliveryState(item.state).zh,
    ]


def _item_dict(item: Item) -> dict[str, Any]:
    return {
        "role": item.role,
        "event_key": item.event_key,
        "category": item.category,
        "counterpart": item.counterpart,
        "formed_at": item.formed_at.isoformat(),
        "published_at": item.published_at.isoformat(),
        "acknowledged_at": item.acknowledged_at.isoformat() if item.acknowledged_at else None,
        "verdict": item.verdict.value,
        "cause": item.cause,
        "state": item.state,
    }


def _table(title: str, first: str, lines: Iterable[Line]) -> Table:
    table = Table(title=title, title_justify="left")
    for header in (first, "类别", *(label for _, label in TALLY_COLUMNS)):
        table.add_column(header, justify="left" if header in (first, "类别") else "right")
    for line in lines:
        table.add_row(line.org_name, category_zh(line.category), *_tally_cells(line.tally))
    return table


def _print(*renderables: Any) -> str:
    console = Console(width=240, record=True, file=io.StringIO(), force_terminal=False)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def _csv(header: list[str], rows: Iterable[list[str]]) -> str:
    """One table as CSV, with the byte-order mark spreadsheets need to read UTF-8."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _csv_tally_header() -> list[str]:
    return [
        f"{label}（{CSV_UNITS[name]}）" if name in CSV_UNITS else label
        for name, label in TALLY_COLUMNS
    ]


def _csv_cell(name: str, value: float | None) -> str:
    if value is None:
        return ""
    if name == "on_time_rate":
        return f"{value * 100:.1f}"
    return f"{value:.3f}" if name in CSV_UNITS else str(value)


def _csv_tally(t: Tally) -> list[str]:
    values = {name: getattr(t, name) for name, _ in TALLY_COLUMNS} | {
        "on_time_rate": t.on_time_rate
    }
    return [_csv_cell(name, values[name]) for name, _ in TALLY_COLUMNS]


def _masked(
    render: Callable[Concatenate[R, Format, P], str],
) -> Callable[Concatenate[R, Format, P], str]:
    """A report as people read it: every resident ID and mobile number in it masked.

    Event keys are the publishers' own ids, and may carry one; JSON keeps its numbers numbers.
    """

    @functools.wraps(render)
    def masked(report: R, fmt: Format, /, *args: P.args, **kwargs: P.kwargs) -> str:
        text = render(report, fmt, *args, **kwargs)
        if fmt is Format.JSON:
            return json.dumps(mask_values(json.loads(text)), ensure_ascii=False, indent=2)
        return mask_text(text)

    return masked


@_masked
def render_daily(report: DailyReport, fmt: Format) -> str:
    """The daily report in ``fmt``."""
    if fmt is Format.JSON:
        return json.dumps(
            {
                "day": report.day.isoformat(),
                "generated_at": report.generated_at.isoformat(),
                "county": report.county,
                "total": _tally_dict(report.total),
                "by_recipient": [_line_dict(line) for line in report.by_recipient],
                "by_publisher": [_line_dict(line) for line in report.by_publisher],
            },
            ensure_ascii=False,
            indent=2,
        )
    if fmt is Format.CSV:
        header = ["视角", "单位", "单位标识", "类别", *_csv_tally_header()]
        rows = [
            [view, line.org_name, line.org, category_zh(line.category), *_csv_tally(line.tally)]
            for view, section in (("接收", report.by_recipient), ("发布", report.by_publisher))
            for line in section
        ]
        return _csv(header, rows)
    title = (
        f"第十六条当日共享情况日报 · {report.day.isoformat()}"
        f"（生成于 {local_text(report.generated_at)}）"
    )
    summary = Table(title=title, title_justify="left")
    for _, label in TALLY_COLUMNS:
        summary.add_column(label, justify="right")
    summary.add_row(*_tally_cells(report.total))
    return _print(
        summary,
        _table("按接收单位", "接收单位", report.by_recipient),
        _table("按发布单位", "发布单位", report.by_publisher),
    )


@_masked
def render_org(
    report: OrgReport, fmt: Format, *, items_only: bool = False, cases_only: bool = False
) -> str:
    """One organisation's scorecard in ``fmt`` (CSV: the scorecard, the items or the cases)."""
    if fmt is Format.JSON:
        return json.dumps(
            {
                "org": report.org,
                "org_name": report.org_name,
                "from": report.day_from.isoformat(),
                "to": report.day_to.isoformat(),
                "generated_at": report.generated_at.isoformat(),
                "events_published": report.events_published,
                "published_same_day": report.published_same_day,
                "same_day_publication_rate": report.same_day_publication_rate,
                "as_publisher": [_line_dict(line) for line in report.as_publisher],
                "as_recipient": [_line_dict(line) for line in report.as_recipient],
                "items": [_item_dict(item) for item in report.items],
                "cases": [asdict(row) for row in report.cases],
            },
            ensure_ascii=False,
            indent=2,
        )
    if fmt is Format.CSV and cases_only:
        return _csv([label for _, label in CASE_COLUMNS], (_case_cells(r) for r in report.cases))
    if fmt is Format.CSV and items_only:
        return _csv([label for _, label in ITEM_COLUMNS], (_item_cells(i) for i in report.items))
    if fmt is Format.CSV:
        header = ["视角", "类别", *_csv_tally_header()]
        rows = [
            [view, category_zh(line.category), *_csv_tally(line.tally)]
            for view, section in (("发布", report.as_publisher), ("接收", report.as_recipient))
            for line in section
        ]
        return _csv(header, rows)
    period = f"{report.day_from.isoformat()} 至 {report.day_to.isoformat()}"
    heading = (
        f"第二十三条信息共享考核 · {report.org_name}（{report.org}）· {period}\n"
        f"发布事件 {report.events_published} 件，当日发布 {report.published_same_day} 件"
        f"（{rate_zh(report.same_day_publication_rate)}）"
    )
    items = Table(title="迟延及未签收事项", title_justify="left")
    for _, label in ITEM_COLUMNS:
        items.add_column(label)
    for item in report.items:
        items.add_row(*_item_cells(item))
    cases = Table(
        title="案件办理（移交、协助、隐患通知、投诉举报：本单位应办步骤）", title_justify="left"
    )
    for name, label in CASE_COLUMNS:
        cases.add_column(label, justify="left" if name in ("role_zh", "kind_zh") else "right")
    for row in report.cases:
        cases.add_row(*_case_cells(row))
    return _print(
        heading,
        _table("作为发布单位（送达各接收单位的情况）", "发布单位", report.as_publisher),
        _table("作为接收单位", "接收单位", report.as_recipient),
        items,
        cases,
    )


CASE_COLUMNS = (
    ("role_zh", "角色"),
    ("kind_zh", "案件类型"),
    ("cases", "案件数"),
    ("on_time", "按期完成"),
    ("late", "逾期完成"),
    ("overdue", "逾期未完成"),
    ("pending", "未到期"),
    ("not_ours", "答复不属管辖"),
    ("escalated", "报县政府或争议协调"),
)


def _case_cells(row: CaseRow) -> list[str]:
    return [str(getattr(row, name)) for name, _ in CASE_COLUMNS]
