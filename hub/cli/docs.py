"""``hub schemas export`` and ``hub asyncapi export``: the wire contract for other vendors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter

from hub.asyncapi import specification
from hub.cli.common import settings_of
from hub.cli.root import app
from schemas.delivery import DeliveryBundle
from schemas.envelope import CASE_STEPS, CATEGORIES, EnvelopeBase
from schemas.receipt import ReceiptBatch
from schemas.replies import IngestReply

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
    for name, adapter, title in WIRE_SCHEMAS:
        typer.echo(str(_write(directory, name, adapter.json_schema(), title)))
    typer.echo(
        "（JSON Schema 表达不了的规则只由枢纽检查，见 README 的“仅由枢纽检查的规则”）", err=True
    )


WIRE_SCHEMAS: list[tuple[str, TypeAdapter[Any], str]] = [
    ("receipt-batch", TypeAdapter(ReceiptBatch), "回执批次（接收单位发给枢纽）"),
    ("ingest-reply", TypeAdapter(IngestReply), "枢纽对发布的答复（已受理、已拒收、暂不可用）"),
    ("delivery-bundle", TypeAdapter(DeliveryBundle), "投递包（枢纽发给接收单位）"),
]
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _write_schema(directory: Path, event_type: str, model: type[EnvelopeBase], title: str) -> Path:
    return _write(directory, event_type, model.model_json_schema(), title)


def _write(directory: Path, event_type: str, schema: dict[str, Any], title: str) -> Path:
    schema = {"$schema": DIALECT, **schema}
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
