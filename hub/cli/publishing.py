"""Publishing and reading as an organisation: ``hub publish``, ``hub example``, ``hub tail``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import nats.errors
import nats.js.errors
import typer
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from hub.cli.common import (
    Exit,
    OrgOption,
    fail,
    known_category,
    known_org,
    nats_session,
    reach,
    registry_of,
    run,
    settings_of,
)
from hub.cli.root import app
from hub.config import HubSettings
from hub.envelope import peek
from hub.errors import EventRejected, HubUnavailable
from hub.identity.permissions import peek_consumer
from hub.samples import sample_event
from schemas.delivery import DeliveryBundle
from schemas.envelope import CATEGORIES, DELIVERED, Event, label_of, summary_zh
from schemas.shanghai import clock_text, local_text, now_local
from subscribers.connection import credentials_of
from subscribers.consume import pull_batches
from subscribers.errors import HubKeyMissing
from subscribers.publisher import Publisher
from subscribers.recipient import Delivery, Recipient, signed_by_hub

Show = Callable[[Event, str, bool], None]
PEEK_IDLE_S = 60.0  # the server drops a watch's consumer this long after its last read


@app.command()
def publish(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="事件 JSON 文件，- 表示标准输入", allow_dash=True)],
    org: OrgOption,
    new_id: Annotated[bool, typer.Option("--new-id", help="换用新的事件 id")] = False,
    now: Annotated[bool, typer.Option("--now", help="把形成时间改为当前时间")] = False,
) -> None:
    """Publish one event as an organisation: exit 0 accepted, 1 rejected, 3 unavailable."""
    settings = settings_of(ctx)
    body = _rewrite(_read(file), new_id=new_id, now=now)
    settings = reach(settings)

    async def work(stop: asyncio.Event) -> Exit:
        async with nats_session(settings, org, label=f"hub-publish-{org}") as nc:
            publisher = Publisher(
                nc,
                org,
                wire=settings.wire,
                timeout_s=settings.publish_timeout_s,
                retries=settings.publish_retries,
            )
            try:
                accepted = await publisher.publish(body)
            except EventRejected as exc:
                typer.echo(f"拒收（rejected）：已存入隔离区，序号 {exc.quarantine_seq}", err=True)
                for error in exc.errors:
                    typer.echo(
                        f"  {error.field}: {error.message_zh}（{error.message_en}）[{error.rule}]",
                        err=True,
                    )
                return Exit.REJECTED
            except HubUnavailable as exc:
                typer.echo(f"暂不可用（unavailable）：{exc.reason}；可原样重发", err=True)
                return Exit.UNAVAILABLE
        again = "（此前已受理，未重复存储）" if accepted.duplicate else ""
        typer.echo(
            f"已受理（accepted）：{accepted.source}/{accepted.id} 序号 {accepted.seq}{again}"
        )
        typer.echo(f"  接收单位 {len(accepted.recipients)} 个：{'、'.join(accepted.recipients)}")
        for warning in accepted.warnings:
            typer.echo(f"  提示：{warning.field}: {warning.message_zh}")
        return Exit.OK

    raise typer.Exit(run(work))


def _read(file: Path) -> bytes:
    """The event's bytes, from a file or standard input (``-``)."""
    if str(file) == "-":
        return sys.stdin.buffer.read()
    if file.is_dir():
        fail(f"{file} 是目录；请给出一个事件 JSON 文件（hub example 可生成示例）")
    try:
        return file.read_bytes()
    except FileNotFoundError:
        fail(f"找不到事件文件 {file}（hub example 类别 --as 单位 > 事件.json 可生成示例）")
    except PermissionError:
        fail(f"没有权限读取 {file}")


def _rewrite(raw: bytes, *, new_id: bool, now: bool) -> bytes:
    if not (new_id or now):
        return raw
    envelope = peek(raw)
    if not envelope:
        return raw  # not an object: let the hub reject it with the reason
    if new_id:
        envelope["id"] = str(uuid.uuid4())
    if now:
        envelope["time"] = now_local().isoformat()
    return json.dumps(envelope, ensure_ascii=False).encode()


@app.command()
def example(
    ctx: typer.Context,
    category: Annotated[str, typer.Argument(help="类别：" + "、".join(CATEGORIES))],
    org: OrgOption,
) -> None:
    """Print a valid sample event of a category, ready for ``hub publish``."""
    known_category(category)
    known_org(registry_of(settings_of(ctx)), org)
    typer.echo(json.dumps(sample_event(category, org, now_local()), ensure_ascii=False, indent=2))


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
    """Show what is delivered to an organisation, as it arrives (Ctrl-C to stop)."""
    settings = settings_of(ctx)
    registry = registry_of(settings)
    known_org(registry, org)
    settings = reach(settings)

    async def work(stop: asyncio.Event) -> None:
        seen = 0

        def show(event: Event, published: str, redacted: bool) -> None:
            nonlocal seen
            seen += 1
            label = label_of(event.category)
            note = "（已去除投诉人信息）" if redacted else ""
            typer.echo(
                f"{clock_text()} {label} · {registry.name(event.source)} → {registry.name(org)}"
                f" · {summary_zh(event)}{note}  [{event.key}，发布于 {published}]"
            )
            if count and seen >= count:
                stop.set()

        async with nats_session(settings, org, label=f"hub-tail-{org}", long_running=True) as nc:
            if ack:

                async def handle(event: Event, delivery: Delivery) -> None:
                    show(event, local_text(delivery.published_at), delivery.redacted)

                await Recipient(nc, org, wire=settings.wire).run(handle, stop)
            else:
                await _peek(nc, settings, org, from_start, stop, show)

    run(work)


async def _peek(
    nc: Client, settings: HubSettings, org: str, from_start: bool, stop: asyncio.Event, show: Show
) -> None:
    """Watch an organisation's deliveries without taking them (no acks, no receipts).

    Through the one extra consumer an organisation may make, ``peek-<org>``: filtered to its own
    deliveries, acknowledging nothing, dropped by the server a minute after the last read.
    """
    js = nc.jetstream()
    stream, name = settings.wire.deliveries_stream, peek_consumer(org)
    config = ConsumerConfig(
        name=name,
        filter_subject=settings.wire.deliver(org),
        deliver_policy=DeliverPolicy.ALL if from_start else DeliverPolicy.NEW,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=PEEK_IDLE_S,
        mem_storage=True,
        num_replicas=1,
    )
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_consumer(stream, name)  # a previous watch's, with its own start point
    await js.add_consumer(stream, config)
    sub = await js.pull_subscribe_bind(durable=name, stream=stream)
    held = credentials_of(nc)
    if held is None or held.hub_key is None:
        raise HubKeyMissing(org, str(held.path) if held else None)
    try:
        async for msgs in pull_batches(sub, stop, batch=64):
            for msg in msgs:
                if not signed_by_hub(held.hub_key, msg):
                    seq = msg.metadata.sequence.stream
                    typer.echo(
                        f"{clock_text()} 拒收：送达序号 {seq} 没有枢纽的签名（伪造或被改动）"
                    )
                    continue
                bundle = DeliveryBundle.model_validate_json(msg.data, context=DELIVERED)
                for item in bundle.items:
                    show(item.event, local_text(item.published_at), item.redacted)
    finally:
        await sub.unsubscribe()
        with contextlib.suppress(nats.errors.Error):
            await js.delete_consumer(stream, name)
