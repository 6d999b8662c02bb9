"""``hub audit``: the hub's public key, verifying the record, and exports for inspectors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from hub.audit import keys as record_keys
from hub.audit.checkpoints import Checkpointer
from hub.audit.export import ExportDamaged, collect, verify_export, write_export
from hub.audit.record import genesis_key, verify_live
from hub.audit.trust import RecordTrust
from hub.audit.verify import Finding
from hub.cli.common import (
    Exit,
    fail,
    known_org,
    nats_session,
    period,
    reach,
    registry_of,
    run,
    settings_of,
)
from hub.cli.root import app
from hub.config import HubSettings
from hub.errors import ConfigError
from hub.identity import HUB, OPS
from hub.ingest import utc_now
from hub.ledger import Ledger
from schemas.personal import mask_text
from schemas.shanghai import SHANGHAI, local_text
from subscribers.signing import SUITES, signer_of

audit_app = typer.Typer(help="审计记录 (the signed record)", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

SHOWN = 20
ROTATE_TRIES = 20


def _history(settings: HubSettings) -> list[dict[str, str]]:
    try:
        return list(record_keys.load(settings.credentials_store).history)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            "HUB_CREDENTIALS_DIR", f"读不到枢纽的签名密钥（{settings.credentials_store}）：{exc}"
        ) from exc


@audit_app.command("key")
def audit_key(ctx: typer.Context) -> None:
    """The public key the record is signed with (publish it; inspectors verify against it)."""
    history = _history(settings_of(ctx))
    typer.echo(genesis_key(history)[0])
    for number, key in enumerate(history, 1):
        since = key.get("since", "")
        typer.echo(f"  密钥 {number}：{key['suite']}，启用于 {since}：{key['public']}", err=True)


def _report(findings: list[Finding], what: str) -> Exit:
    if not findings:
        typer.echo(f"{what}：未发现删除、改动或插入")
        return Exit.OK
    first = mask_text(findings[0].text())  # event keys are the publishers' ids: may quote one
    typer.echo(f"{what}：发现 {len(findings)} 处问题，第一处：{first}", err=True)
    for finding in findings[1:SHOWN]:
        typer.echo(f"  {mask_text(finding.text())}", err=True)
    if len(findings) > SHOWN:
        typer.echo(f"  ……另有 {len(findings) - SHOWN} 处", err=True)
    return Exit.REJECTED


def _day_bounds(first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """Shanghai days ``first``..``last`` as a half-open span of instants."""
    start = first.replace(tzinfo=SHANGHAI)
    return start, last.replace(tzinfo=SHANGHAI) + timedelta(days=1)


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    day_from: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], help="只报告此日起的检查点所覆盖的"),
    ] = None,
    day_to: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="只报告至此日的检查点所覆盖的"),
    ] = None,
    export_dir: Annotated[
        Path | None,
        typer.Option("--export", help="离线核验一份导出（无需连接枢纽）", file_okay=False),
    ] = None,
    public_key: Annotated[
        str | None, typer.Option("--key", help="用此公钥核验（缺省用导出中的公钥）")
    ] = None,
) -> None:
    """Check every checkpoint and every message they cover; exit 1 naming the first problem."""
    if export_dir is not None:
        try:
            checked = verify_export(export_dir, public_key)
        except (ExportDamaged, OSError, ValueError) as exc:
            fail(f"导出无法读取：{exc}", Exit.REJECTED)
        manifest = checked.manifest
        what = (
            f"导出 {manifest.get('org')}（{manifest.get('day_from')} 至 {manifest.get('day_to')}）"
            f"，{checked.checkpoints} 个检查点，{checked.messages} 条消息"
        )
        raise typer.Exit(_report(checked.findings, what))
    settings = reach(settings_of(ctx))
    trusted = genesis_key(_history(settings))
    span = None
    if day_from or day_to:
        first = day_from or datetime(2000, 1, 1)
        last = day_to or datetime.now(SHANGHAI).replace(tzinfo=None)
        period(first.date(), last.date())
        span = _day_bounds(first, last)

    async def work(stop: asyncio.Event) -> Exit:
        async with nats_session(settings, OPS, label="hub-audit-verify") as nc:
            result = await verify_live(nc.jetstream(), settings.wire, trusted)
        findings = result.findings
        if span is not None:
            findings = [f for f in findings if result.chain.in_period(f, *span)]
        last = result.last_checkpoint_at
        what = (
            f"{result.checkpoints} 个检查点（最近一个 {local_text(last) if last else '—'}）"
            f"，{result.messages} 条消息"
        )
        return _report(findings, what)

    raise typer.Exit(run(work))


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    org: Annotated[str, typer.Option("--org", help="单位标识（登记簿中的 id）")],
    day_from: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="起始日期")],
    day_to: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="截止日期")],
    out: Annotated[Path, typer.Argument(help="导出目录（新建或为空）", file_okay=False)],
    personal_data: Annotated[
        bool,
        typer.Option(
            "--personal-data",
            help="保留该单位有权知悉的个人信息（缺省一律脱敏）",
        ),
    ] = False,
) -> None:
    """An organisation's events, deliveries, receipts and ledger rows, verifiable offline."""
    settings = reach(settings_of(ctx))
    known_org(registry_of(settings), org)
    first, last = period(day_from.date(), day_to.date())
    history = _history(settings)
    if out.exists() and any(out.iterdir()):
        fail(f"{out} 不是空目录")

    async def work(stop: asyncio.Event) -> None:
        async with (
            nats_session(settings, OPS, label="hub-audit-export") as nc,
            Ledger.open(settings.ledger_database) as ledger,
        ):
            wait_s = settings.checkpoint_s * 3
            collected = await collect(
                nc.jetstream(), settings.wire, ledger, org, first, last, wait_s=wait_s
            )
        out.mkdir(parents=True, exist_ok=True)
        manifest = write_export(
            collected,
            out,
            history,
            org=org,
            day_from=first,
            day_to=last,
            personal_data=personal_data,
            made_at=datetime.now(UTC),
        )
        counts = manifest.counts
        typer.echo(
            f"已导出 {org}（{first} 至 {last}）到 {out}：{counts['messages']} 条消息、"
            f"{counts['deliveries']} 个投递包、{counts['ledger_rows']} 行台账、"
            f"{counts['checkpoints']} 个检查点；个人信息"
            + ("按该单位的知悉权限保留" if personal_data else "已脱敏")
        )
        if collected.left_out:
            typer.echo(
                f"另有 {collected.left_out} 条消息尚无检查点覆盖，未导出（枢纽每 "
                f"{settings.checkpoint_s:g} 秒写一个检查点；稍后再导出即可包含）",
                err=True,
            )
        typer.echo(f"离线核验：hub audit verify --export {out} --key {manifest.public_key}")

    run(work)


