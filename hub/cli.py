"""The ``hub`` command: run the hub (embedded or against a NATS URL), publish, tail, inspect."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import nats.errors
import typer
from nats.aio.client import Client
from nats.js.api import DeliverPolicy
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from hub import log
from hub.asyncapi import specification
from hub.config import HubSettings
from hub.demo import DemoCounty, clock_zh
from hub.envelope import load_quarantine, peek
from hub.errors import EventRejected, HubError, HubUnavailable
from hub.ledger import STATE_ZH, Ledger
from hub.natsd import NatsCluster, NatsServer
from hub.ops import OpsSnapshot, ops_snapshot
from hub.projection import rebuild
from hub.reconcile import missing_events
from hub.registry import KIND_ZH, OrgKind, Registry, load_registry
from hub.report_output import (
    Format,
    category_zh,
    duration_zh,
    rate_zh,
    render_daily,
    render_org,
    time_zh,
)
from hub.reports import daily_report, org_report
from hub.samples import PAYLOADS, sample_event
from hub.service import Hub, follow_ledger, running_hub, serve
from hub.timeliness import shanghai_day
from schemas.delivery import DeliveryBundle
from schemas.envelope import CATEGORIES, DELIVERED, Event, summary_zh
from subscribers.connection import connect
from subscribers.dashboard import dashboard_app
from subscribers.inbox import Inbox
from subscribers.publisher import Publisher
from subscribers.recipient import Delivery, Recipient
from subscribers.serving import address, listening, serve_asgi

app = typer.Typer(
    help="执法协作信息共享枢纽 (enforcement information-sharing hub)", no_args_is_help=True
)
schemas_app = typer.Typer(help="事件模式 (event schemas)", no_args_is_help=True)
registry_app = typer.Typer(help="组织登记簿 (organisation registry)", no_args_is_help=True)
quarantine_app = typer.Typer(help="隔离区 (rejected messages)", no_args_is_help=True)
report_app = typer.Typer(
    help="报表 (Art. 16 daily report, Art. 23 scorecard)", no_args_is_help=True
)
ledger_app = typer.Typer(help="台账 (delivery ledger)", no_args_is_help=True)
app.add_typer(report_app, name="report")
app.add_typer(ledger_app, name="ledger")
app.add_typer(schemas_app, name="schemas")
app.add_typer(registry_app, name="registry")
app.add_typer(quarantine_app, name="quarantine")

T = TypeVar("T")
CLI_ATTEMPTS = 5  # one-shot commands give up on an unreachable server after this many tries
OrgOption = Annotated[str, typer.Option("--as", help="以哪个单位的身份（登记簿中的 id）")]


def _settings(ctx: typer.Context) -> HubSettings:
    settings: HubSettings = ctx.obj
    return settings


@app.callback()
def main(ctx: typer.Context) -> None:
    """Read the HUB_* settings once for every command."""
    ctx.obj = HubSettings()
    log.configure("ERROR", stream=sys.stderr)  # one-shot commands: the printed result is enough


def _run(work: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``work`` with a stop event that SIGINT and SIGTERM set."""

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await work(stop)

    try:
        return asyncio.run(runner())
    except HubError as exc:
        typer.echo(f"错误：{exc}", err=True)
        raise typer.Exit(2) from exc
    except (nats.errors.Error, OSError) as exc:
        typer.echo(f"错误：NATS 不可用（{type(exc).__name__}: {exc}）", err=True)
        raise typer.Exit(2) from exc


def _url(settings: HubSettings) -> str:
    """The NATS URL: HUB_NATS_URL, else the one a running ``hub up`` wrote."""
    if settings.nats_url:
        return settings.nats_url
    try:
        return settings.url_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        typer.echo(
            f"错误：没有设置 HUB_NATS_URL，也没有运行中的 hub up（{settings.url_file} 不存在）",
            err=True,
        )
        raise typer.Exit(2) from None


def _known(registry: Registry, org: str) -> None:
    """Exit 2 unless ``org`` is in the registry."""
    if org not in registry:
        typer.echo(f"错误：{org} 不在组织登记簿中", err=True)
        raise typer.Exit(2)


def _registry(settings: HubSettings) -> Registry:
    try:
        return load_registry(settings.registry)
    except HubError as exc:
        typer.echo(f"错误：登记簿不可用：{exc}", err=True)
        raise typer.Exit(2) from exc


