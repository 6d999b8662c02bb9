"""The root ``hub`` command (settings read once), and ``main``: errors become exit codes."""

from __future__ import annotations

import sys

import typer

from hub import log
from hub.cli.common import Exit, judged
from hub.config import HubSettings

app = typer.Typer(
    help="执法协作信息共享枢纽 (enforcement information-sharing hub)",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # a bug shows a plain traceback; user errors none at all
)


@app.callback()
def root(ctx: typer.Context) -> None:
    """Read the HUB_* settings once for every command."""
    try:
        ctx.obj = HubSettings()
    except ValueError as exc:  # pydantic's ValidationError: a HUB_* variable is malformed
        typer.echo(f"错误：HUB_* 设置有误：{exc}", err=True)
        raise typer.Exit(Exit.USAGE) from exc
    log.configure("ERROR", stream=sys.stderr)  # one-shot commands: the printed result is enough


def main() -> None:
    """The ``hub`` executable: every error a user can cause ends in a message and an exit code."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)  # Ctrl-C before the command installed its own handler
    except Exception as exc:  # each kind a user can cause is named in judged(); the rest is a bug
        verdict = judged(exc)
        if verdict is None:
            raise
        code, message = verdict
        typer.echo(f"错误：{message}", err=True)
        sys.exit(code)
