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
from tests.helpers import eventually, receiving

pytestmark = [pytest.mark.connected, pytest.mark.timeout(600)]

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


class HubProcess:
    """``hub serve`` as its own process (as in production), restartable."""

    def __init__(self, server: NatsServer, tmp_path: Path) -> None:
        self.env = {
            **os.environ,
            "HUB_NATS_URL": server.url,
            "HUB_DATA_DIR": str(tmp_path),
            "HUB_LOG_LEVEL": "WARNING",
            "HUB_ACK_WAIT_S": "5",
            "HUB_REQUEST_TIMEOUT_S": "2",
            "HUB_DEDUP_WINDOW_S": "3600",
        }
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "hub"), "serve", env=self.env
        )

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), timeout=30)


@asynccontextmanager
async def hub_process(server: NatsServer, tmp_path: Path) -> AsyncIterator[HubProcess]:
    hub = HubProcess(server, tmp_path)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


async def crash_scenario(
    tmp_path: Path, registry: Registry, crash: Callable[[NatsServer, HubProcess], Awaitable[None]]
) -> None:
    """10,000 events to 20 recipients; ``crash`` strikes once at a random point."""
    seed = int.from_bytes(os.urandom(4), "big")
    crash_at = random.Random(seed).randint(EVENTS // 10, EVENTS * 9 // 10)
    print(f"seed {seed}: the crash strikes after {crash_at} accepted events")
    recipients = twenty_recipients(registry)
    tally = Tally()
    crashed = asyncio.Event()
    async with own_server(tmp_path) as server, hub_process(server, tmp_path) as hub:
        settings = fault_settings(server, tmp_path)

        async def maybe_crash(accepted: int) -> None:
            if accepted >= crash_at and not crashed.is_set():
                crashed.set()
                await crash(server, hub)

        nc = await connect(server.url, name="fault-test")
        try:
            await eventually(lambda: _hub_is_up(nc, settings, recipients), within=30)
            async with receiving(nc, settings, recipients, handler=tally.handle):
                keys = await asyncio.wait_for(
                    publish_all(nc, settings, recipients, EVENTS, maybe_crash), timeout=300
                )
                await eventually(lambda: tally.complete(keys, recipients), within=300)
        finally:
            await nc.close()
    assert crashed.is_set()
    assert len(keys) == EVENTS
    assert set(tally.seen) == {(k, org) for k in keys for org in recipients}  # 0 lost
    assert max(tally.seen.values()) == 1  # redeliveries absorbed: each handled once


async def test_killing_the_broker_mid_stream_loses_no_accepted_event(
    tmp_path: Path, registry: Registry
) -> None:
    async def kill_broker(server: NatsServer, hub: HubProcess) -> None:
        await server.kill()  # kill -9
        await asyncio.sleep(0.5)
        await server.start()  # same port, same store

    await crash_scenario(tmp_path, registry, kill_broker)


async def test_killing_the_hub_process_mid_stream_loses_no_accepted_event(
    tmp_path: Path, registry: Registry
) -> None:
    async def kill_hub(server: NatsServer, hub: HubProcess) -> None:
        await hub.kill()  # kill -9
        await hub.start()

    await crash_scenario(tmp_path, registry, kill_hub)


async def _hub_is_up(nc: Client, settings: HubSettings, recipients: list[str]) -> bool:
    """The hub has created every recipient's consumer."""
    js = nc.jetstream()
    try:
        for org in recipients:
            await js.consumer_info(
                settings.wire.deliveries_stream, settings.wire.delivery_consumer(org)
            )
    except (nats.errors.Error, TimeoutError):  # not created yet: keep waiting
        return False
    return True
