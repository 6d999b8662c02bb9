"""Deliveries pulled over HTTP, for intranets that accept no inbound calls.

``GET /v1/deliveries`` long-polls the organisation's own durable consumer (as the SDK does) and
answers the bundles it fetched; ``POST /v1/receipts`` settles one of them: every event of the
bundle is acknowledged except those the system names as failed (they come back after the hub's
back-off). The receipts are the SDK's own, signed with the organisation's key, so the ledger and
the guarantees are those of the NATS SDK: a bundle without receipts within ``HUB_ACK_WAIT_S``
(or after a gateway restart) is delivered again, and repeats of acknowledged events are
acknowledged again without reaching the system twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from schemas.delivery import DeliveryBundle
from schemas.envelope import DELIVERED, Event
from schemas.wire import Wire
from subscribers.recipient import Delivery, Recipient, signed_by_hub

log = logging.getLogger(__name__)

MAX_WAIT_S = 30.0
MAX_BUNDLES = 100
NO_WAIT_S = 0.05


class ReportedFailure(Exception):
    """The organisation's system said it could not take an event (its reason is the message)."""


class Pulling:
    """One organisation's deliveries as HTTP reads them; fetched bundles wait for receipts."""

    def __init__(self, nc: Client, org: str, wire: Wire, timeout_s: float) -> None:
        self.org = org
        self.recipient = Recipient(nc, org, wire=wire, timeout_s=timeout_s, exclusive=False)
        self._sub: JetStreamContext.PullSubscription | None = None
        self._waiting: dict[str, Msg] = {}
        self._fetching = asyncio.Lock()

    async def fetch(self, wait_s: float, most: int) -> list[dict[str, Any]]:
        """Up to ``most`` bundles, waiting up to ``wait_s`` for the first."""
        async with self._fetching:
            if self._sub is None:
                self._sub = await self.recipient.prepare()
            try:
                # wait=0 asks what is there now: nats-py needs a positive timeout for that
                msgs = await self._sub.fetch(most, timeout=max(wait_s, NO_WAIT_S))
            except TimeoutError:
                return []
        shown = []
        for msg in msgs:
            if not signed_by_hub(self.recipient.hub_key or "", msg):
                await self.recipient.process([msg], _never)  # refused, logged, counted
                continue
            bundle = DeliveryBundle.model_validate_json(msg.data, context=DELIVERED)
            delivery_id = str(msg.metadata.sequence.stream)
            self._waiting[delivery_id] = msg
            shown.append(
                {
                    "delivery_id": delivery_id,
                    "attempt": msg.metadata.num_delivered,
                    "events": [
                        {
                            "key": item.key,
                            "published_at": item.published_at.isoformat(),
                            "redacted": item.redacted,
                            "event": item.event.model_dump(mode="json", exclude_none=True),
                        }
                        for item in bundle.items
                    ],
                }
            )
        return shown

    async def settle(self, delivery_id: str, failed: dict[str, str]) -> int | None:
        """Send the receipts of a fetched bundle; how many events it held (None: not waiting)."""
        msg = self._waiting.pop(delivery_id, None)
        if msg is None:
            return None

        async def outcome(event: Event, delivery: Delivery) -> None:
            if event.key in failed:
                raise ReportedFailure(failed[event.key] or "—")

        await self.recipient.process([msg], outcome)
        return len(DeliveryBundle.model_validate_json(msg.data, context=DELIVERED).items)


async def _never(event: Event, delivery: Delivery) -> None:
    raise AssertionError("a refused bundle never reaches a handler")
