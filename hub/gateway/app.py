"""``POST /v1/events``: an organisation's system publishes over HTTP, answered as the hub answers.

Every request carries the organisation's bearer token (``hub credentials token ORG``); the gateway
publishes with that organisation's own NATS credentials, so the server's permissions apply as to
any of its systems: the gateway is a client, never a way around them. An event naming another
organisation as its source is refused before it reaches the hub.

Answers: 201 accepted (with the stored sequence), 422 rejected (every field error, in Chinese and
English, the message kept in quarantine), 503 unavailable (``Retry-After``); a batch answers 200
with one result per event, in order. 400, 401, 403, 413 and 415 say what is wrong with the request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from nats.aio.client import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.config import HubSettings
from hub.gateway.binding import MAX_BATCH, BindingError, events_of
from hub.gateway.tokens import Tokens
from subscribers.errors import EventRejected, HubUnavailable
from subscribers.publisher import Publisher

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
Connect = Callable[[str], Awaitable[Client]]


class Publishers:
    """One NATS connection and publisher per organisation, opened on its first request."""

    def __init__(self, settings: HubSettings, connect: Connect) -> None:
        self.settings, self.connect = settings, connect
        self._open: dict[str, Publisher] = {}
        self._lock = asyncio.Lock()

    async def of(self, org: str) -> Publisher:
        """The organisation's publisher (its own identity)."""
        async with self._lock:
            if org not in self._open:
                nc = await self.connect(org)
                self._open[org] = Publisher(
                    nc,
                    org,
                    wire=self.settings.wire,
                    timeout_s=self.settings.request_timeout_s,
                    retries=1,
                )
            return self._open[org]

    async def close(self) -> None:
        """Close every connection."""
        for publisher in self._open.values():
            await publisher.nc.drain()
        self._open.clear()


def _answer(status: int, body: dict[str, Any], **headers: str) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers or None)


def _refused(status: int, zh: str, en: str, **headers: str) -> JSONResponse:
    code = {401: "unauthorized", 403: "forbidden", 413: "too_large"}.get(status, "bad_request")
    return _answer(status, {"status": code, "message_zh": zh, "message_en": en}, **headers)


def gateway_app(settings: HubSettings, tokens: Tokens, publishers: Publishers) -> Starlette:
    """The gateway's ASGI application."""
    single_limit = settings.max_event_bytes
    batch_limit = settings.max_event_bytes * MAX_BATCH

    async def one(org: str, envelope: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            source = orjson.loads(envelope).get("source")
        except (orjson.JSONDecodeError, AttributeError):
            source = None
        if source is not None and source != org:
            return (
                403,
                {
                    "status": "forbidden",
                    "message_zh": f"本凭据属于 {org}，不能以 {source} 的名义发布",
                    "message_en": f"this credential is {org}'s: it cannot publish as {source}",
                },
                {},
            )
        try:
            publisher = await publishers.of(org)
            accepted = await publisher.publish(envelope)
        except EventRejected as exc:
            body = {
                "status": "rejected",
                "errors": [e.model_dump() for e in exc.errors],
                "quarantine_seq": exc.quarantine_seq,
            }
            return 422, body, {}
        except HubUnavailable as exc:
            log.warning("gateway.unavailable", extra={"org": org, "reason": exc.reason})
            body = {"status": "unavailable", "reason": exc.reason, "retry_after_s": RETRY_AFTER_S}
            return 503, body, {"Retry-After": str(RETRY_AFTER_S)}
        return 201, accepted.model_dump(mode="json"), {}

    async def events(request: Request) -> Response:
        org = _bearer(request, tokens)
        if org is None:
            return _refused(
                401,
                "缺少或无效的凭据：请在 Authorization 头中携带本单位的令牌（Bearer）",
                "missing or invalid credential: send your organisation's token as a Bearer token",
                **{"WWW-Authenticate": 'Bearer realm="zhifa-hub"'},
            )
        content_type = request.headers.get("content-type", "")
        limit = batch_limit if "batch" in content_type else single_limit
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _too_large(limit)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _too_large(limit)
        try:
            envelopes, batch = events_of(content_type, request.headers, bytes(body))
        except BindingError as exc:
            return _answer(exc.status, exc.body())
        if not batch:
            status, answer, headers = await one(org, envelopes[0])
            return _answer(status, answer, **headers)
        results = []
        for envelope in envelopes:
            status, answer, _ = await one(org, envelope)
            results.append(answer | {"http_status": status})
        return _answer(200, {"results": results})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/events", events, methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )


def _bearer(request: Request, tokens: Tokens) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return tokens.org_of(token.strip())


def _too_large(limit: int) -> JSONResponse:
    return _refused(
        413,
        f"请求体超过 {limit} 字节的上限",
        f"the body is larger than the limit of {limit} bytes",
    )
