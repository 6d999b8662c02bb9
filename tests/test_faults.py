"""Nothing acknowledged is lost: real crashes of the broker, the hub and the recipients.

Each test runs its own nats-server (kill -9 and restart on the same store), is bounded in time, and
prints the seed of its random crash point.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import nats.errors
import pytest
from nats.aio.client import Client

from hub.config import HubSettings
from hub.errors import HubUnavailable
from hub.natsd import NatsServer
from hub.registry import OrgKind, Registry
from hub.samples import sample_event
from schemas.envelope import Event
from subscribers.connection import connect
from subscribers.publisher import Publisher
from subscribers.recipient import Delivery
from tests.conftest import hub_running
from tests.helpers import eventually, receiving

pytestmark = pytest.mark.connected

PUBLISHER = "renqiu-scjg"
EVENTS = 10_000


def twenty_recipients(registry: Registry) -> list[str]:
    """Every township and street of Renqiu (19) and one department: 20 recipients."""
    townships = [
        o.id for o in registry.members("renqiu") if o.kind in (OrgKind.TOWNSHIP, OrgKind.STREET)
    ]
    return [*townships, "renqiu-zjj"]


def fault_settings(server: NatsServer, tmp_path: Path, **overrides: object) -> HubSettings:
    base: dict[str, object] = {
        "nats_url": server.url,
        "data_dir": tmp_path,
        "ack_wait_s": 5.0,
        "max_deliver": 20,
        "backoff_s": (0.2, 0.5),
        "request_timeout_s": 2.0,
        "dedup_window_s": 3600.0,
    }
    return HubSettings(**(base | overrides))  # type: ignore[arg-type]


@asynccontextmanager
async def own_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Tally:
    """What the recipients' handlers saw: (event, recipient) → times handed over."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()

    async def handle(self, event: Event, delivery: Delivery) -> None:
        self.seen[(event.key, delivery.recipient)] += 1

    def complete(self, keys: set[str], recipients: list[str]) -> bool:
        return all((key, org) in self.seen for key in keys for org in recipients)


async def publish_all(
    nc: Client,
    settings: HubSettings,
    recipients: list[str],
    count: int,
    on_accepted: Callable[[int], Awaitable[None]],
) -> set[str]:
    """Publish ``count`` events, resending each until the hub accepts it (same id each time)."""
    publisher = Publisher(nc, PUBLISHER, wire=settings.wire, timeout_s=2.0, retries=0)
    accepted: set[str] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    now = datetime.now(UTC)

    async def worker() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            event = sample_event("other", PUBLISHER, now, n, recipients=tuple(recipients))
            while True:
                try:
                    reply = await publisher.publish(event)
                    break
                except HubUnavailable:
                    await asyncio.sleep(0.2)  # unanswered: send the same event again
            accepted.add(f"{reply.source}/{reply.id}")
            await on_accepted(len(accepted))

    async with asyncio.TaskGroup() as tasks:
        for _ in range(16):
            tasks.create_task(worker())
    return accepted


async def test_killing_the_broker_mid_stream_loses_no_accepted_event(
    tmp_path: Path, registry: Registry
) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    kill_at = random.Random(seed).randint(EVENTS // 10, EVENTS * 9 // 10)
    print(f"seed {seed}: kill -9 nats-server after {kill_at} accepted events")
    recipients = twenty_recipients(registry)
    tally = Tally()
    async with own_server(tmp_path) as server:
        settings = fault_settings(server, tmp_path)
        killed = asyncio.Event()

        async def maybe_kill(accepted: int) -> None:
            if accepted >= kill_at and not killed.is_set():
                killed.set()
                await server.kill()
                await asyncio.sleep(0.5)
                await server.start()  # same port, same store

        async with hub_running(settings, registry):
            nc = await connect(server.url, name="fault-test")
            try:
                async with receiving(nc, settings, recipients, handler=tally.handle):
                    keys = await asyncio.wait_for(
                        publish_all(nc, settings, recipients, EVENTS, maybe_kill), timeout=300
                    )
                    await eventually(lambda: tally.complete(keys, recipients), within=300)
            finally:
                await nc.close()
    assert killed.is_set()
    assert len(keys) == EVENTS
    assert set(tally.seen) == {(k, org) for k in keys for org in recipients}  # 0 lost
    assert max(tally.seen.values()) == 1  # redeliveries absorbed: each handled once


async def test_killing_the_hub_process_mid_stream_loses_no_accepted_event(
    tmp_path: Path, registry: Registry
) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    kill_at = random.Random(seed).randint(EVENTS // 10, EVENTS * 9 // 10)
    print(f"seed {seed}: kill -9 the hub process after {kill_at} accepted events")
    recipients = twenty_recipients(registry)
    tally = Tally()
    async with own_server(tmp_path) as server:
        settings = fault_settings(server, tmp_path)
        env = {
            **os.environ,
            "HUB_NATS_URL": server.url,
            "HUB_DATA_DIR": str(tmp_path),
            "HUB_LOG_LEVEL": "WARNING",
        }
        hub_bin = str(Path(sys.executable).parent / "hub")

        async def start_hub() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(hub_bin, "serve", env=env)

        process = await start_hub()
        killed = asyncio.Event()

        async def maybe_kill(accepted: int) -> None:
            nonlocal process
            if accepted >= kill_at and not killed.is_set():
                killed.set()
                process.send_signal(signal.SIGKILL)
                await process.wait()
                process = await start_hub()

        nc = await connect(server.url, name="fault-test")
        try:
            await eventually(lambda: _hub_is_up(nc, settings), within=30)
            async with receiving(nc, settings, recipients, handler=tally.handle):
                keys = await asyncio.wait_for(
                    publish_all(nc, settings, recipients, EVENTS, maybe_kill), timeout=300
                )
                await eventually(lambda: tally.complete(keys, recipients), within=300)
        finally:
            await nc.close()
            process.send_signal(signal.SIGTERM)
            await process.wait()
    assert killed.is_set()
    assert set(tally.seen) == {(k, org) for k in keys for org in recipients}
    assert max(tally.seen.values()) == 1


async def _hub_is_up(nc: Client, settings: HubSettings) -> bool:
    try:
        await nc.jetstream().consumer_info(settings.wire.deliveries_stream, "deliver-renqiu-zjj")
    except (nats.errors.Error, TimeoutError):  # not created yet: keep waiting
        return False
    return True