# -- running the hub ---------------------------------------------------------------------------


@app.command()
def up(
    ctx: typer.Context,
    demo: Annotated[bool, typer.Option(help="运行演示县的发布与接收")] = True,
    county: Annotated[str, typer.Option(help="演示县（登记簿中的县 id）")] = "renqiu",
    interval: Annotated[float, typer.Option(help="演示发布间隔（秒）")] = 3.0,
    rounds: Annotated[int, typer.Option(help="演示发布条数，0 表示直到 Ctrl-C")] = 0,
    cluster: Annotated[
        int, typer.Option(help="启动 N 个节点的本地 NATS 集群（流复制 N 份），0 为单节点")
    ] = 0,
) -> None:
    """Start an embedded nats-server (or a local cluster), the hub and the live demo county."""
    settings = _settings(ctx)
    registry = _registry(settings)
    log.configure(settings.log_level, file=settings.data_dir / "hub.log")
    if cluster == 1 or cluster < 0:
        typer.echo("错误：--cluster 取 0（单节点）或不少于 2 的节点数", err=True)
        raise typer.Exit(2)

    async def work(stop: asyncio.Event) -> None:
        server: NatsServer | NatsCluster
        if cluster:
            server = NatsCluster(settings.data_dir / "nats-cluster", size=cluster)
        else:
            server = NatsServer(
                settings.data_dir / "nats",
                host=settings.embedded_host,
                port=settings.embedded_port,
                sync_always=settings.embedded_sync_always,
            )
        async with server:
            running = settings.model_copy(
                update={"nats_url": server.url, "replicas": max(cluster, settings.replicas)}
            )
            running.url_file.write_text(server.url, encoding="utf-8")
            try:
                async with running_hub(running, registry) as hub:
                    where = f"{cluster} 节点集群，流复制 {cluster} 份" if cluster else "单节点"
                    typer.echo(f"枢纽已启动：{server.url}（{where}）")
                    typer.echo(f"数据目录 {settings.data_dir}（日志 hub.log）")
                    typer.echo(f"运维监控：{hub.web_url}/ops（指标 /metrics，接口文档 /asyncapi）")
                    typer.echo(
                        "另开终端：hub tail --as renqiu-chuan；"
                        f"hub publish 事件.json --as {county}-scjg；hub lag"
                    )
                    if demo:
                        await _demo(hub, registry, county, stop, interval, rounds)
                    else:
                        await stop.wait()
            finally:
                running.url_file.unlink(missing_ok=True)

    _run(work)


async def _demo(
    hub: Hub, registry: Registry, county: str, stop: asyncio.Event, interval: float, rounds: int
) -> None:
    """The demo county, with the dashboard of its first township served beside the ops page."""
    settings = hub.settings
    members = registry.members(county)
    township = next(
        (o for o in members if o.kind == OrgKind.TOWNSHIP),
        next(o for o in members if o.kind == OrgKind.STREET),
    )
    inbox = await Inbox.open(settings.data_dir / f"inbox-{township.id}.sqlite3", township.id)
    sock = listening(settings.web_host, 0)
    page = dashboard_app(inbox, township.name, registry.name)
    typer.echo(f"{township.name}的页面：{address(sock)}/")
    try:
        async with asyncio.TaskGroup() as tasks:
            served = asyncio.Event()
            tasks.create_task(serve_asgi(page, sock, served))
            demo = DemoCounty(settings, registry, typer.echo, county=county, inbox=inbox)
            await demo.run(stop, interval_s=interval, rounds=rounds)
            served.set()
        typer.echo(await _today_in_the_ledger(hub.ledger, registry))
    finally:
        await inbox.close()


async def _today_in_the_ledger(ledger: Ledger, registry: Registry) -> str:
    now = datetime.now(UTC)
    total = (await daily_report(ledger, registry, shanghai_day(now), now=now)).total
    return (
        f"今日台账：应送达 {total.deliveries}，已签收 {total.acknowledged}，"
        f"按时 {total.on_time}（{rate_zh(total.on_time_rate)}），未签收 {total.pending}；"
        f"详见 hub report daily --date {shanghai_day(now).isoformat()}"
    )


