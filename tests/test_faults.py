"""Nothing acknowledged is lost: real crashes of the broker, the hub and the recipients.

Each test runs its own nats-server (kill -9 and restart on the same store), is bounded in time, and
prints the seed of its random crash point.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from nats.js import JetStreamContext

from hub.audit.trust import RecordTrust
from hub.config import HubSettings
from hub.errors import HubUnavailable
from hub.identity import OPS
from hub.ledger import DeliveryState, Ledger
from hub.natsd import NatsCluster, NatsServer
from hub.projection import rebuild
from hub.reconcile import missing_events
from hub.registry import OrgKind, Registry, load_registry
from hub.roles import holder
from hub.samples import sample_event
from hub.service import Hub, running_hub
from hub.timeliness import shanghai_day
from schemas.delivery import DeliveryBundle
from schemas.envelope import DELIVERED, Event
from schemas.wire import Wire
from subscribers.recipient import Delivery
from tests.conftest import (
    JETSTREAM_BYTES,
    UNLIMITED_RATE,
    Orgs,
    acting_as,
    credentials_store,
    hub_running,
    run_seed,
    secured_server,
    trust_of,
)
from tests.helpers import eventually, fanned_out, receipts, receiving, scrape

pytestmark = [pytest.mark.connected, pytest.mark.timeout(600)]

PUBLISHER = "renqiu-scjg"
EVENTS = 10_000


def twenty_recipients(registry: Registry) -> list[str]:
    """Every township and street of Renqiu (19) and one department: 20 recipients."""
    townships = [
        o.id for o in registry.members("renqiu") if o.kind in (OrgKind.TOWNSHIP, OrgKind.STREET)
    ]
    return [*townships, "renqiu-zjj"]


def fault_settings(
    server: NatsServer | NatsCluster, tmp_path: Path, authority_dir: Path, **overrides: object
) -> HubSettings:
    """Settings for a test's own hub, with a credentials store of its own (every identity)."""
    base: dict[str, object] = {
        "nats_url": server.url,
        "data_dir": tmp_path,
        "credentials_dir": tmp_path / "credentials",
        "jetstream_max_bytes": JETSTREAM_BYTES,
        "ack_wait_s": 5.0,
        "max_deliver": 20,
        "backoff_s": (0.2, 0.5),
        "request_timeout_s": 2.0,
        "dedup_window_s": 3600.0,
        "web_port": 0,
        "ingest_rate": UNLIMITED_RATE,
        "ingest_burst": int(UNLIMITED_RATE),
    }
    settings = HubSettings(**(base | overrides))  # type: ignore[arg-type]
    credentials_store(authority_dir, settings, load_registry())
    return settings


@asynccontextmanager
async def own_server(tmp_path: Path, authority_dir: Path) -> AsyncIterator[NatsServer]:
    server = secured_server(tmp_path / "nats", authority_dir)
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
    orgs: Orgs,
    settings: HubSettings,
    recipients: list[str],
    count: int,
    on_accepted: Callable[[int], Awaitable[None]],
) -> set[str]:
    """Publish ``count`` events, resending each until the hub accepts it (same id each time)."""
    publisher = await orgs.publisher(PUBLISHER, timeout_s=2.0, retries=0)
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
            "HUB_CREDENTIALS_DIR": str(tmp_path / "credentials"),
            "HUB_LOG_LEVEL": "WARNING",
            "HUB_ACK_WAIT_S": "5",
            "HUB_REQUEST_TIMEOUT_S": "2",
            "HUB_DEDUP_WINDOW_S": "3600",
            "HUB_WEB_PORT": "0",
            "HUB_INGEST_RATE": str(UNLIMITED_RATE),
            "HUB_INGEST_BURST": str(int(UNLIMITED_RATE)),
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
async def hub_processes(
    server: NatsServer, tmp_path: Path, count: int
) -> AsyncIterator[list[HubProcess]]:
    hubs = [HubProcess(server, tmp_path) for _ in range(count)]
    for hub in hubs:
        await hub.start()
    try:
        yield hubs
    finally:
        for hub in hubs:
            await hub.stop()


Crash = Callable[[NatsServer, list[HubProcess], JetStreamContext, Wire], Awaitable[None]]
"""Strikes once: the server, the hub processes, ops' view of the streams, the subjects."""


