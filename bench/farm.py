"""A process of recipients for the benchmarks: the hub's SDK, or raw nats-py pull consumers.

    python -m bench.farm sdk  URL ROOT ORG [ORG ...]
    python -m bench.farm raw  URL STREAM CONSUMER [CONSUMER ...]

Runs until SIGTERM. In raw mode, messages with a ``Bench-Sent`` header (seconds since the epoch)
have their publish-to-acknowledgement lag recorded; with ``BENCH_LAGS=FILE`` the lags (ms) are
written there as JSON on exit. It sits in a process of its own, as the organisations' systems
would, so the hub (or the raw publisher) and the consumers do not share one Python interpreter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from nats.js import JetStreamContext

from schemas.envelope import Event
from schemas.wire import Wire
from subscribers.connection import connect
from subscribers.consume import pull_batches
from subscribers.recipient import Delivery, Recipient

SENT_HEADER = "Bench-Sent"


async def _nothing(event: Event, delivery: Delivery) -> None:
    """The recipient's own work is not what is measured."""


async def run_sdk(url: str, root: str, orgs: list[str], stop: asyncio.Event) -> None:
    """Every org reads its deliveries through the SDK and sends receipts."""
    nc = await connect(url, name="bench-farm")
    try:
        async with asyncio.TaskGroup() as tasks:
            for org in orgs:
                recipient = Recipient(nc, org, wire=Wire(root), batch=256)
                tasks.create_task(recipient.run(_nothing, stop))
    finally:
        await nc.drain()


async def _ack_all(
    js: JetStreamContext, stream: str, consumer: str, stop: asyncio.Event, lags: list[float]
) -> None:
    sub = await js.pull_subscribe_bind(durable=consumer, stream=stream)
    async for msgs in pull_batches(sub, stop, batch=256):
        for msg in msgs:
            await msg.ack()
            if sent := (msg.headers or {}).get(SENT_HEADER):
                lags.append((time.time() - float(sent)) * 1000)


async def run_raw(url: str, stream: str, consumers: list[str], stop: asyncio.Event) -> list[float]:
    """Plain durable pull consumers acking each message: the baseline; returns the lags (ms)."""
    nc = await connect(url, name="bench-raw-farm")
    lags: list[float] = []
    try:
        js = nc.jetstream()
        async with asyncio.TaskGroup() as tasks:
            for consumer in consumers:
                tasks.create_task(_ack_all(js, stream, consumer, stop, lags))
    finally:
        await nc.drain()
    return lags


async def main(argv: list[str]) -> list[float]:
    """Dispatch on the mode; returns the raw consumers' lags (none for the SDK)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    mode, url, name, *members = argv
    if mode == "sdk":
        await run_sdk(url, name, members, stop)
        return []
    return await run_raw(url, name, members, stop)


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # reconnect notices are not figures
    recorded = asyncio.run(main(sys.argv[1:]))
    if path := os.environ.get("BENCH_LAGS"):
        Path(path).write_text(json.dumps(recorded), encoding="utf-8")
