"""The ingest endpoint: every publisher's ``<root>.ingest.<org>`` requests, answered by ``Ingest``.

A queue group on the hub's NATS connection, so every hub process answers a share. Requests are
answered concurrently (up to ``WORKERS`` at once, each waiting for its JetStream write), straight
from nats-py: FastStream's per-message pipeline (decoding, middlewares, dependency injection) cost
about a tenth of the hub's event loop on this path and added nothing the hub uses.
"""

from __future__ import annotations

import asyncio
import logging
import time

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from hub.ingest import Ingest
from hub.metrics import HubMetrics
from hub.replies import answering
from schemas.wire import Wire

log = logging.getLogger(__name__)

WORKERS = 64  # concurrent ingest requests; each waits for a JetStream write


class IngestEndpoint:
    """Takes ingest requests, answers each, and on close finishes the ones in hand."""

    def __init__(self, nc: Client, wire: Wire, ingest: Ingest, metrics: HubMetrics) -> None:
        self.nc, self.wire, self.ingest, self.metrics = nc, wire, ingest, metrics
        self._slots = asyncio.Semaphore(WORKERS)
        self._answering: set[asyncio.Task[None]] = set()
        self._sub: Subscription | None = None

    async def open(self) -> None:
        """Join the queue group."""
        self._sub = await self.nc.subscribe(
            self.wire.ingest_any, queue=self.wire.ingest_queue, cb=self._take
        )

    async def close(self) -> None:
        """Take no more requests; answer those in hand."""
        if self._sub is not None:
            await self._sub.unsubscribe()
        if self._answering:
            await asyncio.wait(set(self._answering))

    async def _take(self, msg: Msg) -> None:
        await self._slots.acquire()  # the subscription waits: nats-py holds what comes meanwhile
        task = asyncio.create_task(self._answer(msg))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, msg: Msg) -> None:
        started = time.perf_counter()
        try:
            await answering(self._respond)(msg)
        finally:
            self._slots.release()
            self.metrics.ingest_seconds.observe(time.perf_counter() - started)

    async def _respond(self, msg: Msg) -> None:
        body = await self.ingest.answer(msg.subject, msg.data)
        if msg.reply:
            await msg.respond(body)
