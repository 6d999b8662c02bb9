"""The recipients' process for the code before the signed record (commit 3462bfe), for bench.audit.

    PYTHONSAFEPATH=1 PYTHONPATH=SHIM:TREE python -m bench.farm sdk URL ROOT ORG [ORG ...]

``bench.audit`` copies this file to ``SHIM/bench/farm.py`` so that ``bench.suite`` starts it as
it starts ``bench.farm``, while ``subscribers`` and ``schemas`` come from ``TREE``, a checkout of
3462bfe: that SDK neither checks the hub's signature on bundles nor signs its receipts. As in
``bench.farm``, each organisation has a connection of its own, with its credentials file
``BENCH_CREDENTIALS_DIR/ORG.creds`` (anonymous with ``BENCH_ANONYMOUS=1``), TLS with
``BENCH_TLS_CA``; it runs until SIGTERM. It imports only what both trees have.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from nats.aio.client import Client

from schemas.envelope import Event
from schemas.wire import Wire
from subscribers.connection import connect
from subscribers.recipient import Delivery, Recipient

OPENING = 32  # connections being opened at once, as bench.farm


async def _nothing(event: Event, delivery: Delivery) -> None:
    """The recipient's own work is not what is measured."""


def _env_path(variable: str) -> Path | None:
    found = os.environ.get(variable)
    return Path(found) if found else None


async def _connect_as(url: str, org: str, opening: asyncio.Semaphore) -> Client:
    folder = _env_path("BENCH_CREDENTIALS_DIR")
    anonymous = os.environ.get("BENCH_ANONYMOUS") == "1"
    async with opening:
        return await connect(
            url,
            name=f"bench-farm-{org}",
            credentials=folder / f"{org}.creds" if folder and not anonymous else None,
            tls_ca=_env_path("BENCH_TLS_CA"),
        )


async def run_sdk(url: str, root: str, orgs: list[str], stop: asyncio.Event) -> None:
    """Every org, on its own connection, reads its deliveries through the old SDK."""
    opening = asyncio.Semaphore(OPENING)
    connections = await asyncio.gather(*(_connect_as(url, org, opening) for org in orgs))
    try:
        async with asyncio.TaskGroup() as tasks:
            for org, nc in zip(orgs, connections, strict=True):
                recipient = Recipient(nc, org, wire=Wire(root), batch=256)
                tasks.create_task(recipient.run(_nothing, stop))
    finally:
        await asyncio.gather(*(nc.drain() for nc in connections))


async def main(argv: list[str]) -> None:
    """``sdk URL ROOT ORG …`` (the raw mode is not needed: raw nats-py has no SDK)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    mode, url, root, *orgs = argv
    if mode != "sdk":
        raise SystemExit(f"{mode}: only the sdk mode runs the code before the signed record")
    await run_sdk(url, root, orgs, stop)


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # reconnect notices are not figures
    asyncio.run(main(sys.argv[1:]))
