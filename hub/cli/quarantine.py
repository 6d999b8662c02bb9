"""``hub quarantine``: the rejected messages the hub keeps, with their reasons."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import typer

from hub.cli.common import nats_session, reach, run, settings_of
from hub.cli.root import app
from hub.envelope import load_quarantine
from hub.identity import OPS
from schemas.personal import mask_text
from schemas.shanghai import local_text

quarantine_app = typer.Typer(help="隔离区 (rejected messages)", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("list")
def quarantine_list(
    ctx: typer.Context, limit: Annotated[int, typer.Option(help="最多显示条数", min=1)] = 20
) -> None:
    """Show the newest rejected messages with their reasons (personal data masked)."""
    settings = reach(settings_of(ctx))

    async def work(stop: asyncio.Event) -> None:
        async with nats_session(settings, OPS, label="hub-quarantine") as nc:
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
                received = (
                    local_text(datetime.fromisoformat(record["received_at"]))
                    if record["received_at"]
                    else "—"
                )
                shown = [f"#{seq} {received} {record['subject']} （{record['size']} 字节）"]
                shown += [f"    {e['field']}: {e['message_zh']}" for e in record["errors"]]
                for line in shown:  # the reasons may quote what was sent: ids, codes, numbers
                    typer.echo(mask_text(line))

    run(work)
