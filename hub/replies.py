"""Answering NATS requests: replies with headers, and never a silent failure."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from schemas.wire import HEADER_ANSWER_ERROR

log = logging.getLogger(__name__)

INTERNAL_ERROR_ZH = "枢纽内部错误，已记录日志；请稍后重试"


async def reply_with(msg: Msg, body: bytes, headers: dict[str, str] | None = None) -> None:
    """Reply to a request, with headers (``Msg.respond`` takes none)."""
    await msg._client.publish(msg.reply, body, headers=headers)


def header_text(text: str) -> str:
    """A header value is one line of ASCII: the text travels JSON-escaped."""
    return json.dumps(text, ensure_ascii=True)


def answering(handler: Callable[[Msg], Awaitable[None]]) -> Callable[[Msg], Awaitable[None]]:
    """A request handler that answers "internal error" (and logs why) instead of going silent."""

    async def handle(msg: Msg) -> None:
        try:
            await handler(msg)
        except Exception:
            log.exception("endpoint.failed", extra={"subject": msg.subject})
            if msg.reply:
                await reply_with(msg, b"", {HEADER_ANSWER_ERROR: header_text(INTERNAL_ERROR_ZH)})

    return handle