@app.command("serve")
def serve_command(ctx: typer.Context) -> None:
    """Run the hub against HUB_NATS_URL until SIGINT or SIGTERM."""
    settings = _settings(ctx)
    registry = _registry(settings)
    log.configure(settings.log_level, stream=sys.stderr)
    if not settings.nats_url:
        typer.echo("错误：hub serve 需要 HUB_NATS_URL（或用 hub up 启动内置 NATS）", err=True)
        raise typer.Exit(2)
    _run(lambda stop: serve(settings, registry, stop))


# -- publishing and reading ----------------------------------------------------------------------


@app.command()
def publish(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="事件 JSON 文件，- 表示标准输入", allow_dash=True)],
    org: OrgOption,
    new_id: Annotated[bool, typer.Option("--new-id", help="换用新的事件 id")] = False,
    now: Annotated[bool, typer.Option("--now", help="把形成时间改为当前时间")] = False,
) -> None:
    """Publish one event as an organisation; exits 1 when the hub rejects it."""
    settings = _settings(ctx)
    raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    body = _rewrite(raw, new_id=new_id, now=now)
    url = _url(settings)

    async def work(stop: asyncio.Event) -> int:
        nc = await connect(url, name=f"hub-publish-{org}", attempts=CLI_ATTEMPTS)
        try:
            publisher = Publisher(
                nc,
                org,
                wire=settings.wire,
                timeout_s=settings.request_timeout_s,
                retries=settings.publish_retries,
            )
            accepted = await publisher.publish(body)
        except EventRejected as exc:
            typer.echo(f"拒收（rejected）：已存入隔离区，序号 {exc.quarantine_seq}", err=True)
            for error in exc.errors:
                typer.echo(
                    f"  {error.field}: {error.message_zh}（{error.message_en}）[{error.rule}]",
                    err=True,
                )
            return 1
        except HubUnavailable as exc:
            typer.echo(f"暂不可用（unavailable）：{exc.reason}；可原样重发", err=True)
            return 3
        finally:
            await nc.close()
        again = "（此前已受理，未重复存储）" if accepted.duplicate else ""
        typer.echo(
            f"已受理（accepted）：{accepted.source}/{accepted.id} 序号 {accepted.seq}{again}"
        )
        typer.echo(f"  接收单位 {len(accepted.recipients)} 个：{'、'.join(accepted.recipients)}")
        for warning in accepted.warnings:
            typer.echo(f"  提示：{warning.field}: {warning.message_zh}")
        return 0

    code = _run(work)
    raise typer.Exit(code)


def _rewrite(raw: bytes, *, new_id: bool, now: bool) -> bytes:
    if not (new_id or now):
        return raw
    envelope = peek(raw)
    if not envelope:
        return raw  # not an object: let the hub reject it with the reason
    if new_id:
        envelope["id"] = str(uuid.uuid4())
    if now:
        envelope["time"] = datetime.now(UTC).isoformat()
    return json.dumps(envelope, ensure_ascii=False).encode()


@app.command()
def example(
    category: Annotated[str, typer.Argument(help="类别：" + "、".join(CATEGORIES))],
    org: OrgOption,
) -> None:
    """Print a valid sample event of a category, ready for ``hub publish``."""
    if category not in PAYLOADS:
        typer.echo(f"错误：没有类别 {category}；可用：{', '.join(CATEGORIES)}", err=True)
        raise typer.Exit(2)
    typer.echo(
        json.dumps(sample_event(category, org, datetime.now(UTC)), ensure_ascii=False, indent=2)
    )