@audit_app.command("rotate")
def audit_rotate(
    ctx: typer.Context,
    suite: Annotated[
        str | None,
        typer.Option(help="新密钥的算法：ed25519-sha256 或 sm2-sm3（缺省同当前密钥）"),
    ] = None,
) -> None:
    """Replace the record's signing key: a checkpoint signed by the old key names the new one."""
    settings = reach(settings_of(ctx))
    before = record_keys.load(settings.credentials_store)
    chosen = suite or before.suite
    if chosen not in SUITES:
        fail(f"--suite 须为 {' 或 '.join(SUITES)}，而不是 {chosen}")
    secret = record_keys.successor(chosen)
    new_public = signer_of(secret).public

    async def work(stop: asyncio.Event) -> None:
        async with nats_session(settings, HUB, label="hub-audit-rotate") as nc:
            trust = RecordTrust.load(settings)
            writer = Checkpointer(nc.jetstream(), settings, trust, utc_now)
            for _ in range(ROTATE_TRIES):  # a running hub may append first: chain after it
                if await writer.write_once(rotate_to=new_public) >= 0:
                    return
            fail("审计流一直有新的检查点写入，未能记下密钥更换；请稍后再试", Exit.UNAVAILABLE)

    run(work)
    _, after = record_keys.rotate(settings.credentials_store, secret)
    typer.echo(f"签名密钥已更换（{before.suite} → {after.suite}）：{after.public}")
    typer.echo("更换已记入审计流（由原密钥签名的检查点）；发给各单位的凭据无需重发。")
    typer.echo("请重启枢纽进程，使其改用新密钥。", err=True)