async def crash_scenario(
    tmp_path: Path, authority_dir: Path, registry: Registry, crash: Crash, *, hubs: int = 1
) -> None:
    """10,000 events to 20 recipients from ``hubs`` hub processes; ``crash`` strikes once."""
    crash_at = random.Random(run_seed()).randint(EVENTS // 10, EVENTS * 9 // 10)
    print(f"the crash strikes after {crash_at} accepted events")
    recipients = twenty_recipients(registry)
    tally = Tally()
    crashed = asyncio.Event()
    answered: list[float] = []  # when each acceptance came back (monotonic)
    async with own_server(tmp_path, authority_dir) as server:
        settings = fault_settings(server, tmp_path, authority_dir)
        async with hub_processes(server, tmp_path, hubs) as running, acting_as(settings) as orgs:

            async def maybe_crash(accepted: int) -> None:
                answered.append(time.monotonic())
                if accepted >= crash_at and not crashed.is_set():
                    crashed.set()
                    answered.append(-time.monotonic())  # the crash, marked
                    await crash(server, running, ops, settings.wire)

            ops = (await orgs.nc(OPS)).jetstream()
            await eventually(lambda: _hub_is_up(ops, settings, recipients), within=30)
            async with receiving(settings, recipients, handler=tally.handle):
                keys = await asyncio.wait_for(
                    publish_all(orgs, settings, recipients, EVENTS, maybe_crash), timeout=300
                )
                await eventually(lambda: tally.complete(keys, recipients), within=300)
            pairs = {(k, org) for k in keys for org in recipients}
            async with Ledger.open(settings.ledger_database) as ledger:  # the hub process's
                await eventually(lambda: _all_acknowledged(ledger, len(pairs)), within=120)
                await eventually(lambda: _ledger_knows(ledger, len(keys)), within=120)
                live = await ledger.dump()
            acknowledged = {
                (r.event_key, r.recipient)
                for r in await receipts(ops, settings)
                if r.status == "acknowledged"
            }
            async with Ledger.open(f"sqlite:///{tmp_path / 'rebuilt.sqlite3'}") as rebuilt:
                await rebuild(ops, settings.wire, rebuilt, RecordTrust.load(settings))
                replayed = await rebuilt.dump()
    assert crashed.is_set()
    mark = next(i for i, t in enumerate(answered) if t < 0)
    after = [-answered[mark], *answered[mark + 1 :]]
    gaps = sorted(((b - a, a - after[0]) for a, b in itertools.pairwise(after)), reverse=True)
    longest = gaps[0][0] if gaps else 0.0
    print(
        f"after the crash, publishers waited at most {longest:.2f} s between answers; longest: "
        + ", ".join(f"{gap:.2f} s at +{at:.1f} s" for gap, at in gaps[:3])
    )
    assert len(keys) == EVENTS
    assert set(tally.seen) == pairs  # 0 lost
    assert max(tally.seen.values()) == 1  # redeliveries absorbed: each handled once
    assert acknowledged == pairs  # a receipt for every pair survived the crash
    assert ledger_differences(live, replayed) == []  # the crashed hub's ledger equals a rebuild


async def test_killing_the_broker_mid_stream_loses_no_accepted_event(
    tmp_path: Path, authority_dir: Path, registry: Registry
) -> None:
    async def kill_broker(server: NatsServer, *_: object) -> None:
        await server.kill()  # kill -9
        await asyncio.sleep(0.5)
        await server.start()  # same port, same store

    await crash_scenario(tmp_path, authority_dir, registry, kill_broker)


async def test_killing_the_hub_process_mid_stream_loses_no_accepted_event(
    tmp_path: Path, authority_dir: Path, registry: Registry
) -> None:
    async def kill_hub(server: NatsServer, hubs: list[HubProcess], *_: object) -> None:
        await hubs[0].kill()  # kill -9
        await hubs[0].start()

    await crash_scenario(tmp_path, authority_dir, registry, kill_hub)


async def test_killing_the_fan_out_of_two_hub_processes_loses_nothing_and_the_other_serves(
    tmp_path: Path, authority_dir: Path, registry: Registry
) -> None:
    """Two ``hub serve``; the one playing fan-out is killed and not restarted."""

    async def kill_the_fan_out(
        server: NatsServer, hubs: list[HubProcess], ops: JetStreamContext, wire: Wire
    ) -> None:
        roles = await ops.key_value(wire.roles_bucket)
        playing_now = ""

        async def someone_plays_fan_out() -> bool:  # not while it is being handed over
            nonlocal playing_now
            playing_now = await holder(roles, "fanout")
            return bool(playing_now)

        await eventually(someone_plays_fan_out, within=30)
        pid = int(playing_now.rpartition(":")[2])
        (playing,) = [h for h in hubs if h.process is not None and h.process.pid == pid]
        await playing.kill()  # kill -9; the other takes the role over

    await crash_scenario(tmp_path, authority_dir, registry, kill_the_fan_out, hubs=2)


def ledger_differences(
    one: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]],
    other: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]],
) -> list[str]:
    """Rows that differ between two ledger dumps, named by key and column position."""
    found = []
    for table, width, rows, again in zip(("event", "pair"), (1, 2), one, other, strict=True):
        mine = {row[:width]: row for row in rows}
        theirs = {row[:width]: row for row in again}
        for key in sorted(mine.keys() | theirs.keys()):
            a, b = mine.get(key), theirs.get(key)
            if a != b:
                columns = [
                    i for i in range(len(a or b or ())) if a is None or b is None or a[i] != b[i]
                ]
                found.append(f"{table} {key}: columns {columns}: {a} != {b}")
    return found[:5]


