"""The gateway's HTTP API: publishing (``POST /v1/events``) and pulled deliveries.

``POST /v1/events``: an organisation's system publishes over HTTP, answered as the hub answers.

Every request carries the organisation's bearer token (``hub credentials token ORG``), or, with
mutual TLS, comes over a connection whose client certificate names it (``hub.gateway.mtls``; a token
sent as well must be the same organisation's); the gateway publishes with that organisation's own
NATS credentials, so the server's permissions apply as to any of its systems: the gateway is a
client, never a way around them. An event naming another organisation as its source is refused
before it reaches the hub.

Answers: 201 accepted (with the stored sequence), 422 rejected (every field error, in Chinese and
English, the message kept in quarantine), 503 unavailable (``Retry-After``); a batch answers 200
with one result per event, in order. 400, 401, 403, 413 and 415 say what is wrong with the request.

``GET /v1/deliveries?wait=S&max=N`` and ``POST /v1/receipts``: see ``hub.gateway.pull``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
import orjson
from nats.aio.client import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.config import HubSettings
from hub.gateway.binding import MAX_BATCH, BindingError, events_of
from hub.gateway.mtls import certificate_org
from hub.gateway.pull import MAX_BUNDLES, MAX_WAIT_S, Pulling
from hub.gateway.tokens import Tokens
from hub.identity import org_credentials_path
from subscribers.errors import EventRejected, HubUnavailable
from subscribers.publisher import Publisher

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
Connect = Callable[[str], Awaitable[Client]]


class Sessions:
    """Each organisation's NATS connection (opened on its first request) and what uses it."""

    def __init__(self, settings: HubSettings, connect: Connect) -> None:
        self.settings, self.connect = settings, connect
        self._connections: dict[str, Client] = {}
        self._publishers: dict[str, Publisher] = {}
        self._pulling: dict[str, Pulling] = {}
        self._lock = asyncio.Lock()

    async def _nc(self, org: str) -> Client:
        if org not in self._connections:
            self._connections[org] = await self.connect(org)
        return self._connections[org]

    async def publisher(self, org: str) -> Publisher:
        """The organisation's publisher (its own identity)."""
        async with self._lock:
            if org not in self._publishers:
                self._publishers[org] = Publisher(
                    await self._nc(org),
                    org,
                    wire=self.settings.wire,
                    timeout_s=self.settings.publish_timeout_s,
                    retries=1,
                )
            return self._publishers[org]

    async def pulling(self, org: str) -> Pulling:
        """The organisation's deliveries, as HTTP pulls them."""
        async with self._lock:
            if org not in self._pulling:
                nc = await self._nc(org)
                wire, timeout = self.settings.wire, self.settings.request_timeout_s
                self._pulling[org] = Pulling(nc, org, wire, timeout)
            return self._pulling[org]

    async def close(self) -> None:
        """Close every connection (fetched bundles without receipts come back later).

        Not ``drain``: it waits for every subscription's queue to empty, and a pull subscription
        keeps the status message of an expired request nobody reads: 30 s (its timeout) a close.
        """
        for nc in self._connections.values():
            try:
                await nc.flush()  # what was sent has reached the server
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("gateway.flush_failed", extra={"error": repr(exc)})
            await nc.close()
        self._connections.clear()


def _answer(status: int, body: dict[str, Any], **headers: str) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers or None)


def _refused(status: int, zh: str, en: str, **headers: str) -> JSONResponse:
    code = {401: "unauthorized", 403: "forbidden", 409: "conflict", 413: "too_large"}.get(
        status, "bad_request"
    )
    return _answer(status, {"status": code, "message_zh": zh, "message_en": en}, **headers)


def gateway_app(settings: HubSettings, tokens: Tokens, sessions: Sessions) -> Starlette:
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
            publisher = await sessions.publisher(org)
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
        org = _caller(request, tokens, settings)
        if isinstance(org, Response):
            return org
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

    async def deliveries(request: Request) -> Response:
        org = _caller(request, tokens, settings)
        if isinstance(org, Response):
            return org
        try:
            wait_s = min(float(request.query_params.get("wait", "20")), MAX_WAIT_S)
            most = min(int(request.query_params.get("max", "10")), MAX_BUNDLES)
        except ValueError:
            return _refused(400, "wait 须为秒数，max 须为整数", "wait takes seconds, max a count")
        if wait_s < 0 or most < 1:
            return _refused(400, "wait 不得为负，max 至少为 1", "wait >= 0 and max >= 1")
        try:
            fetched = await (await sessions.pulling(org)).fetch(wait_s, most)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("gateway.pull_unavailable", extra={"org": org, "error": repr(exc)})
            return _answer(
                503,
                {"status": "unavailable", "reason": repr(exc), "retry_after_s": RETRY_AFTER_S},
                **{"Retry-After": str(RETRY_AFTER_S)},
            )
        return _answer(200, {"deliveries": fetched})

    async def receipts(request: Request) -> Response:
        org = _caller(request, tokens, settings)
        if isinstance(org, Response):
            return org
        try:
            posted = orjson.loads(await request.body())
            delivery_id = str(posted["delivery_id"])
            failed = {str(k): str(v) for k, v in (posted.get("failed") or {}).items()}
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return _refused(
                400,
                '请求体须为 {"delivery_id": "…", "failed": {"事件键": "原因"}}（failed 可省略）',
                'the body must be {"delivery_id": "…", "failed": {"event key": "reason"}}',
            )
        settled = await (await sessions.pulling(org)).settle(delivery_id, failed)
        if settled is None:
            return _refused(
                409,
                f"投递 {delivery_id} 不在待回执之列（已回执，或已超时将重投）",
                f"delivery {delivery_id} is not waiting for receipts (settled, or it will come "
                "again)",
            )
        body = {"status": "recorded", "acknowledged": settled - len(failed), "failed": len(failed)}
        return _answer(200, body)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/events", events, methods=["POST"]),
            Route("/v1/deliveries", deliveries, methods=["GET"]),
            Route("/v1/receipts", receipts, methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )


def _caller(request: Request, tokens: Tokens, settings: HubSettings) -> str | Response:
    """The organisation a request acts as, or the refusal to answer."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else ""
    by_token = tokens.org_of(bearer) if bearer else None
    by_certificate = certificate_org(request.scope)
    if by_certificate is None:
        return by_token if by_token is not None else _unauthorized()
    if not org_credentials_path(settings, by_certificate).exists():
        return _refused(
            403,
            f"客户端证书所载的 {by_certificate} 不是网关凭据库中有 NATS 凭据的单位",
            f"the client certificate names {by_certificate}, which has no NATS credentials in"
            " the gateway's store",
        )
    if by_token is not None and by_token != by_certificate:
        return _refused(
            403,
            f"令牌属于 {by_token}，客户端证书属于 {by_certificate}：两者须为同一单位",
            f"the token is {by_token}'s and the client certificate {by_certificate}'s:"
            " they must be the same organisation's",
        )
    return by_certificate


def _unauthorized() -> JSONResponse:
    return _refused(
        401,
        "缺少或无效的凭据：请在 Authorization 头中携带本单位的令牌（Bearer）",
        "missing or invalid credential: send your organisation's token as a Bearer token",
        **{"WWW-Authenticate": 'Bearer realm="zhifa-hub"'},
    )


def _too_large(limit: int) -> JSONResponse:
    return _refused(
        413,
        f"请求体超过 {limit} 字节的上限",
        f"the body is larger than the limit of {limit} bytes",
    )
