"""A process of recipients for the benchmarks: the hub's SDK, or raw nats-py pull consumers.

    python -m bench.farm sdk  URL ROOT ORG [ORG ...]
    python -m bench.farm raw  URL STREAM CONSUMER [CONSUMER ...]

Runs until SIGTERM. It sits in a process of its own, as the organisations' systems would, so the
hub (or the raw publisher) and the consumers do not share one Python interpreter.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from nats.js import JetStreamContext

from schemas.envelope import Event
from schemas.wire import Wire
from subscribers.connection import connect
from subscribers.consume import pull_batches
from subscribers.recipient import Delivery, Recipient


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


async def _ack_all(js: JetStreamContext, stream: str, consumer: str, stop: asyncio.Event) -> None:
    sub = await js.pull_subscribe_bind(durable=consumer, stream=stream)
    async for msgs in pull_batches(sub, stop, batch=256):
        for msg in msgs:
            await msg.ack()


async def run_raw(url: str, stream: str, consumers: list[str], stop: asyncio.Event) -> None:
    """Plain durable pull consumers acking each message: the baseline."""
    nc = await connect(url, name="bench-raw-farm")
    try:
        js = nc.jetstream()
        async with asyncio.TaskGroup() as tasks:
            for consumer in consumers:
                tasks.create_task(_ack_all(js, stream, consumer, stop))
    finally:
        await nc.drain()


async def main(argv: list[str]) -> None:
    """Dispatch on the mode."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    mode, url, name, *members = argv
    if mode == "sdk":
        await run_sdk(url, name, members, stop)
    else:
        await run_raw(url, name, members, stop)


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # reconnect notices are not figures
    asyncio.run(main(sys.argv[1:]))