async def _all_acknowledged(ledger: Ledger, pairs: int) -> bool:
    return await ledger.counts() == {DeliveryState.ACKNOWLEDGED: pairs}


async def _hub_is_up(js: JetStreamContext, settings: HubSettings, recipients: list[str]) -> bool:
    """The hub has created every recipient's consumer."""
    try:
        for org in recipients:
            await js.consumer_info(
                settings.wire.deliveries_stream, settings.wire.delivery_consumer(org)
            )
    except (nats.errors.Error, TimeoutError):  # not created yet: keep waiting
        return False
    return True


async def test_a_subscriber_that_dies_before_acknowledging_ends_in_the_dead_letters(
    nats_server: NatsServer, tmp_path: Path, authority_dir: Path, registry: Registry
) -> None:
    """Received three times, never acknowledged: the advisory becomes a dead-letter receipt."""
    settings = fault_settings(
        nats_server, tmp_path, authority_dir, ack_wait_s=0.5, max_deliver=3, subject_root="tdead"
    )
    async with hub_running(settings, registry) as hub, acting_as(settings) as orgs:
        event = sample_event("other", PUBLISHER, datetime.now(UTC), recipients=("renqiu-qingta",))
        accepted = await (await orgs.publisher(PUBLISHER)).publish(event)
        key = f"{accepted.source}/{accepted.id}"
        dying = await orgs.nc("renqiu-qingta")
        sub = await dying.jetstream().pull_subscribe_bind(
            durable=settings.wire.delivery_consumer("renqiu-qingta"),
            stream=settings.wire.deliveries_stream,
        )
        held = []
        for _ in range(3):  # it receives the event and dies before acknowledging, three times
            (msg,) = await sub.fetch(1, timeout=10)
            held.append(msg.metadata.num_delivered)
        with pytest.raises(nats.errors.TimeoutError):
            await sub.fetch(1, timeout=1.5)  # the consumer has given up on it
        await eventually(lambda: _dead_lettered(hub, key), within=10)
        (row,) = [
            r for r in await hub.ledger.pairs(day_from=_day(), day_to=_day()) if r.event_key == key
        ]
        copy = await hub.js.get_msg(
            settings.wire.deliveries_stream,
            subject=settings.wire.deliver("renqiu-qingta"),
        )
    assert held == [1, 2, 3]
    assert (row.state, row.attempts) == ("dead_lettered", 3)
    assert row.reason is not None and "3 次投递内均未签收" in row.reason
    kept = DeliveryBundle.model_validate_json(copy.data or b"", context=DELIVERED)
    assert [item.event.key for item in kept.items] == [key]  # nothing vanished


async def _dead_lettered(hub: Hub, key: str) -> bool:
    rows = await hub.ledger.pairs(day_from=_day(), day_to=_day())
    return any(r.event_key == key and r.state == "dead_lettered" for r in rows)


def _day() -> date:
    return shanghai_day(datetime.now(UTC))


async def test_a_recipient_offline_for_a_day_catches_up_5000_events_in_order(
    hub: Hub, orgs: Orgs
) -> None:
    publisher = await orgs.publisher(PUBLISHER)
    now = datetime.now(UTC)
    order: dict[int, str] = {}

    async def publish(n: int) -> None:
        event = sample_event("permit", PUBLISHER, now, n, recipients=("renqiu-yucun",))
        accepted = await publisher.publish(event)
        order[accepted.seq] = f"{accepted.source}/{accepted.id}"

    for start in range(0, 5000, 50):
        await asyncio.gather(*(publish(n) for n in range(start, start + 50)))
    await eventually(lambda: fanned_out(hub, "renqiu-yucun", 5000), within=60)
    async with receiving(hub.settings, ["renqiu-yucun"]) as inboxes:
        await eventually(lambda: len(inboxes["renqiu-yucun"].keys) >= 5000, within=120)
    assert inboxes["renqiu-yucun"].keys == [order[seq] for seq in sorted(order)]


