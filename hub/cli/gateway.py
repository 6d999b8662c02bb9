"""``hub gateway``: the HTTP gateway for systems that speak HTTP, not NATS."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import httpx
import typer
from nats.aio.client import Client

from hub import log
from hub.cli.common import reach, run, settings_of
from hub.cli.root import app
from hub.errors import ConfigError
from hub.gateway import webhooks
from hub.gateway.app import Sessions, gateway_app
from hub.gateway.mtls import PeerCertProtocol, server_context
from hub.gateway.tokens import Tokens
from hub.identity.sessions import connect_as
from subscribers.serving import address, listening, serve_asgi

START_ATTEMPTS = 3


@app.command("gateway")
def gateway(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="监听地址（缺省 HUB_GATEWAY_HOST）")] = None,
    port: Annotated[int | None, typer.Option(help="端口（缺省 HUB_GATEWAY_PORT）")] = None,
) -> None:
    """Serve POST /v1/events (CloudEvents over HTTP) as the organisations whose tokens call it."""
    settings = reach(settings_of(ctx))
    log.configure(settings.log_level, stream=sys.stderr)
    chosen_host = host or settings.gateway_host
    chosen_port = settings.gateway_port if port is None else port

    async def connect(org: str) -> Client:
        return await connect_as(
            settings,
            org,
            label=f"hub-gateway-{org}",
            attempts=START_ATTEMPTS,
            reconnect_attempts=-1,
        )

    async def work(stop: asyncio.Event) -> None:
        tls = server_context(settings)
        try:
            sock = listening(chosen_host, chosen_port)
        except OSError as exc:
            where = f"{chosen_host}:{chosen_port}"
            raise ConfigError(
                "HUB_GATEWAY_PORT", f"cannot listen on {where}: {exc.strerror}"
            ) from exc
        sessions = Sessions(settings, connect)
        page = gateway_app(settings, Tokens(settings.credentials_store), sessions)
        url = address(sock) if tls is None else "https" + address(sock).removeprefix("http")
        mutual = "，客户端须出示本县 CA 签发的证书" if settings.gateway_client_ca else ""
        typer.echo(f"HTTP 网关：{url}/v1/events{mutual}（Ctrl-C 退出）")
        pushing = webhooks.endpoints(settings.credentials_store)
        try:
            async with httpx.AsyncClient() as client, asyncio.TaskGroup() as tasks:
                tasks.create_task(serve_asgi(page, sock, stop, tls=tls, protocol=PeerCertProtocol))
                for endpoint in pushing:
                    nc = await connect(endpoint.org)
                    pusher = webhooks.Pusher(
                        nc, endpoint, settings.wire, client, settings.backoff_s
                    )
                    tasks.create_task(pusher.run(stop))
                    typer.echo(f"推送 {endpoint.org} 的投递到 {endpoint.url}")
        finally:
            await sessions.close()

    run(work)
