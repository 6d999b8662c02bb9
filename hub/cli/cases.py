"""``hub cases``: the case workflows from the ledger: one organisation's cases, one case in full."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from hub.cases.views import case_view
from hub.cli.common import fail, known_org, registry_of, run, settings_of
from hub.cli.root import app
from hub.ledger import Ledger

cases_app = typer.Typer(help="案件移交、协助、隐患通知 (case workflows)", no_args_is_help=True)
app.add_typer(cases_app, name="cases")

JsonOption = Annotated[bool, typer.Option("--json", help="输出 JSON")]


def _overdue(view: dict[str, Any]) -> bool:
    return any(d["verdict"] == "overdue" for d in view["deadlines"])


def _owed(view: dict[str, Any]) -> str:
    """What is still owed, by whom, by when: the case's open deadlines in one line."""
    shown = [
        f"{d['party_name']}{d['step_zh']}，期限 {d['due_day'] or d['due_at']}（{d['verdict_zh']}）"
        for d in view["deadlines"]
        if d["verdict"] in ("open", "overdue", "paused")
    ]
    if not shown and view["escalated_to"] and not view["closed"]:
        shown.append(f"待{'、'.join(view['escalated_to'])}决定")
    return "；".join(shown) or "—"


@cases_app.command("list")
def cases_list(
    ctx: typer.Context,
    org: Annotated[str, typer.Option("--org", help="单位 id")],
    overdue: Annotated[
        bool, typer.Option("--overdue", help="只列出有逾期未完成步骤的案件")
    ] = False,
    everything: Annotated[bool, typer.Option("--all", help="包括已办结的案件")] = False,
    as_json: JsonOption = False,
) -> None:
    """The organisation's open cases (newest first) with what is owed and by when."""
    settings = settings_of(ctx)
    registry = registry_of(settings)
    known_org(registry, org)
    now = datetime.now(UTC)

    async def work(stop: asyncio.Event) -> list[dict[str, Any]]:
        async with Ledger.open(settings.ledger_database) as ledger:
            states = await ledger.case_states(org=org, open_only=not everything)
        views = [case_view(s, registry, now) for s in states]
        return [v for v in views if _overdue(v)] if overdue else views

    views = run(work)
    if as_json:
        typer.echo(json.dumps(views, ensure_ascii=False, indent=2))
        return
    if not views:
        typer.echo(f"{registry.name(org)}：没有{'逾期的' if overdue else '未办结的'}案件")
        return
    typer.echo(f"{registry.name(org)}：{len(views)} 件{'逾期' if overdue else ''}案件")
    for v in views:
        typer.echo(
            f"{v['case']}  {v['kind_zh']}  {v['initiator_name']} → {v['receiver_name']}  "
            f"{v['status_zh']}  {_owed(v)}"
        )


@cases_app.command("show")
def cases_show(
    ctx: typer.Context,
    case: Annotated[
        str, typer.Argument(help="案件：发起单位/案件编号，如 qingxian-liuhe/LH-2026-031")
    ],
    as_json: JsonOption = False,
) -> None:
    """One case: its parties, status, deadlines and every step."""
    settings = settings_of(ctx)
    registry = registry_of(settings)
    now = datetime.now(UTC)

    async def work(stop: asyncio.Event) -> dict[str, Any] | None:
        async with Ledger.open(settings.ledger_database) as ledger:
            state = await ledger.case_state(case)
        return case_view(state, registry, now) if state else None

    view = run(work)
    if view is None:
        fail(f"没有案件 {case}（格式：发起单位/案件编号；hub cases list --org 单位 列出案件）")
    if as_json:
        typer.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    typer.echo(f"案件 {view['case']}（{view['kind_zh']}）：{view['status_zh']}")
    typer.echo(f"  发起：{view['initiator_name']}  接收：{view['receiver_name']}")
    if view["escalated_to"]:
        typer.echo(f"  报送：{'、'.join(view['escalated_to'])}")
    if view["assigned_to"]:
        typer.echo(f"  决定管辖：{registry.name(view['assigned_to'])}")
    typer.echo("  期限：")
    for d in view["deadlines"]:
        met = f"，{d['met_at']} 完成" if d["met_at"] else ""
        typer.echo(
            f"    {d['party_name']} {d['step_zh']}：{d['due_day'] or d['due_at']}"
            f"{met}（{d['verdict_zh']}）"
        )
    typer.echo("  步骤：")
    for s in view["steps"]:
        typer.echo(f"    {s['at']}  {s['label']}  {s['source_name']}")
