"""``hub credentials``: the identities of the organisations and of the hub, and the county's TLS."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from hub.cli.common import Exit, fail, known_org, reach, registry_of, run, settings_of
from hub.cli.root import app
from hub.config import HubSettings
from hub.errors import HubUnavailable
from hub.gateway import tokens as gateway_tokens
from hub.gateway import webhooks
from hub.identity import (
    Authority,
    Role,
    ensure_own,
    org_credentials_path,
    permissions,
    with_hub_key,
)
from hub.identity.authority import write_secret
from hub.identity.tls import ensure_tls, issue_client
from hub.identity.updates import push_account
from hub.natsd import trust_config
from schemas.shanghai import local_text

credentials_app = typer.Typer(help="身份凭据 (identities, credentials, TLS)", no_args_is_help=True)
app.add_typer(credentials_app, name="credentials")


def _authority(settings: HubSettings, *, create: bool = False) -> Authority:
    return Authority.open(
        settings.credentials_store, create=create, jetstream_bytes=settings.jetstream_max_bytes
    )


def _when(stamp: int) -> str:
    return local_text(datetime.fromtimestamp(stamp, UTC))


@credentials_app.command("init")
def credentials_init(ctx: typer.Context) -> None:
    """Create the authority (operator, accounts) and the hub's own identities, once."""
    settings = settings_of(ctx)
    authority = _authority(settings, create=True)
    ensure_own(authority, settings)
    typer.echo(f"凭据库：{settings.credentials_store}（私钥文件权限 0600，勿入版本库）")
    typer.echo(f"  枢纽账户公钥 {authority.account}；系统账户公钥 {authority.system_account}")
    typer.echo(
        "  已签发：hub.creds（枢纽服务）、ops.creds（运维只读）、admin.creds（流管理）、sys.creds"
    )
    typer.echo(
        "  下一步：hub credentials server-config 文件（服务器信任配置）；hub credentials tls"
    )


@credentials_app.command("issue")
def credentials_issue(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(help="单位标识（登记簿中的 id）")],
    out: Annotated[Path, typer.Option("--out", help="凭据文件（权限 0600，只交给该单位）")],
    public_key: Annotated[
        str | None,
        typer.Option(
            "--public-key", help="该单位自己生成的公钥（U…）：只签发 JWT，私钥不离开该单位"
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="该单位已有凭据时：吊销旧的，签发新的")
    ] = False,
) -> None:
    """Issue an organisation's credentials (Ed25519; the server learns only the public key)."""
    settings = settings_of(ctx)
    known_org(registry_of(settings), org)
    authority = _authority(settings)
    current = next((i for i in authority.issued() if i.name == org and not i.revoked_at), None)
    if current is not None and not replace:
        fail(
            f"{org} 已于 {_when(current.issued_at)} 签发凭据（公钥 {current.public_key}）；"
            "加 --replace 吊销旧凭据并签发新的"
        )
    if current is not None:
        authority.revoke(org)
        org_credentials_path(settings, org).unlink(missing_ok=True)  # the store's copy is stale
    token, text = authority.issue(org, Role.ORG, permissions(settings, org), public_key=public_key)
    write_secret(out, with_hub_key(text if text is not None else token + "\n", settings))
    kind = "用户 JWT（与该单位自己的私钥配合使用）" if text is None else "凭据文件（含私钥）"
    typer.echo(f"已签发 {org} 的{kind}：{out}（权限 0600）")
    if current is not None:
        typer.echo(_pushed(settings, authority))


@credentials_app.command("list")
def credentials_list(ctx: typer.Context) -> None:
    """List every identity issued, with its public key and whether it was revoked."""
    issued = _authority(settings_of(ctx)).issued()
    if not issued:
        typer.echo("尚未签发任何凭据")
    for i in issued:
        state = f"已吊销于 {_when(i.revoked_at)}" if i.revoked_at else "有效"
        typer.echo(
            f"{i.name:<26} {i.role.value:<6} {i.public_key}  签发于 {_when(i.issued_at)}  {state}"
        )


@credentials_app.command("revoke")
def credentials_revoke(
    ctx: typer.Context, org: Annotated[str, typer.Argument(help="单位标识（或 _hub 等）")]
) -> None:
    """Revoke an identity: the running servers close its connections and refuse new ones."""
    settings = settings_of(ctx)
    authority = _authority(settings)
    authority.revoke(org)
    org_credentials_path(settings, org).unlink(missing_ok=True)
    typer.echo(f"已吊销 {org} 的凭据")
    typer.echo(_pushed(settings, authority))


