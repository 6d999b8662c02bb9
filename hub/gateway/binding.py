"""The CloudEvents HTTP binding: one event (structured or binary mode) or a batch, as envelopes.

Structured mode (``application/cloudevents+json``) carries the whole event as the body; binary
mode carries the attributes as ``ce-*`` headers and ``data`` as the body (``application/json``);
batch mode (``application/cloudevents-batch+json``) is a JSON array of structured events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
JSON = "application/json"
MAX_BATCH = 100


class BindingError(Exception):
    """A request the gateway cannot read: its HTTP status and why, in Chinese and English."""

    def __init__(self, status: int, message_zh: str, message_en: str) -> None:
        super().__init__(message_en)
        self.status, self.message_zh, self.message_en = status, message_zh, message_en

    def body(self) -> dict[str, Any]:
        """The answer's JSON."""
        return {
            "status": "bad_request",
            "message_zh": self.message_zh,
            "message_en": self.message_en,
        }


def media_type(content_type: str) -> str:
    """``application/json; charset=utf-8`` → ``application/json``."""
    return content_type.split(";", 1)[0].strip().lower()


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BindingError(
            400, f"请求体不是有效的 JSON：{exc}", f"the body is not valid JSON: {exc}"
        ) from exc


def events_of(
    content_type: str, headers: Mapping[str, str], body: bytes
) -> tuple[list[bytes], bool]:
    """The envelopes a request carries (as bytes for the hub), and whether it was a batch."""
    kind = media_type(content_type)
    if kind == STRUCTURED:
        _json(body)  # readable, or a 400 (the hub is sent the bytes as they came)
        return [body], False
    if kind == BATCH:
        batch = _json(body)
        if not isinstance(batch, list):
            raise BindingError(
                400, "批量模式的请求体须为 JSON 数组", "a batch must be a JSON array"
            )
        if not 1 <= len(batch) <= MAX_BATCH:
            raise BindingError(
                413 if batch else 400,
                f"一批须有 1 到 {MAX_BATCH} 个事件（收到 {len(batch)} 个）",
                f"a batch holds 1 to {MAX_BATCH} events (got {len(batch)})",
            )
        return [orjson.dumps(e) for e in batch], True
    if "ce-specversion" in headers:
        return [binary(headers, kind, body)], False
    raise BindingError(
        415,
        f"不支持的内容类型 {content_type or '（无）'}：请用 {STRUCTURED}、{BATCH}，"
        f"或带 ce-* 头的 {JSON}（二进制模式）",
        f"unsupported content type {content_type or '(none)'}: use {STRUCTURED}, {BATCH}, "
        f"or {JSON} with ce-* headers (binary mode)",
    )


def binary(headers: Mapping[str, str], kind: str, body: bytes) -> bytes:
    """A binary-mode event as a structured envelope."""
    if kind not in (JSON, ""):  # (no Content-Type: no datacontenttype, i.e. JSON data)
        raise BindingError(
            415,
            f"二进制模式的数据须为 {JSON}（收到 {kind}）",
            f"binary mode data must be {JSON} (got {kind})",
        )
    envelope: dict[str, Any] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith("ce-"):
            envelope[lowered[3:]] = value
    envelope["datacontenttype"] = JSON  # (the parameters, e.g. charset=utf-8, are implied)
    envelope["data"] = _json(body)
    return orjson.dumps(envelope)
