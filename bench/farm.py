"""A process of recipients for the benchmarks: the hub's SDK, or raw nats-py pull consumers.

    python -m bench.farm sdk  URL ROOT ORG [ORG ...]
    python -m bench.farm raw  URL STREAM CONSUMER [CONSUMER ...]

Runs until SIGTERM. Each organisation has a connection of its own. Its credentials file
``BENCH_CREDENTIALS_DIR/ORG.creds`` always gives the SDK the hub's key (to check bundles) and the
organisation's seed (to sign receipts); the connection carries it unless ``BENCH_ANONYMOUS=1`` (an
open server). The raw consumers share one connection, with ``BENCH_CREDENTIALS`` when set;
``BENCH_TLS_CA`` is the CA of a TLS server. In raw mode, messages
with a ``Bench-Sent`` header (seconds since the epoch) have their publish-to-acknowledgement lag
recorded; with ``BENCH_LAGS=FILE`` the lags (ms) are written there as JSON on exit. It sits in a
process of its own, as the organisations' systems would, so the hub (or the raw publisher) and the
consumers do not share one Python interpreter.
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

from nats.aio.client import Client
from nats.js import JetStreamContext

from schemas.envelope import Event
from schemas.wire import Wire
from subscribers.connection import connect
from subscribers.consume import READER_IDLE_WAIT_S, pull_batches
from subscribers.credentials import read_credentials, seed_of
from subscribers.recipient import Delivery, Recipient
from subscribers.signing import NkeySigner

SENT_HEADER = "Bench-Sent"
OPENING = 32  # connections being opened at once (2,000 organisations start in one process)


async def _nothing(event: Event, delivery: Delivery) -> None:
    """The recipient's own work is not what is measured."""


def _env_path(variable: str) -> Path | None:
    found = os.environ.get(variable)
    return Path(found) if found else None


def _credentials_of(org: str) -> Path:
    folder = _env_path("BENCH_CREDENTIALS_DIR")
    if folder is None:
        raise SystemExit("BENCH_CREDENTIALS_DIR: the SDK needs each organisation's credentials")
    return folder / f"{org}.creds"


async def _connect_as(url: str, org: str, opening: asyncio.Semaphore) -> Client:
    anonymous = os.environ.get("BENCH_ANONYMOUS") == "1"
    async with opening:
        return await connect(
            url,
            name=f"bench-farm-{org}",
            credentials=None if anonymous else _credentials_of(org),
            tls_ca=_env_path("BENCH_TLS_CA"),
        )


def _recipient(nc: Client, org: str, root: str) -> Recipient:
    """The SDK as ``org``: its keys come from its credentials file, even when anonymous."""
    held = read_credentials(_credentials_of(org))
    signer = NkeySigner(seed_of(held.path))
    return Recipient(nc, org, wire=Wire(root), batch=256, hub_key=held.hub_key, signer=signer)


async def run_sdk(url: str, root: str, orgs: list[str], stop: asyncio.Event) -> None:
    """Every org, on its own connection, reads its deliveries through the SDK and sends receipts."""
    opening = asyncio.Semaphore(OPENING)
    connections = await asyncio.gather(*(_connect_as(url, org, opening) for org in orgs))
    try:
        async with asyncio.TaskGroup() as tasks:
            for org, nc in zip(orgs, connections, strict=True):
                tasks.create_task(_recipient(nc, org, root).run(_nothing, stop))
    finally:
        await asyncio.gather(*(nc.drain() for nc in connections))


async def _ack_all(
    js: JetStreamContext, stream: str, consumer: str, stop: asyncio.Event, lags: list[float]
) -> None:
    sub = await js.pull_subscribe_bind(durable=consumer, stream=stream)
    # renewed as the SDK renews an organisation's reader, so that both pay the same idle cost
    async for msgs in pull_batches(sub, stop, batch=256, idle_wait_s=READER_IDLE_WAIT_S):
        for msg in msgs:
            await msg.ack()
            if sent := (msg.headers or {}).get(SENT_HEADER):
                lags.append((time.time() - float(sent)) * 1000)


async def run_raw(url: str, stream: str, consumers: list[str], stop: asyncio.Event) -> list[float]:
    """Plain durable pull consumers acking each message: the baseline; returns the lags (ms)."""
    nc = await connect(
        url,
        name="bench-raw-farm",
        credentials=_env_path("BENCH_CREDENTIALS"),
        tls_ca=_env_path("BENCH_TLS_CA"),
    )
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
