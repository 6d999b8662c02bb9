"""Watching deliveries: ``hub lag`` (who is behind), ``hub dashboard`` (one organisation's page)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import partial
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub import log
from hub.cli.common import (
    OrgOption,
    known_category,
    known_county,
    known_org,
    nats_session,
    reach,
    registry_of,
    run,
    settings_of,
)
from hub.cli.root import app
from hub.errors import ConfigError
from hub.ledger import Ledger
from hub.ops import OpsSnapshot, OrgStatus, ops_snapshot
from hub.report_output import duration_zh, rate_zh
from hub.timeliness import Verdict
from schemas.shanghai import local_text
from subscribers.cases import CaseClient
from subscribers.dashboard import dashboard_app
from subscribers.inbox import Inbox
from subscribers.recipient import Recipient
from subscribers.serving import address, listening, serve_asgi

LAG_COLUMNS = (
    "单位",
    "县（市、区）",
    "待签收",
    "最久等待",
    "今日应送达",
    "今日按时率",
    "最近签收",
    "死信",
)
NUMERIC = {"待签收", "今日应送达", "死信"}


@app.command()
def lag(
    ctx: typer.Context,
    county: Annotated[str | None, typer.Option(help="只看某县（县 id）")] = None,
    category: Annotated[str | None, typer.Option(help="只看某类信息")] = None,
    all_orgs: Annotated[bool, typer.Option("--all", help="也列出没有待签收事件的单位")] = False,
) -> None:
    """Print each organisation's backlog (events waiting for its receipt), then today's summary."""
    settings = settings_of(ctx)
    registry = registry_of(settings)
    known_county(registry, county)
    known_category(category)

    async def work(stop: asyncio.Event) -> OpsSnapshot:
        async with Ledger.open(settings.ledger_database) as ledger:
            return await ops_snapshot(
                ledger,
                registry,
                now=datetime.now(UTC),
                at_risk_after=settings.at_risk_after,
                county=county,
                category=category,
            )

    snapshot = run(work)
    shown = [o for o in snapshot.orgs if o.waiting or o.dead_lettered or all_orgs]
    if shown:
        _print_backlog(snapshot, shown)
    else:
        typer.echo(
            f"目前没有待签收的事件（{len(snapshot.orgs)} 个单位都已签收）；加 --all 列出全部单位"
        )
    typer.echo(_summary(snapshot))


def _print_backlog(snapshot: OpsSnapshot, orgs: list[OrgStatus]) -> None:
    table = Table(title=f"各单位待签收情况（截至 {local_text(snapshot.generated_at)}，北京时间）")
    for header in LAG_COLUMNS:
        table.add_column(header, justify="right" if header in NUMERIC else "left")
    rows = sorted(snapshot.orgs, key=lambda o: (-o.waiting, -(o.oldest_waiting_s or 0), o.org))
    for org in rows:
        if org in orgs:
            table.add_row(
                org.name,
                org.county_name,
                str(org.waiting),
                duration_zh(org.oldest_waiting_s),
                str(org.today_deliveries),
                rate_zh(org.today_on_time_rate),
                local_text(org.last_receipt),
                str(org.dead_lettered),
            )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped or captured: no terminal width to fit, do not wrap
    console.print(table)


def _summary(snapshot: OpsSnapshot) -> str:
    today = snapshot.today
    acknowledged = sum(p.row.acknowledged_at is not None for p in today)
    on_time = sum(p.judgement.verdict is Verdict.ON_TIME for p in today)
    waiting = sum(o.waiting for o in snapshot.orgs)
    rate = rate_zh(on_time / len(today) if today else None)
    return (
        f"今日（{snapshot.day.isoformat()}）应送达 {len(today)}，已签收 {acknowledged}，"
        f"当日签收 {on_time}（{rate}）；合计待签收 {waiting} 件；"
        f"当日未签收风险单位 {len(snapshot.at_risk)} 个；"
        f"逾期未完成的案件步骤 {len(snapshot.overdue_cases)} 件"
        + ("（hub cases list --org 单位 --overdue）" if snapshot.overdue_cases else "")
    )


@app.command()
def dashboard(
    ctx: typer.Context,
    org: OrgOption,
    port: Annotated[int | None, typer.Option(help="网页端口（缺省 HUB_DASHBOARD_PORT）")] = None,
    host: Annotated[str, typer.Option(help="网页地址")] = "127.0.0.1",
) -> None:
    """Receive as an organisation (acknowledging) and serve its own dashboard page."""
    settings = settings_of(ctx)
    registry = registry_of(settings)
    known_org(registry, org)
    settings = reach(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log.configure(settings.log_level, file=settings.data_dir / f"dashboard-{org}.log")
    chosen = settings.dashboard_port if port is None else port

    async def work(stop: asyncio.Event) -> None:
        try:
            sock = listening(host, chosen)
        except OSError as exc:
            raise ConfigError(
                "--port", f"cannot listen on {host}:{chosen}: {exc.strerror}"
            ) from exc
        inbox = await Inbox.open(settings.data_dir / f"inbox-{org}.sqlite3", org)
        try:
            async with nats_session(
                settings, org, label=f"hub-dashboard-{org}", long_running=True
            ) as nc:
                recipient = Recipient(nc, org, wire=settings.wire)
                desk = CaseClient(nc, org, wire=settings.wire)
                page = dashboard_app(
                    inbox, registry.name(org), registry.name, partial(desk.cases, open_only=True)
                )
                async with asyncio.TaskGroup() as tasks:
                    receiving = tasks.create_task(recipient.run(inbox.record, stop))
                    typer.echo(f"{registry.name(org)} 的页面：{address(sock)}/（Ctrl-C 退出）")
                    tasks.create_task(serve_asgi(page, sock, stop))
                    receiving.add_done_callback(lambda _: stop.set())
        finally:
            sock.close()
            await inbox.close()

    run(work)
