"""``hub schemas export`` and ``hub asyncapi export``: the wire contract for other vendors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hub.asyncapi import specification
from hub.cli.common import settings_of
from hub.cli.root import app
from schemas.envelope import CASE_STEPS, CATEGORIES, EnvelopeBase

schemas_app = typer.Typer(help="事件模式 (event schemas)", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
asyncapi_app = typer.Typer(help="消息接口文档 (AsyncAPI)", no_args_is_help=True)
app.add_typer(asyncapi_app, name="asyncapi")


@schemas_app.command("export")
def schemas_export(directory: Annotated[Path, typer.Argument(help="输出目录")]) -> None:
    """Write one JSON Schema file per event type: the Art. 15 events and the case steps."""
    directory.mkdir(parents=True, exist_ok=True)
    for category in CATEGORIES.values():
        title = f"{category.label}（第十五条第{category.number}项）"
        typer.echo(str(_write_schema(directory, category.type, category.event, title)))
    for step in CASE_STEPS.values():
        title = f"{step.label}（案件步骤）"
        typer.echo(str(_write_schema(directory, step.type, step.event, title)))


def _write_schema(directory: Path, event_type: str, model: type[EnvelopeBase], title: str) -> Path:
    schema: dict[str, Any] = model.model_json_schema()
    schema["$id"] = f"urn:zhifa-hub:schema:{event_type}"
    schema["title"] = f"{event_type}：{title}"
    target = directory / f"{event_type}.json"
    target.write_text(json.dumps(schema, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return target


@asyncapi_app.command("export")
def asyncapi_export(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(help="输出文件（JSON）")]
) -> None:
    """Write the hub's AsyncAPI 3.0 document (channels and message schemas)."""
    document = specification(settings_of(ctx))
    file.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"{file}：{len(document['channels'])} 个通道")
