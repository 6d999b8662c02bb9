"""``hub registry``: check a registry file, list the organisations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hub.cli.common import fail, known_county, registry_of, settings_of
from hub.cli.root import app
from hub.errors import RegistryError
from hub.registry import KIND_ZH, load_registry

registry_app = typer.Typer(help="组织登记簿 (organisation registry)", no_args_is_help=True)
app.add_typer(registry_app, name="registry")


@registry_app.command("check")
def registry_check(
    file: Annotated[Path | None, typer.Argument(help="登记簿文件，缺省为内置演示登记簿")] = None,
) -> None:
    """Check a registry file; exits 2 naming the first problem."""
    try:
        registry = load_registry(file)
    except RegistryError as exc:
        fail(str(exc))
    typer.echo(
        f"{registry.origin}：{len(registry.counties)} 个县级单位，{len(registry)} 个组织，检查通过"
    )


@registry_app.command("list")
def registry_list(
    ctx: typer.Context,
    county: Annotated[str | None, typer.Option(help="只列出某县（县 id）")] = None,
) -> None:
    """List the organisations with their ids, kinds and liaisons."""
    registry = registry_of(settings_of(ctx))
    known_county(registry, county)
    for c in registry.counties:
        if county and c.id != county:
            continue
        typer.echo(f"{c.name}（{c.id}，{c.code}）")
        for org in registry.members(c.id):
            liaison = f"{org.liaison.name} {org.liaison.phone}" if org.liaison else "—"
            typer.echo(f"  {org.id:<24} {KIND_ZH[org.kind]:<8} {org.name}  联络人：{liaison}")
