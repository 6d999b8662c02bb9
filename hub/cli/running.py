"""Running the hub: ``hub up`` (embedded NATS, the hub and the demo county) and ``hub serve``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from hub import log
from hub.cases.views import case_view
from hub.cli.common import fail, known_county, registry_of, run, settings_of
from hub.cli.root import app
from hub.config import HubSettings
from hub.demo import DemoCounty
from hub.demo_cases import demo_township
from hub.errors import ConfigError
from hub.identity import Authority, ensure_demo, ensure_own
from hub.identity.tls import TlsFiles
from hub.ledger import Ledger
from hub.natsd import NatsCluster, NatsServer
from hub.registry import Registry
from hub.report_output import rate_zh
from hub.reports import daily_report
from hub.service import Hub, running_hub, serve
from hub.store_key import store_key
from hub.timeliness import shanghai_day
from hub.workers import run_workers
from subscribers.dashboard import dashboard_app
from subscribers.inbox import Inbox
from subscribers.serving import address, listening, serve_asgi


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
    hubs: Annotated[int, typer.Option(min=1, help="枢纽进程数（分担接收与投递，互为备份）")] = 2,
) -> None:
    """Start an embedded nats-server (or a local cluster), the hub and the live demo county."""
    settings = settings_of(ctx)
    registry = registry_of(settings)
    known_county(registry, county)
    if cluster == 1 or cluster < 0:
        fail("--cluster 取 0（单节点）或不少于 2 的节点数")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log.configure(settings.log_level, file=settings.data_dir / "hub.log")

    authority = Authority.open(
        settings.credentials_store, create=True, jetstream_bytes=settings.jetstream_max_bytes
    )
    ensure_own(authority, settings)
    ensure_demo(authority, settings, registry)  # development credentials of every organisation
    tls = server_tls(settings)
    key = store_key(settings)  # JetStream's store is encrypted at rest

    async def work(stop: asyncio.Event) -> None:
        server: NatsServer | NatsCluster
        if cluster:
            server = NatsCluster(
                settings.data_dir / "nats-cluster",
                size=cluster,
                trust=authority.server_trust(),
                tls=tls,
                max_store_bytes=settings.jetstream_max_bytes,
                store_key=key,
            )
        else:
            server = NatsServer(
                settings.data_dir / "nats",
                host=settings.embedded_host,
                port=settings.embedded_port,
                sync_always=settings.embedded_sync_always,
                trust=authority.server_trust(),
                tls=tls,
                max_store_bytes=settings.jetstream_max_bytes,
                store_key=key,
            )
        async with server:
            running = settings.model_copy(
                update={
                    "nats_url": server.url,
                    "replicas": max(cluster, settings.replicas),
                    "tls_ca": tls.ca if tls else settings.tls_ca,
                }
            )
            running.url_file.write_text(server.url, encoding="utf-8")
            try:
                async with running_hub(running, registry) as hub, _more_hubs(running, hubs - 1):
                    where = f"{cluster} 节点集群，流复制 {cluster} 份" if cluster else "单节点"
                    typer.echo(f"枢纽已启动：{server.url}（{where}，{hubs} 个枢纽进程）")
                    others = "，其余枢纽进程 hub-1.log 等" if hubs > 1 else ""
                    typer.echo(f"数据目录 {settings.data_dir}（日志 hub.log{others}）")
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

    run(work)


@asynccontextmanager
async def _more_hubs(running: HubSettings, count: int) -> AsyncIterator[None]:
    """``count`` more ``hub serve`` on the embedded server while the body runs.

    Their logs go to the data directory (``hub-<i>.log``); their ops pages take free ports (the
    next ones are the township dashboard's and the gateway's).
    """
    overrides = {
        "HUB_NATS_URL": running.nats_url or "",
        "HUB_REPLICAS": str(running.replicas),
        "HUB_WEB_PORT": "0",
    }
    if running.tls_ca is not None:
        overrides["HUB_TLS_CA"] = str(running.tls_ca)
    stop = asyncio.Event()
    workers = asyncio.create_task(
        run_workers(running, count, stop, log_dir=running.data_dir, **overrides)
    )
    try:
        yield
    finally:
        stop.set()
        await workers


async def _demo(
    hub: Hub, registry: Registry, county: str, stop: asyncio.Event, interval: float, rounds: int
) -> None:
    """The demo county, with the dashboard of its first township served beside the ops page."""
    settings = hub.settings
    township = registry.org(demo_township(registry, county))
    try:
        sock = listening(settings.web_host, settings.dashboard_port)
    except OSError as exc:
        where = f"{settings.web_host}:{settings.dashboard_port}"
        raise ConfigError(
            "HUB_DASHBOARD_PORT", f"cannot listen on {where}: {exc.strerror}"
        ) from exc
    inbox = await Inbox.open(settings.data_dir / f"inbox-{township.id}.sqlite3", township.id)

    async def open_cases() -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        found = await hub.ledger.case_states(org=township.id, open_only=True)
        return [case_view(state, registry, now) for state in found]

    page = dashboard_app(inbox, township.name, registry.name, open_cases)
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


def server_tls(settings: HubSettings) -> TlsFiles | None:
    """The embedded server's TLS: HUB_TLS_CERT/KEY/CA, or the store's (hub credentials tls)."""
    if settings.tls_cert and settings.tls_key and settings.tls_ca:
        return TlsFiles(settings.tls_ca, settings.tls_cert, settings.tls_key)
    made = settings.credentials_store / "tls"
    files = TlsFiles(made / "ca.pem", made / "server.pem", made / "server-key.pem")
    return files if all(p.exists() for p in (files.ca, files.cert, files.key)) else None


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    workers: Annotated[
        int, typer.Option(min=1, help="本机的枢纽进程数（第 i 个的运维页端口 HUB_WEB_PORT+i）")
    ] = 1,
) -> None:
    """Run the hub against HUB_NATS_URL until SIGINT or SIGTERM."""
    settings = settings_of(ctx)
    registry = registry_of(settings)
    log.configure(settings.log_level, stream=sys.stderr)
    if not settings.nats_url:
        fail("hub serve 需要 HUB_NATS_URL（或用 hub up 启动内置 NATS）")

    async def work(stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(serve(settings, registry, stop))
            if workers > 1:
                tasks.create_task(run_workers(settings, workers - 1, stop))

    run(work)
