"""Deliveries pushed to an organisation's HTTPS endpoint, signed per the Standard Webhooks spec.

``hub credentials webhook ORG --url URL`` registers the endpoint and prints its secret once
(``whsec_…``; the store keeps it, mode 600, to sign with). The gateway reads the organisation's
deliveries through its durable consumer with the SDK, and POSTs each event as a structured
CloudEvent with ``webhook-id`` (the event key: the same on every retry and redelivery),
``webhook-timestamp`` and ``webhook-signature`` (``v1,`` base64 HMAC-SHA256 of
``id.timestamp.body``). A 2xx answer is the receipt; other answers are retried with the hub's
back-off, in place, so that the endpoint sees its events in order; when every retry failed the
SDK's failed receipt brings the event back later, and after ``HUB_MAX_DELIVER`` attempts it is a
dead letter. A gateway killed mid-way leaves the unacknowledged bundles to be delivered again; the
next one waits for them before it pushes anything newer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from nats.aio.client import Client

from hub.identity.authority import write_secret
from schemas.envelope import Event
from schemas.wire import Wire
from subscribers.recipient import Delivery, Recipient

log = logging.getLogger(__name__)

ENDPOINTS_FILE = "webhooks.json"
SECRET_PREFIX = "whsec_"
CONTENT_TYPE = "application/cloudevents+json"
TIMEOUT_S = 10.0
BATCH = 4
REDELIVERY_MARGIN_S = 1.0


@dataclass(frozen=True)
class Endpoint:
    """Where an organisation's deliveries are pushed, and the secret they are signed with."""

    org: str
    url: str
    secret: str  # whsec_ + base64 of the key


def _read(store: Path) -> dict[str, dict[str, str]]:
    path = store / ENDPOINTS_FILE
    loaded: dict[str, dict[str, str]] = (
        json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    )
    return loaded


def register(store: Path, org: str, url: str) -> Endpoint:
    """Register (or replace) ``org``'s endpoint with a new secret."""
    secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
    known = _read(store)
    known[org] = {"url": url, "secret": secret}
    write_secret(store / ENDPOINTS_FILE, json.dumps(known, indent=2) + "\n")
    return Endpoint(org, url, secret)


def remove(store: Path, org: str) -> bool:
    """Stop pushing to ``org`` (its deliveries wait in its consumer); whether it had one."""
    known = _read(store)
    had = known.pop(org, None) is not None
    write_secret(store / ENDPOINTS_FILE, json.dumps(known, indent=2) + "\n")
    return had


def endpoints(store: Path) -> list[Endpoint]:
    """Every registered endpoint."""
    return [Endpoint(org, e["url"], e["secret"]) for org, e in sorted(_read(store).items())]


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header (Standard Webhooks, v1)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class EndpointFailed(Exception):
    """Every attempt of one push failed (the last answer or error is the message)."""


class Pusher:
    """Pushes one organisation's deliveries to its endpoint until stopped."""

    def __init__(
        self,
        nc: Client,
        endpoint: Endpoint,
        wire: Wire,
        client: httpx.AsyncClient,
        backoff_s: tuple[float, ...],
    ) -> None:
        self.endpoint, self.client, self.backoff_s = endpoint, client, backoff_s
        # a few bundles at a time: each is acknowledged soon after its events were pushed
        self.recipient = Recipient(nc, endpoint.org, wire=wire, batch=BATCH)
        self.pushed = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Push until ``stop``.

        Bundles a previous gateway took and never acknowledged (it was killed) come back once
        their ``ack_wait`` has passed, ahead of newer ones; waiting for that first keeps the
        endpoint's events in order.
        """
        wire, org = self.recipient.wire, self.endpoint.org
        info = await self.recipient.js.consumer_info(
            wire.deliveries_stream, wire.delivery_consumer(org)
        )
        if info.num_ack_pending:
            log.info("webhook.waiting_for_redelivery", extra={"org": org})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout((info.config.ack_wait or 0) + REDELIVERY_MARGIN_S):
                    await stop.wait()
        if not stop.is_set():
            await self.recipient.run(self.push, stop)

    async def push(self, event: Event, delivery: Delivery) -> None:
        """POST one event; retried in place with the back-off; raises when every attempt failed."""
        body = event.model_dump_json(exclude_none=True).encode()
        last = ""
        for attempt in range(len(self.backoff_s) + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s[attempt - 1])
            stamp = int(time.time())
            headers = {
                "content-type": CONTENT_TYPE,
                "webhook-id": event.key,
                "webhook-timestamp": str(stamp),
                "webhook-signature": signature(self.endpoint.secret, event.key, stamp, body),
            }
            try:
                answer = await self.client.post(
                    self.endpoint.url, content=body, headers=headers, timeout=TIMEOUT_S
                )
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if 200 <= answer.status_code < 300:
                self.pushed += 1
                return
            last = f"HTTP {answer.status_code}"
        log.warning(
            "webhook.failed", extra={"org": self.endpoint.org, "event": event.key, "last": last}
        )
        raise EndpointFailed(f"{self.endpoint.url}: {last}")