async def test_a_truncated_stream_file_is_reported_event_by_event(
    tmp_path: Path, authority_dir: Path, registry: Registry
) -> None:
    async with own_server(tmp_path, authority_dir) as server:
        settings = fault_settings(server, tmp_path, authority_dir)
        keys: dict[int, str] = {}
        async with running_hub(settings, registry) as hub, acting_as(settings) as orgs:
            publisher = await orgs.publisher(PUBLISHER)
            now = datetime.now(UTC)
            for n in range(60):
                accepted = await publisher.publish(sample_event("law_change", PUBLISHER, now, n))
                keys[accepted.seq] = f"{accepted.source}/{accepted.id}"
            await eventually(lambda: _ledger_knows(hub, 60), within=20)
        await server.stop()
        (block,) = (server.store_dir / "jetstream").glob(
            f"*/streams/{settings.wire.events_stream}/msgs/*.blk"
        )
        block.write_bytes(
            block.read_bytes()[: block.stat().st_size * 2 // 3]
        )  # the disk lost the tail
        await server.start()
        async with Ledger.open(settings.ledger_database) as ledger, acting_as(settings) as orgs:
            js = (await orgs.nc(OPS)).jetstream()
            lost = {
                keys[seq] for seq in keys if not await _still_stored(js, settings, seq, keys[seq])
            }
            reported = await missing_events(js, settings.wire, ledger)
        async with running_hub(settings, registry) as restarted:  # ops see it too
            await eventually(lambda: restarted.store_check.missing is not None, within=30)
            ops = (await scrape(restarted, "/api/ops")).json()["store_check"]
            metrics = (await scrape(restarted)).text
        env = {**os.environ, "HUB_NATS_URL": server.url, "HUB_DATA_DIR": str(tmp_path)}
        check = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "hub"),
            "ledger",
            "check",
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await check.communicate()
    assert 0 < len(lost) < 60
    assert {m.event_key for m in reported} == lost  # exactly the accepted events that are gone
    assert set(restarted.store_check.missing or ()) == lost
    assert ops["missing"] == len(lost) and set(ops["examples"]) <= lost
    assert f"hub_events_missing {float(len(lost))}" in metrics
    assert check.returncode == 1
    assert f"事件流缺失 {len(lost)} 个已受理事件" in err.decode()


async def _ledger_knows(hub: Hub | Ledger, count: int) -> bool:
    ledger = hub if isinstance(hub, Ledger) else hub.ledger
    return len(await ledger.events()) == count


async def _still_stored(js: JetStreamContext, settings: HubSettings, seq: int, key: str) -> bool:
    try:
        msg = await js.get_msg(settings.wire.events_stream, seq)
    except nats.js.errors.NotFoundError:
        return False
    return (msg.headers or {}).get("Nats-Msg-Id") == key


async def test_killing_the_stream_leader_of_a_three_node_cluster_loses_no_accepted_event(
    tmp_path: Path, authority_dir: Path, registry: Registry
) -> None:
    recipients = twenty_recipients(registry)
    tally = Tally()
    cluster = NatsCluster(
        tmp_path / "cluster", trust=trust_of(authority_dir), max_store_bytes=JETSTREAM_BYTES
    )
    async with cluster:
        settings = fault_settings(cluster, tmp_path, authority_dir, replicas=3)
        killed: list[str] = []
        for node in cluster.nodes:  # every node fsyncs before it acknowledges
            assert (await node.varz())["jetstream"]["config"]["sync_always"] is True
        async with (
            running_hub(settings, registry) as hub,  # its own server: streams stay
            acting_as(settings) as orgs,
        ):
            striking = asyncio.Event()

            async def kill_leader(accepted: int) -> None:
                if accepted >= 500 and not striking.is_set():
                    striking.set()  # before any await: the other publishers must not strike too
                    info = await hub.js.stream_info(settings.wire.events_stream)
                    killed.append(info.cluster.leader or "" if info.cluster else "")
                    await cluster.node(killed[0]).kill()  # kill -9 the events stream's leader

            async with receiving(settings, recipients, handler=tally.handle):
                keys = await asyncio.wait_for(
                    publish_all(orgs, settings, recipients, 1500, kill_leader), timeout=300
                )
                await eventually(lambda: tally.complete(keys, recipients), within=300)
            info = await hub.js.stream_info(settings.wire.events_stream)
            replicas = {
                name: (await hub.js.stream_info(name)).config.num_replicas
                for name in settings.wire.streams
            }
    assert killed and killed[0].startswith("hub-nats-")
    assert info.cluster is not None and info.cluster.leader != killed[0]  # a new leader took over
    assert replicas == dict.fromkeys(settings.wire.streams, 3)  # events, deliveries, receipts, …
    assert set(tally.seen) == {(k, org) for k in keys for org in recipients}
    assert max(tally.seen.values()) == 1