@app.command()
def tail(
    ctx: typer.Context,
    org: OrgOption,
    ack: Annotated[
        bool, typer.Option("--ack", help="作为该单位签收（使用其持久消费者并发出回执）")
    ] = False,
    from_start: Annotated[bool, typer.Option("--from-start", help="从头显示（只看模式）")] = False,
    count: Annotated[int, typer.Option(help="收到 N 条后退出，0 表示一直运行")] = 0,
) -> None:
    """Show what is delivered to an organisation, as it arrives."""
    settings = _settings(ctx)
    registry = _registry(settings)
    _known(registry, org)
    url = _url(settings)

    async def work(stop: asyncio.Event) -> None:
        nc = await connect(url, name=f"hub-tail-{org}", attempts=CLI_ATTEMPTS)
        seen = 0

        def show(event: Event, published: str | None, redacted: bool) -> None:
            nonlocal seen
            seen += 1
            label = CATEGORIES[event.category].label
            note = "（已去除投诉人信息）" if redacted else ""
            typer.echo(
                f"{clock_zh()} {label} · {registry.name(event.source)} → {registry.name(org)} · "
                f"{summary_zh(event)}{note}  [{event.key}，发布于 {published or '?'}]"
            )
            if count and seen >= count:
                stop.set()

        try:
            if ack:

                async def handle(event: Event, delivery: Delivery) -> None:
                    show(event, delivery.published_at.isoformat(), delivery.redacted)

                await Recipient(nc, org, wire=settings.wire).run(handle, stop)
            else:
                await _peek(nc, settings, org, from_start, stop, show)
        finally:
            await nc.close()

    _run(work)


async def _peek(
    nc: Client,
    settings: HubSettings,
    org: str,
    from_start: bool,
    stop: asyncio.Event,
    show: Callable[[Event, str | None, bool], None],
) -> None:
    """Watch an organisation's deliveries through an ephemeral ordered consumer (no receipts)."""
    js = nc.jetstream()
    policy = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
    sub = await js.subscribe(
        settings.wire.deliver(org),
        stream=settings.wire.deliveries_stream,
        ordered_consumer=True,
        deliver_policy=policy,
    )
    try:
        while not stop.is_set():
            try:
                msg = await sub.next_msg(timeout=1.0)
            except TimeoutError:
                continue
            bundle = DeliveryBundle.model_validate_json(msg.data, context=DELIVERED)
            for item in bundle.items:
                show(item.event, item.published_at.isoformat(), item.redacted)
    finally:
        await sub.unsubscribe()


# -- schemas, registry, quarantine ----------------------------------------------------------


