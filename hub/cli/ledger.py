"""``hub ledger``: rebuild the ledger from the streams, check it, or keep it in its own process."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from hub import log
from hub.audit.trust import RecordTrust
from hub.cli.common import Exit, nats_session, reach, run, settings_of
from hub.cli.root import app
from hub.config import HubSettings
from hub.identity import OPS
from hub.ledger import STATE_ZH, Ledger, shown
from hub.projection import rebuild
from hub.recompute import deep_check
from hub.reconcile import missing_events
from hub.report_output import category_zh
from hub.service import follow_ledger
from schemas.personal import mask_text
from schemas.shanghai import local_text

ledger_app = typer.Typer(help="台账 (delivery ledger)", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("rebuild")
def ledger_rebuild(
    ctx: typer.Context,
    into: Annotated[
        str | None, typer.Option(help="重建到另一个数据库（URL），缺省为当前台账")
    ] = None,
    recreate: Annotated[
        bool, typer.Option("--recreate", help="先删除并按本版本重建表结构（升级台账时用）")
    ] = False,
) -> None:
    """Empty the ledger and rebuild it from the events and receipts streams."""
    settings = reach(settings_of(ctx))
    target = into or settings.ledger_database

    async def work(stop: asyncio.Event) -> None:
        async with (
            nats_session(settings, OPS, label="hub-ledger-rebuild") as nc,
            Ledger.open(target, recreate=recreate) as ledger,
        ):
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            ) as bar:
                tasks: dict[str, TaskID] = {}

                def show(stream: str, done: int, total: int) -> None:
                    if stream not in tasks:
                        tasks[stream] = bar.add_task(stream, total=total)
                    bar.update(tasks[stream], completed=done, total=total)

                trust = RecordTrust.load(settings)
                read = await rebuild(nc.jetstream(), settings.wire, ledger, trust, progress=show)
            counts = await ledger.counts()
        typer.echo(f"台账已重建：{shown(target)}")
        for stream, n in read.items():
            typer.echo(f"  {stream}: 读取 {n} 条")
        typer.echo("  " + "，".join(f"{STATE_ZH[s]} {counts.get(s, 0)}" for s in STATE_ZH))

    run(work)


@ledger_app.command("check")
def ledger_check(
    ctx: typer.Context,
    deep: Annotated[
        bool,
        typer.Option("--deep", help="按事件流和回执流重算每一行台账，逐行比对（被改动的行）"),
    ] = False,
) -> None:
    """Compare the ledger with the events stream; exit 1 naming every accepted event missing.

    ``--deep`` recomputes every row from the streams and names each row that differs.
    """
    settings = reach(settings_of(ctx))
    if deep:
        raise typer.Exit(run(lambda stop: _deep_check(settings)))

    async def work(stop: asyncio.Event) -> Exit:
        async with (
            nats_session(settings, OPS, label="hub-ledger-check") as nc,
            Ledger.open(settings.ledger_database) as ledger,
        ):
            missing = await missing_events(nc.jetstream(), settings.wire, ledger)
            known = await ledger.high_water()
        if not missing:
            typer.echo(f"台账记录的已受理事件（至序号 {known}）都在事件流中")
            return Exit.OK
        typer.echo(f"事件流缺失 {len(missing)} 个已受理事件（台账记录至序号 {known}）：", err=True)
        for event in missing:
            typer.echo(
                f"  序号 {event.events_seq}  {mask_text(event.event_key)}"
                f"  {category_zh(event.category)}"
                f"  形成于 {local_text(event.formed_at)}",
                err=True,
            )
        return Exit.REJECTED

    raise typer.Exit(run(work))


async def _deep_check(settings: HubSettings) -> Exit:
    async with (
        nats_session(settings, OPS, label="hub-ledger-deep-check") as nc,
        Ledger.open(settings.ledger_database) as ledger,
    ):
        found = await deep_check(nc.jetstream(), settings.wire, ledger, RecordTrust.load(settings))
        counts = await ledger.counts()
    rows = sum(counts.values())
    if not found:
        typer.echo(f"台账 {rows} 行投递记录与按事件流、回执流重算的结果一致")
        return Exit.OK
    typer.echo(f"台账有 {len(found)} 行与按事件流、回执流重算的结果不同：", err=True)
    for difference in found:
        typer.echo(f"  {mask_text(difference.text())}", err=True)
    return Exit.REJECTED


@ledger_app.command("follow")
def ledger_follow(ctx: typer.Context) -> None:
    """Keep the ledger up to date in this process (for a hub run with HUB_PROJECT_LEDGER=false)."""
    settings = settings_of(ctx)
    log.configure(settings.log_level, stream=sys.stderr)
    run(lambda stop: follow_ledger(reach(settings), stop))