def _pushed(settings: HubSettings, authority: Authority) -> str:
    """Push the account to the running server, or say when the change takes effect."""
    if not settings.nats_url and not settings.url_file.exists():
        return "没有运行中的服务器：下次启动时生效"
    reachable = reach(settings)
    try:
        answer = run(lambda stop: push_account(reachable, authority))
    except HubUnavailable as exc:
        typer.echo(f"未能推送到服务器（{exc.reason}）；服务器下次启动时生效", err=True)
        raise typer.Exit(Exit.UNAVAILABLE) from exc
    return f"已推送到运行中的服务器（{answer}），立即生效"


@credentials_app.command("tls")
def credentials_tls(
    ctx: typer.Context,
    host: Annotated[
        list[str] | None, typer.Option("--host", help="服务器的主机名或地址（可多个）")
    ] = None,
) -> None:
    """Create the county's private CA and a server certificate (clients and cluster routes)."""
    files = ensure_tls(settings_of(ctx).credentials_store / "tls", list(host or []))
    typer.echo(f"CA 证书 {files.ca}（发给各单位：HUB_TLS_CA）")
    typer.echo(f"服务器证书 {files.cert}，私钥 {files.key}（权限 0600）")


def _need_nats_credentials(settings: HubSettings, org: str, why: str) -> None:
    path = org_credentials_path(settings, org)
    if not path.exists():
        fail(
            f"凭据库中没有 {org} 的 NATS 凭据（{path}）：{why}，请先 "
            f"hub credentials issue {org} --out {path}"
        )


@credentials_app.command("client-cert")
def credentials_client_cert(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(help="单位标识（登记簿中的 id）")],
) -> None:
    """A client certificate of the county's CA naming ORG, for the gateway's mutual TLS."""
    settings = settings_of(ctx)
    known_org(registry_of(settings), org)
    _need_nats_credentials(settings, org, "网关以该单位的身份发布")
    try:
        files = issue_client(settings.credentials_store / "tls", org)
    except FileNotFoundError as exc:
        fail(f"{exc}：请先运行 hub credentials tls")
    typer.echo(f"{org} 的客户端证书 {files.cert}，私钥 {files.key}（权限 0600）")
    typer.echo(f"网关侧：HUB_GATEWAY_CLIENT_CA={files.ca}", err=True)


@credentials_app.command("server-config")
def credentials_server_config(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="nats-server 配置片段（include 到 nats.conf）")],
    resolver_dir: Annotated[Path, typer.Option(help="服务器上 JWT 解析器的目录")] = Path(
        "/data/jwt"
    ),
) -> None:
    """Write what nats-server needs to trust the authority (operator mode, full resolver)."""
    trust = _authority(settings_of(ctx)).server_trust()
    lines = ["# hub credentials server-config: the operator and accounts this server trusts"]
    lines += trust_config(trust, resolver_dir)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    typer.echo(f"{out}：include 到每个节点的 nats.conf")


@credentials_app.command("token")
def credentials_token(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(help="单位标识（登记簿中的 id）")],
    revoke: Annotated[bool, typer.Option("--revoke", help="撤销该单位的全部网关令牌")] = False,
) -> None:
    """A bearer token for the HTTP gateway (shown once; the store keeps only its hash)."""
    settings = settings_of(ctx)
    known_org(registry_of(settings), org)
    if revoke:
        count = gateway_tokens.revoke(settings.credentials_store, org)
        typer.echo(f"已撤销 {org} 的 {count} 个网关令牌")
        return
    _need_nats_credentials(settings, org, "网关以该单位的身份发布")
    typer.echo(gateway_tokens.issue(settings.credentials_store, org))
    typer.echo(f"（{org} 的网关令牌，只显示这一次：请求头 Authorization: Bearer <令牌>）", err=True)


@credentials_app.command("webhook")
def credentials_webhook(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(help="单位标识（登记簿中的 id）")],
    url: Annotated[str | None, typer.Option("--url", help="接收推送的 HTTPS 地址")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="停止向该单位推送")] = False,
) -> None:
    """Register an organisation's webhook endpoint; prints the signing secret once."""
    settings = settings_of(ctx)
    known_org(registry_of(settings), org)
    store = settings.credentials_store
    if remove:
        had = webhooks.remove(store, org)
        typer.echo(f"已停止向 {org} 推送" if had else f"{org} 没有登记推送地址")
        return
    if url is None or not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        fail("--url 须为 https:// 地址（本机测试可用 http://127.0.0.1）")
    _need_nats_credentials(settings, org, "网关以该单位的身份读取投递")
    endpoint = webhooks.register(store, org, url)
    typer.echo(endpoint.secret)
    typer.echo(
        f"（{org} 的推送签名密钥，只显示这一次；重启 hub gateway 后开始推送到 {url}）", err=True
    )