@schemas_app.command("export")
def schemas_export(directory: Annotated[Path, typer.Argument(help="输出目录")]) -> None:
    """Write one JSON Schema file per event type (e.g. permit.v1.json)."""
    directory.mkdir(parents=True, exist_ok=True)
    for category in CATEGORIES.values():
        schema: dict[str, Any] = category.event.model_json_schema()
        schema["$id"] = f"urn:zhifa-hub:schema:{category.type}"
        schema["title"] = f"{category.type}：{category.label}（第十五条第{category.number}项）"
        target = directory / f"{category.type}.json"
        target.write_text(json.dumps(schema, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        typer.echo(str(target))


@registry_app.command("check")
def registry_check(
    file: Annotated[Path | None, typer.Argument(help="登记簿文件，缺省为内置演示登记簿")] = None,
) -> None:
    """Check a registry file; exits 2 naming the first problem."""
    try:
        registry = load_registry(file)
    except HubError as exc:
        typer.echo(f"错误：{exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"{registry.origin}：{len(registry.counties)} 个县级单位，{len(registry)} 个组织，检查通过"
    )


@registry_app.command("list")
def registry_list(
    ctx: typer.Context,
    county: Annotated[str | None, typer.Option(help="只列出某县（县 id）")] = None,
) -> None:
    """List the organisations with their ids, kinds and liaisons."""
    registry = _registry(_settings(ctx))
    for c in registry.counties:
        if county and c.id != county:
            continue
        typer.echo(f"{c.name}（{c.id}，{c.code}）")
        for org in registry.members(c.id):
            liaison = f"{org.liaison.name} {org.liaison.phone}" if org.liaison else "—"
            typer.echo(f"  {org.id:<24} {KIND_ZH[org.kind]:<8} {org.name}  联络人：{liaison}")


@quarantine_app.command("list")
def quarantine_list(
    ctx: typer.Context, limit: Annotated[int, typer.Option(help="最多显示条数")] = 20
) -> None:
    """Show the newest rejected messages with their reasons."""
    settings = _settings(ctx)
    url = _url(settings)

    async def work(stop: asyncio.Event) -> None:
        nc = await connect(url, name="hub-quarantine", attempts=CLI_ATTEMPTS)
        try:
            js = nc.jetstream()
            info = await js.stream_info(settings.wire.quarantine_stream)
            if not info.state.messages:
                typer.echo("隔离区为空（no rejected messages）")
                return
            last = info.state.last_seq
            first = max(info.state.first_seq, last - limit + 1)
            for seq in range(first, last + 1):
                kept = await js.get_msg(settings.wire.quarantine_stream, seq)
                record = load_quarantine(kept.subject or "", kept.data or b"", kept.headers)
                typer.echo(
                    f"#{seq} {record['received_at']} {record['subject']} （{record['size']} 字节）"
                )
                for error in record["errors"]:
                    typer.echo(f"    {error['field']}: {error['message_zh']}")
        finally:
            await nc.close()

    _run(work)


# -- ledger and reports --------------------------------------------------------------------------

FormatOption = Annotated[Format, typer.Option("--format", help="输出格式：table、csv 或 json")]
AtOption = Annotated[
    datetime | None,
    typer.Option("--at", help="按此时刻评判未签收事项（默认当前时间，须带时区）"),
]


def _moment(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        typer.echo("错误：--at 须带时区，如 2025-10-01T08:00:00+08:00", err=True)
        raise typer.Exit(2)
    return at


@report_app.command("daily")
def report_daily(
    ctx: typer.Context,
    day: Annotated[datetime, typer.Option("--date", formats=["%Y-%m-%d"], help="日期（上海时间）")],
    county: Annotated[str | None, typer.Option(help="只统计某县（县 id）")] = None,
    fmt: FormatOption = Format.TABLE,
    at: AtOption = None,
) -> None:
    """Art. 16: per recipient and per publisher, per category, for one day."""
    settings = _settings(ctx)
    registry = _registry(settings)
    now = _moment(at)

    async def work(stop: asyncio.Event) -> str:
        async with Ledger.open(settings.ledger_database) as ledger:
            report = await daily_report(ledger, registry, day.date(), now=now, county=county)
        return render_daily(report, fmt)

    typer.echo(_run(work))


@report_app.command("org")
def report_org(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(help="单位标识（登记簿中的 id）")],
    day_from: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="起始日期")],
    day_to: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="截止日期")],
    fmt: FormatOption = Format.TABLE,
    at: AtOption = None,
) -> None:
    """Art. 23: one organisation as publisher and as recipient, with its late and open items."""
    settings = _settings(ctx)
    registry = _registry(settings)
    _known(registry, org)
    now = _moment(at)

    async def work(stop: asyncio.Event) -> str:
        async with Ledger.open(settings.ledger_database) as ledger:
            report = await org_report(
                ledger, registry, org, day_from.date(), day_to.date(), now=now
            )
        return render_org(report, fmt)

    typer.echo(_run(work))


@ledger_app.command("rebuild")
def ledger_rebuild(
    ctx: typer.Context,
    into: Annotated[
        str | None, typer.Option(help="重建到另一个数据库（URL），缺省为当前台账")
    ] = None,
) -> None:
    """Empty the ledger and rebuild it from the events and receipts streams."""
    settings = _settings(ctx)
    url = _url(settings)
    target = into or settings.ledger_database

    async def work(stop: asyncio.Event) -> dict[str, int]:
        nc = await connect(url, name="hub-ledger-rebuild", attempts=CLI_ATTEMPTS)
        try:
            async with Ledger.open(target) as ledger:
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

                    read = await rebuild(nc.jetstream(), settings.wire, ledger, progress=show)
                counts = await ledger.counts()
        finally:
            await nc.close()
        typer.echo(f"台账已重建：{target}")
        for stream, n in read.items():
            typer.echo(f"  {stream}: 读取 {n} 条")
        typer.echo("  " + "，".join(f"{STATE_ZH[s]} {counts.get(s, 0)}" for s in STATE_ZH))
        return read

    _run(work)


@ledger_app.command("check")
def ledger_check(ctx: typer.Context) -> None:
    """Compare the ledger with the events stream; exit 1 naming every accepted event missing."""
    settings = _settings(ctx)
    url = _url(settings)

    async def work(stop: asyncio.Event) -> int:
        nc = await connect(url, name="hub-ledger-check", attempts=CLI_ATTEMPTS)
        try:
            async with Ledger.open(settings.ledger_database) as ledger:
                known = len(await ledger.events())
                missing = await missing_events(nc.jetstream(), settings.wire, ledger)
        finally:
            await nc.close()
        if not missing:
            typer.echo(f"台账记录的 {known} 个已受理事件都在事件流中")
            return 0
        typer.echo(f"事件流缺失 {len(missing)} 个已受理事件（台账共 {known} 个）：", err=True)
        for event in missing:
            typer.echo(
                f"  序号 {event.events_seq}  {event.event_key}  {category_zh(event.category)}"
                f"  形成于 {time_zh(event.formed_at)}",
                err=True,
            )
        return 1

    raise typer.Exit(_run(work))


# -- ops ---------------------------------------------------------------------------------------


@app.command()
def lag(
    ctx: typer.Context,
    county: Annotated[str | None, typer.Option(help="只看某县（县 id）")] = None,
    category: Annotated[str | None, typer.Option(help="只看某类信息")] = None,
    all_orgs: Annotated[bool, typer.Option("--all", help="也列出没有待签收事件的单位")] = False,
) -> None:
    """Print each organisation's backlog: events waiting for its acknowledgement, oldest first."""
    settings = _settings(ctx)
    registry = _registry(settings)

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

    snapshot = _run(work)
    table = Table(title=f"各单位待签收情况（截至 {time_zh(snapshot.generated_at)}，上海时间）")
    for header in (
        "单位",
        "县（市、区）",
        "待签收",
        "最久等待",
        "今日应送达",
        "今日按时率",
        "最近签收",
        "死信",
    ):
        table.add_column(
            header, justify="right" if header in ("待签收", "今日应送达", "死信") else "left"
        )
    rows = sorted(snapshot.orgs, key=lambda o: (-o.waiting, -(o.oldest_waiting_s or 0), o.org))
    for org in rows:
        if org.waiting or org.dead_lettered or all_orgs:
            table.add_row(
                org.name,
                org.county_name,
                str(org.waiting),
                duration_zh(org.oldest_waiting_s),
                str(org.today_deliveries),
                rate_zh(org.today_on_time_rate),
                time_zh(org.last_receipt),
                str(org.dead_lettered),
            )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped or captured: no terminal width to fit, do not wrap
    console.print(table)
    waiting = sum(o.waiting for o in snapshot.orgs)
    typer.echo(f"合计待签收 {waiting} 件；当日未签收风险单位 {len(snapshot.at_risk)} 个")


@app.command()
def dashboard(
    ctx: typer.Context,
    org: OrgOption,
    port: Annotated[int, typer.Option(help="网页端口")] = 8081,
    host: Annotated[str, typer.Option(help="网页地址")] = "127.0.0.1",
) -> None:
    """Receive as an organisation (acknowledging) and serve its own dashboard page."""
    settings = _settings(ctx)
    registry = _registry(settings)
    _known(registry, org)
    url = _url(settings)
    log.configure(settings.log_level, file=settings.data_dir / f"dashboard-{org}.log")

    async def work(stop: asyncio.Event) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        inbox = await Inbox.open(settings.data_dir / f"inbox-{org}.sqlite3", org)
        nc = await connect(url, name=f"hub-dashboard-{org}")
        try:
            app_ = dashboard_app(inbox, registry.name(org), registry.name)
            sock = listening(host, port)
            typer.echo(f"{registry.name(org)} 的页面：{address(sock)}/（Ctrl-C 退出）")
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(serve_asgi(app_, sock, stop))
                tasks.create_task(Recipient(nc, org, wire=settings.wire).run(inbox.record, stop))
        finally:
            await nc.drain()
            await inbox.close()

    _run(work)


asyncapi_app = typer.Typer(help="消息接口文档 (AsyncAPI)", no_args_is_help=True)
app.add_typer(asyncapi_app, name="asyncapi")


@asyncapi_app.command("export")
def asyncapi_export(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(help="输出文件（JSON）")]
) -> None:
    """Write the hub's AsyncAPI 3.0 document (channels and message schemas)."""
    document = specification(_settings(ctx))
    file.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"{file}：{len(document['channels'])} 个通道")


@ledger_app.command("follow")
def ledger_follow(ctx: typer.Context) -> None:
    """Keep the ledger up to date in this process (for a hub run with HUB_PROJECT_LEDGER=false)."""
    settings = _settings(ctx)
    log.configure(settings.log_level, stream=sys.stderr)
    url = _url(settings)
    _run(lambda stop: follow_ledger(settings.model_copy(update={"nats_url": url}), stop))
