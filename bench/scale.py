"""Several hub processes, bulk publishing and a killed process, beside raw nats-py in one run.

    python -m bench.scale [--quick] [--repetitions N] [--minutes M] [--only …] [--filled N]

Issue 15's figures, in the configuration a county deploys (``auth+tls`` of ``bench.configs``,
fsync always), 2,000 ``permit.v1`` events to Renqiu's 20 recipients:

- **delivery**: deliveries/s (counted when every receipt is in the ledger; raw: when every
  consumer acknowledged every message) and CPU ms per 1,000 deliveries of each role: nats-server,
  the hub's processes (``hub serve``, or ``hub serve --workers 2`` and the worker it starts), the
  recipients' process (the SDK, or raw pull consumers) and the publisher (this process while it
  publishes, 16 requests in flight), sampled with psutil; for raw, the hub with one process and
  with two;
- **publishing**: accepted events/s one event per request (the figure above) and in bulk
  (``Publisher.publish_many``, one call, 100 or 500 events per request), beside raw's publishing
  (16 ``publish`` in flight, or ``publish_async`` in windows of 100 or 500);
- **latency**: publish→receipt (the ledger's acknowledgement) p50/p99 at 100 and 200 events/s
  offered, whatever the answers take, beside raw's publish→acknowledgement;
- **kill**: two ``hub serve`` processes; while the publisher sends at a steady rate, the one
  playing fan-out (key ``fanout`` of the roles bucket) gets SIGKILL and is not restarted. The
  longest gap between two answers after the kill, the longest single publish call, when the other
  process held the fan-out lease, when bundles were written again and when the ledger had every
  receipt.

Each repetition starts a county (nats-server, the hub, the recipients) per column; within it the
figures run one after another, each after the ledger has every receipt of the one before. The
columns take turns, in reverse order every other repetition. Each sample is measured once,
whatever else the machine was doing (the run stays bounded); the table says how busy other
processes kept it and the load average. Figures only: nothing here asserts a time. Results go to
``bench/results/scale.json`` and the tables to ``bench/README.md``.

``--filled N``: before the figures, each hub county accepts and delivers N more events (bulk, 500
per request), so the ledger holds N × 20 pairs with random event keys, as a county's does after
some weeks, and its streams hold what the hub's checks read back; the figures start once the hub's
first ledger recomputation (a minute after start) is over and its processes are idle. Results go
to ``bench/results/scale-filled-N.json``; the README's tables are left alone.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import logging
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import nats.errors
import orjson
import psutil
from nats.aio.client import Client
from sqlalchemy import ColumnElement, func, literal_column, select

from bench.configs import AUTH_TLS, Config, Credentials
from bench.machine import RESULTS, OtherLoad, machine, save, summary
from bench.suite import (
    BIN,
    PUBLISHER,
    PUBLISHERS,
    WIRE,
    _all_acked,
    _consumers_exist,
    _pulling,
    child,
    connected,
    county_recipients,
    lag_figures,
    nats_server,
    open_loop,
    payloads,
    publish_hub,
    raw_consumers,
    raw_farm,
    raw_latency_at,
    raw_stream,
    sdk_farm,
    until,
)
from bench.tables import DASH, finish, measured, publish_saved
from hub.audit.watch import FIRST_CHECK_S
from hub.identity import ADMIN, OPS
from hub.ledger import DeliveryState, Ledger
from hub.ledger.tables import deliveries_table
from hub.natsd import NatsServer, http_get
from hub.roles import ROLE_ZH
from hub.roles import holder as role_holder
from schemas.replies import Accepted
from subscribers.publisher import Publisher

START, END = "<!-- scale: written by python -m bench.scale -->", "<!-- end of scale -->"
SECURITY = AUTH_TLS  # what a county deploys, as bench.audit
RAW, HUB_1, HUB_2, KILL = "raw", "hub, 1 process", "hub, 2 processes", "kill"
COLUMNS = (RAW, HUB_1, HUB_2)
SHORT = {"raw": RAW, "hub1": HUB_1, "hub2": HUB_2, "kill": KILL}  # names for --only
BATCHES = (100, 500)  # events per request of the bulk figures
RATES = (100, 200)  # offered events/s of the latency figures
KILL_RATE = 100  # events/s offered while a hub process is killed
ROLES = ("nats-server", "hub", "recipients", "publisher")
FANOUT = "fanout"  # the roles bucket's key of the fan-out lease (hub/service.py)
ROLE_KEYS = tuple(ROLE_ZH)  # every role a hub process holds a lease for
RESUME_WITHIN_S = 120.0  # a fan-out taking over waits out its predecessor's ack_wait (30 s)
COMPLETE_WITHIN_S = 300.0
BALANCE_WITHIN_S = 60.0  # hub.roles looks at the shares every 5 s
IDLE_OVER_S, IDLE_CORES = 2.0, 0.1  # a hub counts as idle: under this share of a core this long
FILL_IDLE_WITHIN_S = 900.0  # the recomputation of a filled ledger re-reads every pair


@dataclass(frozen=True)
class Sizes:
    """How much each figure sends."""

    events: int
    latency_s: float
    kill_after_s: float  # of steady publishing before the kill
    kill_publish_s: float  # steady publishing in all
    filled: int = 0  # events each hub county accepts and delivers before the figures

    @classmethod
    def of(cls, quick: bool, filled: int = 0) -> Sizes:
        found = cls(300, 3.0, 3.0, 8.0) if quick else cls(2000, 10.0, 5.0, 15.0)
        return dataclasses.replace(found, filled=filled)


# -- CPU by role -------------------------------------------------------------------------------


@dataclass
class Meter:
    """CPU seconds used by each role's processes: its roots and everything they started.

    The publisher is this process alone (its children are the other roles). A process that has
    ended keeps the last reading taken of it, so read at the start and at the end of a figure.
    """

    roots: dict[str, list[int]]
    last: dict[int, float] = field(default_factory=dict)
    members: dict[str, set[int]] = field(default_factory=dict)

    def read(self) -> dict[str, float]:
        """Each role's CPU seconds so far; each process's in ``last``."""
        for role, pids in self.roots.items():
            for pid in pids:
                for process in self._family(pid, descend=pid != os.getpid()):
                    try:
                        times = process.cpu_times()
                    except psutil.Error:  # ended since it was listed: keep its last reading
                        continue
                    self.last[process.pid] = times.user + times.system
                    self.members.setdefault(role, set()).add(process.pid)
        return {
            role: sum(self.last.get(pid, 0.0) for pid in self.members.get(role, ()))
            for role in self.roots
        }

    @staticmethod
    def _family(pid: int, descend: bool) -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)] if descend else [root]
        except psutil.Error:
            return []


def cpu_figures(
    before: dict[str, float],
    published: dict[str, float],
    after: dict[str, float],
    deliveries: int,
    seconds: float,
) -> dict[str, float]:
    """CPU ms per 1,000 deliveries by role; the publisher's only while it published."""
    used = {role: after[role] - before[role] for role in after}
    used["publisher"] = published["publisher"] - before["publisher"]
    per = 1e6 / deliveries  # CPU seconds → ms per 1,000 deliveries
    figures = {f"cpu_ms, {role}": used.get(role, 0.0) * per for role in ROLES}
    figures["cpu_ms, all"] = sum(used.get(role, 0.0) for role in ROLES) * per
    figures["cpu_ms, server side"] = (used["nats-server"] + used.get("hub", 0.0)) * per
    figures["cpu_ms, bench checks"] = (after["publisher"] - published["publisher"]) * per
    figures["cores_busy"] = sum(used.get(role, 0.0) for role in ROLES) / seconds
    return figures


# -- a county with one or two hub processes ----------------------------------------------------


@dataclass
class County:
    """nats-server, the hub's processes, the SDK recipients, the ledger; connections to them."""

    server: NatsServer
    hubs: list[asyncio.subprocess.Process]  # ``hub serve`` processes this run started
    farm: asyncio.subprocess.Process
    ledger: Ledger
    publisher: Client  # renqiu-scjg's own connection
    ops: Client
    recipients: list[str]
    expected: int = 0  # acknowledged pairs after ``floor`` once every figure so far has settled
    floor: int = 0  # the ledger's last rowid before the figures (after ``--filled``'s pairs)

    def meter(self) -> Meter:
        return Meter(
            {
                "nats-server": [self.server.pid or 0],
                "hub": [h.pid for h in self.hubs],
                "recipients": [self.farm.pid],
                "publisher": [os.getpid()],
            }
        )

    async def settled(self, deliveries: int) -> None:
        """Until the ledger acknowledged every delivery sent so far."""
        self.expected += deliveries
        await until(self.reached, within=1800, every=0.2)

    async def reached(self) -> bool:
        """The ledger acknowledged every delivery sent so far."""
        return await acknowledged_after(self.ledger, self.floor) >= self.expected

    async def idle(self) -> bool:
        """The hub's processes used under a tenth of a core for two seconds."""
        meter = Meter({"hub": [h.pid for h in self.hubs]})
        before = meter.read()["hub"]
        await asyncio.sleep(IDLE_OVER_S)
        return meter.read()["hub"] - before < IDLE_CORES * IDLE_OVER_S

    async def holders(self) -> dict[int, list[str]]:
        """The roles each hub process holds (by pid), from the roles bucket."""
        kv = await self.ops.jetstream().key_value(WIRE.roles_bucket)
        held: dict[int, list[str]] = {}
        for role in ROLE_KEYS:  # read one by one: listing keys needs a consumer ops may not make
            if holder := await role_holder(kv, role):
                held.setdefault(int(holder.rpartition(":")[2]), []).append(role)
        return held

    async def balanced(self, processes: int) -> bool:
        """Every role is held, by ``processes`` processes, none more than its share."""
        held = await self.holders()
        share = math.ceil(len(ROLE_KEYS) / processes)
        return (
            len(held) == processes
            and sum(len(roles) for roles in held.values()) == len(ROLE_KEYS)
            and all(len(roles) <= share for roles in held.values())
        )


# SQLite's rowid: a pair keeps its own through every upsert, and newer pairs have larger ones
ROWID: ColumnElement[int] = literal_column("rowid")


async def acknowledged_after(ledger: Ledger, floor: int) -> int:
    """Acknowledged pairs recorded after rowid ``floor``: a range read, however full the ledger."""
    t = deliveries_table
    query = select(func.count()).where(ROWID > floor, t.c.state == DeliveryState.ACKNOWLEDGED)
    async with ledger.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def last_rowid(ledger: Ledger) -> int:
    """The ledger's newest pair's rowid (0 when it holds none)."""
    query = select(func.coalesce(func.max(ROWID), 0)).select_from(deliveries_table)
    async with ledger.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def acknowledgements_after(ledger: Ledger, floor: int) -> list[tuple[str, datetime]]:
    """(event key, when acknowledged) of the pairs recorded after rowid ``floor``."""
    t = deliveries_table
    query = select(t.c.event_key, t.c.acknowledged_at).where(
        ROWID > floor, t.c.acknowledged_at.is_not(None)
    )
    async with ledger.engine.connect() as conn:
        return [(key, at) for key, at in await conn.execute(query)]


async def ingesting(server: NatsServer) -> int:
    """How many connections are in the hub's ingest queue group (one per hub process)."""
    _, body = await http_get(server.monitor_host, server.monitor_port, "/connz?subs=detail")
    connections = orjson.loads(body).get("connections") or []
    return sum(
        any(s.get("qgroup") == WIRE.ingest_queue for s in c.get("subscriptions_list_detail") or [])
        for c in connections
    )


@asynccontextmanager
async def county(
    config: Config, processes: int, separate: bool = False, filled: int = 0
) -> AsyncIterator[County]:
    """A county whose hub runs as ``processes`` processes, warmed up by one event.

    ``separate``: that many ``hub serve`` (so that one can die alone); else one ``hub serve``
    with ``--workers``. ``filled``: that many events more accepted and delivered first.
    """
    recipients = county_recipients()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        data = Path(folder)
        async with AsyncExitStack() as stack:
            enter = stack.enter_async_context
            server = await enter(nats_server(config, True))
            env = config.hub_env(server.url) | {
                "HUB_DATA_DIR": str(data),  # shared: one ledger for every process
                "HUB_LOG_LEVEL": "ERROR",
                "HUB_WEB_PORT": "0",
            }
            serve = [str(BIN / "hub"), "serve"]
            argv = serve if separate or processes == 1 else [*serve, "--workers", str(processes)]
            began = time.monotonic()
            hubs = [await enter(child(*argv, env=env)) for _ in range(processes if separate else 1)]
            ops = await enter(connected(config, server.url, OPS, "bench-ops"))
            await until(lambda: _consumers_exist(ops, recipients), within=600)
            await until(lambda: _all_ingesting(server, processes), within=120, every=0.2)
            farm = await enter(sdk_farm(config, server, recipients))
            consumers = [WIRE.delivery_consumer(org) for org in recipients]
            await until(partial(_pulling, ops, WIRE.deliveries_stream, consumers), within=120)
            ledger = await enter(Ledger.open(f"sqlite:///{data}/ledger.sqlite3"))
            nc = await enter(connected(config, server.url, PUBLISHER, "bench-publisher"))
            found = County(server, hubs, farm, ledger, nc, ops, recipients)
            await publish_hub(nc, payloads(1, recipients))  # connections and first requests
            await found.settled(len(recipients))
            try:  # processes hand roles over until each plays its share (hub.roles)
                await until(partial(found.balanced, processes), within=BALANCE_WITHIN_S)
            except TimeoutError:
                print(f"    roles not balanced: {await found.holders()}", flush=True)
            if filled:
                await fill(found, filled, began)
            yield found


async def fill(county: County, events: int, began: float) -> None:
    """Accept and deliver ``events`` more; then wait out the hub's first ledger recomputation."""
    print(f"    filling: {events:,} events …", flush=True)
    await publish_bulk(county.publisher, payloads(events, county.recipients), max(BATCHES))
    await county.settled(events * len(county.recipients))
    await asyncio.sleep(max(0.0, began + FIRST_CHECK_S - time.monotonic()))
    await until(county.idle, within=FILL_IDLE_WITHIN_S, every=0)
    county.floor, county.expected = await last_rowid(county.ledger), 0


async def _all_ingesting(server: NatsServer, processes: int) -> bool:
    return await ingesting(server) >= processes


# -- the figures -------------------------------------------------------------------------------


async def publish_bulk(nc: Client, events: list[dict[str, Any]], batch: int) -> float:
    """``publish_many`` once, ``batch`` events per request; the seconds until every answer."""
    publisher = Publisher(nc, PUBLISHER, wire=WIRE, timeout_s=60)
    started = time.perf_counter()
    answers = await publisher.publish_many(events, batch=batch)
    took = time.perf_counter() - started
    if refused := sum(not isinstance(a, Accepted) for a in answers):
        raise RuntimeError(f"the hub refused {refused} of {len(answers)} bulk events")
    return took


async def hub_publishing(county: County, events: int, batch: int | None) -> dict[str, float]:
    """Accepted events/s, deliveries/s and CPU by role: one per request (16 in flight) or bulk."""
    bodies = payloads(events, county.recipients)
    deliveries = events * len(county.recipients)
    held = await county.holders()
    meter = county.meter()
    before = meter.read()
    per_process = dict(meter.last)
    started = time.perf_counter()
    if batch is None:
        publish_s = await publish_hub(county.publisher, bodies)
    else:
        publish_s = await publish_bulk(county.publisher, bodies, batch)
    published = meter.read()
    await county.settled(deliveries)
    seconds = time.perf_counter() - started
    after = meter.read()
    fanout = [pid for pid, roles in held.items() if FANOUT in roles]
    moved = fanout != [pid for pid, roles in (await county.holders()).items() if FANOUT in roles]
    hub_pids = meter.members.get("hub", set())
    fanout_s = sum(meter.last[p] - per_process.get(p, 0.0) for p in hub_pids if p in fanout)
    rest_s = sum(meter.last[p] - per_process.get(p, 0.0) for p in hub_pids if p not in fanout)
    return {
        "accepted_per_s": events / publish_s,
        "deliveries_per_s": deliveries / seconds,
        "seconds": seconds,
        "hub_processes": float(len(hub_pids)),
        "fanout_moved": float(moved),  # then the split between the processes is approximate
        "cpu_ms, hub process playing fan-out": fanout_s * 1e6 / deliveries,
        "cpu_ms, other hub processes": rest_s * 1e6 / deliveries,
    } | cpu_figures(before, published, after, deliveries, seconds)


async def hub_latency(county: County, rate: int, seconds: float) -> dict[str, float]:
    """publish→receipt in the ledger at ``rate`` events/s offered (an open loop)."""
    floor = await last_rowid(county.ledger)
    events = payloads(int(rate * seconds), county.recipients)
    publisher = Publisher(county.publisher, PUBLISHER, wire=WIRE, timeout_s=60)
    sent: dict[str, float] = {}

    async def one(event: dict[str, Any]) -> None:
        sent[f"{PUBLISHER}/{event['id']}"] = time.time()
        await publisher.publish(event)

    await open_loop(rate, events, one)
    await county.settled(len(events) * len(county.recipients))
    acknowledged = await acknowledgements_after(county.ledger, floor)
    return lag_figures([(at.timestamp() - sent[key]) * 1000 for key, at in acknowledged])


Figure = Callable[[], Awaitable[dict[str, float]]]
Column = Callable[[], Awaitable[dict[str, dict[str, float]]]]


async def hub_column(config: Config, processes: int, sizes: Sizes) -> dict[str, dict[str, float]]:
    """Every figure of one hub column, in one county; its samples by figure."""
    found: dict[str, dict[str, float]] = {}
    load = OtherLoad()
    async with county(config, processes, filled=sizes.filled) as running:
        figures: dict[str, Figure] = {
            "delivery": partial(hub_publishing, running, sizes.events, None)
        }
        if hasattr(Publisher, "publish_many"):
            for batch in BATCHES:
                figures[f"bulk {batch}"] = partial(hub_publishing, running, sizes.events, batch)
        for rate in RATES:
            figures[f"latency at {rate}/s"] = partial(hub_latency, running, rate, sizes.latency_s)
        for name, job in figures.items():
            print(f"    {name} …", flush=True)
            found[name] = await job() | {"load_1min": os.getloadavg()[0]}
    other = load.cores()  # every child has ended: OtherLoad counts them as ours
    return {name: sample | {"other_cores": other} for name, sample in found.items()}


async def raw_column(config: Config, sizes: Sizes) -> dict[str, dict[str, float]]:
    """nats-py alone: 20 durable pull consumers acking; publishing one by one, then in windows."""
    found: dict[str, dict[str, float]] = {}
    load = OtherLoad()
    recipients = county_recipients()
    consumers = raw_consumers(len(recipients))
    deliveries = sizes.events * len(consumers)
    async with nats_server(config, True) as server:
        nc = await config.connect(server.url, ADMIN, "bench-raw")
        js = nc.jetstream()
        await raw_stream(js, consumers)
        async with raw_farm(config, server, consumers) as farm:
            await until(partial(_pulling, nc, "RAW", consumers), within=60)
            roots = {"nats-server": [server.pid or 0], "recipients": [farm.pid]}
            meter = Meter(roots | {"publisher": [os.getpid()]})
            stored = 0
            for name, batch in [("delivery", None), *((f"bulk {b}", b) for b in BATCHES)]:
                print(f"    {name} …", flush=True)
                bodies = [orjson.dumps(e) for e in payloads(sizes.events, recipients)]
                stored += len(bodies)
                before, started = meter.read(), time.perf_counter()
                publish_s = await raw_publish(js, bodies, batch)
                published = meter.read()
                await until(partial(_all_acked, js, consumers, stored), within=900, every=0.05)
                seconds = time.perf_counter() - started
                found[name] = {
                    "accepted_per_s": sizes.events / publish_s,
                    "deliveries_per_s": deliveries / seconds,
                    "seconds": seconds,
                    "load_1min": os.getloadavg()[0],
                } | cpu_figures(before, published, meter.read(), deliveries, seconds)
        await nc.close()
    for rate in RATES:
        print(f"    latency at {rate}/s …", flush=True)
        found[f"latency at {rate}/s"] = await raw_latency_at(config, rate, sizes.latency_s)
    other = load.cores()
    return {name: sample | {"other_cores": other} for name, sample in found.items()}


async def raw_publish(js: Any, bodies: list[bytes], batch: int | None) -> float:
    """Publish with acknowledgement: ``PUBLISHERS`` in flight, or windows of ``batch``."""
    queue = list(bodies)
    started = time.perf_counter()
    if batch is None:

        async def worker() -> None:
            while queue:
                await js.publish("raw.permit", queue.pop())

        await asyncio.gather(*(worker() for _ in range(PUBLISHERS)))
    else:
        for at in range(0, len(bodies), batch):
            futures = [await js.publish_async("raw.permit", b) for b in bodies[at : at + batch]]
            await asyncio.gather(*futures)
    return time.perf_counter() - started


# -- a killed hub process ----------------------------------------------------------------------


@dataclass
class Watch:
    """The deliveries stream's last sequence and the fan-out lease's holder, every 50 ms."""

    samples: list[tuple[float, int, str]] = field(default_factory=list)

    async def run(self, nc: Client, stop: asyncio.Event) -> None:
        js = nc.jetstream()
        kv = await js.key_value(WIRE.roles_bucket)
        while not stop.is_set():
            try:
                last = (await js.stream_info(WIRE.deliveries_stream)).state.last_seq
                holder = await role_holder(kv, FANOUT)
            except (nats.errors.Error, TimeoutError):  # a slow answer: the next sample
                continue
            self.samples.append((time.perf_counter(), last, holder))
            try:
                async with asyncio.timeout(0.05):
                    await stop.wait()
            except TimeoutError:
                pass

    def holder_changed(self, killed_at: float, killed: str) -> float | None:
        """Seconds from the kill until another process held the fan-out lease."""
        for at, _, holder in self.samples:
            if at > killed_at and holder not in ("", killed):
                return at - killed_at
        return None

    def resumed(self, killed_at: float) -> float | None:
        """Seconds from the kill until a bundle was written again.

        Bundles the dead process had sent before it died land within milliseconds: the stream
        is read as it was a quarter of a second after the kill.
        """
        after = [(at, last) for at, last, _ in self.samples if at >= killed_at + 0.25]
        if not after:
            return None
        base = after[0][1]
        return next((at - killed_at for at, last in after if last > base), None)


def gaps_after(killed_at: float, answered: list[float]) -> tuple[float, float]:
    """The longest wait between two answers after the kill (the kill counts as one), and when."""
    times = [killed_at, *sorted(t for t in answered if t > killed_at)]
    longest, at = 0.0, 0.0
    for a, b in itertools.pairwise(times):
        if b - a > longest:
            longest, at = b - a, a - killed_at
    return longest, at


async def kill_figure(config: Config, sizes: Sizes) -> dict[str, float]:
    """Two ``hub serve``; the one playing fan-out killed while events arrive at ``KILL_RATE``/s."""
    async with county(config, 2, separate=True) as running:
        publisher = Publisher(running.publisher, PUBLISHER, wire=WIRE)  # the SDK's defaults
        events = payloads(int(KILL_RATE * sizes.kill_publish_s), running.recipients)
        calls: list[tuple[float, float]] = []  # (sent, answered), perf_counter
        killed: dict[str, Any] = {}
        watch, stop = Watch(), asyncio.Event()

        async def one(event: dict[str, Any]) -> None:
            sent = time.perf_counter()
            await publisher.publish(event)
            calls.append((sent, time.perf_counter()))

        async def strike() -> None:
            await asyncio.sleep(sizes.kill_after_s)
            held = await running.holders()
            kv = await running.ops.jetstream().key_value(WIRE.roles_bucket)
            holder = await role_holder(kv, FANOUT)
            pid = int(holder.rpartition(":")[2])
            (victim,) = [h for h in running.hubs if h.pid == pid]
            fanout = await running.ops.jetstream().consumer_info(
                WIRE.events_stream, WIRE.fanout_consumer
            )
            killed.update(
                holder=holder,
                roles=held.get(pid, []),
                pending=fanout.num_ack_pending,
                ack_wait=fanout.config.ack_wait or 0.0,
                at=time.perf_counter(),
            )
            victim.send_signal(signal.SIGKILL)
            await victim.wait()

        began = time.perf_counter()
        async with asyncio.TaskGroup() as tasks:
            watching = tasks.create_task(watch.run(running.ops, stop))
            tasks.create_task(strike())
            await open_loop(KILL_RATE, events, one)
            try:
                await until(lambda: _resumed(watch, killed["at"]), within=RESUME_WITHIN_S)
            except TimeoutError:  # the table says "never"
                pass
            finally:
                stop.set()
                await watching
        at = killed["at"]
        running.expected += len(events) * len(running.recipients)
        try:
            await until(running.reached, within=COMPLETE_WITHIN_S, every=0.2)
            complete = time.perf_counter() - at
        except TimeoutError:
            complete = -1.0
        longest, gap_at = gaps_after(at, [answered for _, answered in calls])
        waits = [answered - sent for sent, answered in calls]
        return {
            "rate": float(KILL_RATE),
            "killed_after_s": at - began,
            "killed_roles": float(len(killed["roles"])),
            "fanout_ack_pending": float(killed["pending"]),
            "ack_wait_s": float(killed["ack_wait"]),
            "longest_gap_s": longest,
            "longest_gap_at_s": gap_at,
            "longest_publish_s": max(waits),
            "publishes_retried": float(sum(w > publisher.timeout_s for w in waits)),
            "timeout_s": publisher.timeout_s,
            "lease_taken_s": watch.holder_changed(at, killed["holder"]) or -1.0,
            "deliveries_resumed_s": watch.resumed(at) or -1.0,
            "ledger_complete_s": complete,
            "load_1min": os.getloadavg()[0],
        }


async def _resumed(watch: Watch, killed_at: float) -> bool:
    return watch.resumed(killed_at) is not None


async def kill_column(config: Config, sizes: Sizes) -> dict[str, dict[str, float]]:
    load = OtherLoad()
    sample = await kill_figure(config, sizes)
    return {"kill": sample | {"other_cores": load.cores()}}


# -- the run -----------------------------------------------------------------------------------


def hub_imports(config: Config) -> str:
    """Where ``hub serve`` imports the hub from (``PYTHONPATH`` may name another checkout)."""
    return subprocess.run(
        [sys.executable, "-c", "import hub; print(hub.__file__)"],
        env=config.hub_env("nats://127.0.0.1:4222"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def columns(config: Config, sizes: Sizes) -> dict[str, Column]:
    return {
        RAW: partial(raw_column, config, sizes),
        HUB_1: partial(hub_column, config, 1, sizes),
        HUB_2: partial(hub_column, config, 2, sizes),
        KILL: partial(kill_column, config, sizes),
    }


def results_name(filled: int) -> str:
    """A filled run's results are kept apart: the README's tables are an empty county's."""
    return f"scale-filled-{filled}" if filled else "scale"


async def run(
    quick: bool, repetitions: int, budget_s: float, only: tuple[str, ...] = (), filled: int = 0
) -> dict[str, Any]:
    """Every column, ``repetitions`` times; saved after each column.

    A repetition is started only if, at the pace of those before it, it ends within
    ``budget_s`` of the start.
    """
    began = time.perf_counter()
    sizes = Sizes.of(quick, filled)
    name = results_name(filled) + ("-quick" if quick else "")
    results: dict[str, Any] = {
        "machine": machine(),
        "runs": 0,
        "configuration": SECURITY,
        "events": sizes.events,
        "filled": sizes.filled,
        "recipients": len(county_recipients()),
        "in_flight": PUBLISHERS,
        "batches": list(BATCHES),
        "rates": list(RATES),
        "seconds": sizes.latency_s,
        "kill_rate": KILL_RATE,
        "kill_publish_s": sizes.kill_publish_s,
        "load_average_start": os.getloadavg(),
        "bulk": hasattr(Publisher, "publish_many"),
    }
    samples: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-credentials-") as folder:
        config = Config(SECURITY, Credentials.create(Path(folder)))
        results["hub_imported_from"] = hub_imports(config)
        jobs = {k: job for k, job in columns(config, sizes).items() if not only or k in only}
        for n in range(repetitions):
            if n and (time.perf_counter() - began) * (n + 1) / n > budget_s:
                break  # the next repetition would overrun: fewer, whole repetitions
            order = list(jobs.items()) if n % 2 == 0 else list(reversed(jobs.items()))
            for column, job in order:
                print(f"  {column} ({n + 1}/{repetitions}) …", flush=True)
                for figure, sample in (await job()).items():
                    key = figure if column == KILL else f"{column}: {figure}"
                    samples.setdefault(key, []).append(sample | {"repetition": float(n + 1)})
                    results[key] = summarised(samples[key])
                save(name, results)
            results["runs"] = n + 1
    results["load_average_end"] = os.getloadavg()
    results["took_s"] = round(time.perf_counter() - began, 1)
    save(name, results)
    return results


def summarised(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: summary([s[k] for s in samples]) for k in samples[0]} | {"samples": samples}


# -- the tables --------------------------------------------------------------------------------


def each(results: dict[str, Any], key: str, stat: str, fmt: str = "{:,.0f}") -> str:
    """Every repetition's value, in order (``a / b``)."""
    figure = results.get(key)
    if figure is None or stat not in figure["samples"][0]:
        return DASH
    return " / ".join(fmt.format(s[stat]) for s in figure["samples"])


def ratio(results: dict[str, Any], key: str, other: str, stat: str) -> str:
    a, b = results.get(key), results.get(other)
    if a is None or b is None:
        return DASH
    return f"{a[stat]['median'] / b[stat]['median']:.2f}"


def render(results: dict[str, Any]) -> str:
    """The four tables, each repetition's value in order."""
    start, end = results["load_average_start"], results.get("load_average_end", [0.0] * 3)
    during = [
        s["load_1min"]
        for figure in results.values()
        if isinstance(figure, dict)
        for s in figure.get("samples", [])
        if "load_1min" in s
    ]
    others = sorted(
        {
            s["other_cores"]
            for figure in results.values()
            if isinstance(figure, dict)
            for s in figure.get("samples", [])
            if "other_cores" in s
        }
    )
    line = measured({k: v for k, v in results.items() if k == "machine" or k == "runs"})
    out = [
        line + f" {results['configuration']}, fsync always; {results['events']:,} permit events ×"
        f" {results['recipients']} recipients.{_filled(results)} Other processes (not the"
        " benchmark's) kept"
        f" {min(others, default=0):.2f}–{max(others, default=0):.2f} of the"
        f" {results['machine']['cores']} cores busy (per county); load average (1, 5, 15 min)"
        f" {start[0]:.2f}, {start[1]:.2f}, {start[2]:.2f} at the start,"
        f" {end[0]:.2f}, {end[1]:.2f}, {end[2]:.2f} at the end, 1-min"
        f" {min(during, default=0):.1f}–{max(during, default=0):.1f} (median"
        f" {statistics.median(during or [0]):.1f}) during the figures;"
        f" the run took {results.get('took_s', 0) / 60:.0f} min. Each cell: every repetition's"
        " value, in order.",
        "",
        *delivery_table(results),
        "",
        *publishing_table(results),
        "",
        *latency_table(results),
        "",
        *kill_table(results),
    ]
    return "\n".join(out)


def _filled(results: dict[str, Any]) -> str:
    if not (filled := results.get("filled")):
        return ""
    pairs = filled * results["recipients"]
    return (
        f" Each hub county first accepted and delivered {filled:,} events more (its ledger then"
        f" held {pairs:,} pairs more), and the figures began once the hub was idle again."
    )


def delivery_table(results: dict[str, Any]) -> list[str]:
    rows = [
        ("deliveries_per_s", "deliveries/s", "{:,.0f}"),
        ("cpu_ms, all", "CPU ms per 1,000 deliveries, all processes", "{:,.0f}"),
        ("cpu_ms, server side", "… server side (nats-server and the hub's processes)", "{:,.0f}"),
        ("cpu_ms, nats-server", "… nats-server", "{:,.0f}"),
        ("cpu_ms, hub", "… the hub's processes", "{:,.0f}"),
        ("cpu_ms, hub process playing fan-out", "… … the one playing fan-out", "{:,.0f}"),
        ("cpu_ms, other hub processes", "… … the other", "{:,.0f}"),
        ("cpu_ms, recipients", "… the recipients (raw consumers / the SDK)", "{:,.0f}"),
        ("cpu_ms, publisher", "… the publisher, while publishing", "{:,.0f}"),
        ("cores_busy", "cores busy (CPU s of all these / wall s)", "{:.2f}"),
    ]
    out = [
        f"| {results['events']:,} events × {results['recipients']}, {results['in_flight']} in"
        f" flight | {' | '.join(COLUMNS)} |",
        "|---|---|---|---|",
    ]
    for stat, label, fmt in rows:
        cells = [
            DASH
            if column == RAW and "hub" in stat
            else each(results, f"{column}: delivery", stat, fmt)
            for column in COLUMNS
        ]
        if stat == "cpu_ms, other hub processes":
            cells[1] = DASH
        out.append(f"| {label} | {' | '.join(cells)} |")
    raw = f"{RAW}: delivery"
    hubs = (HUB_1, HUB_2)
    deliveries = " and ".join(
        ratio(results, f"{c}: delivery", raw, "deliveries_per_s") for c in hubs
    )
    cpu = " and ".join(f"{ratio(results, f'{c}: delivery', raw, 'cpu_ms, all')}×" for c in hubs)
    server = " and ".join(f"{_server_ratio(results, c)}×" for c in hubs)
    out += [
        "",
        f"Hub against raw (medians; one process and two): deliveries/s {deliveries}; CPU per"
        f" delivery, all processes, {cpu}; the server side's (nats-server and the hub) against"
        f" raw's nats-server, {server}. Issue 15's targets: at least 0.5 of raw's deliveries/s,"
        " at most 2× its CPU per delivery, 4× on the server side.",
    ]
    moved = [
        f"{column} (repetition {s['repetition']:.0f})"
        for column in (HUB_1, HUB_2)
        for s in results.get(f"{column}: delivery", {}).get("samples", [])
        if s.get("fanout_moved")
    ]
    if moved:
        out += ["", f"Fan-out moved to another process during the figure: {', '.join(moved)}."]
    return out


def _server_ratio(results: dict[str, Any], column: str) -> str:
    hub, raw = results.get(f"{column}: delivery"), results.get(f"{RAW}: delivery")
    if hub is None or raw is None:
        return DASH
    return f"{hub['cpu_ms, server side']['median'] / raw['cpu_ms, nats-server']['median']:.1f}"


def publishing_table(results: dict[str, Any]) -> list[str]:
    out = [
        "| accepted events/s | raw nats-py | hub, 1 process | hub, 2 processes |",
        "|---|---|---|---|",
        f"| one event per request, {results['in_flight']} in flight | "
        + " | ".join(each(results, f"{c}: delivery", "accepted_per_s") for c in COLUMNS)
        + " |",
    ]
    for batch in results["batches"]:
        out.append(
            f"| bulk: {batch} events per request (raw: `publish_async` windows of {batch}) | "
            + " | ".join(each(results, f"{c}: bulk {batch}", "accepted_per_s") for c in COLUMNS)
            + " |"
        )
    out.append(
        f"| deliveries/s of the bulk-{results['batches'][-1]} figure | "
        + " | ".join(
            each(results, f"{c}: bulk {results['batches'][-1]}", "deliveries_per_s")
            for c in COLUMNS
        )
        + " |"
    )
    if not results.get("bulk"):
        out += [
            "",
            "The code measured has no `Publisher.publish_many`: no bulk figures for the hub.",
        ]
    return out


def latency_table(results: dict[str, Any]) -> list[str]:
    out = [
        f"| publish→receipt × {results['recipients']}, p50 / p99 ms (raw: publish→ack) |"
        f" {' | '.join(COLUMNS)} |",
        "|---|---|---|---|",
    ]
    for rate in results["rates"]:
        cells = []
        for column in COLUMNS:
            figure = results.get(f"{column}: latency at {rate}/s")
            cells.append(
                DASH
                if figure is None
                else " ; ".join(
                    f"{s['p50_ms']:,.0f} / {s['p99_ms']:,.0f}" for s in figure["samples"]
                )
            )
        out.append(f"| {rate} events/s for {results['seconds']:.0f} s | {' | '.join(cells)} |")
    return out


def kill_table(results: dict[str, Any]) -> list[str]:
    def secs(stat: str) -> str:
        figure = results.get(KILL)
        if figure is None:
            return DASH
        return " / ".join("never" if s[stat] < 0 else f"{s[stat]:.1f}" for s in figure["samples"])

    timeout = each(results, KILL, "timeout_s", "{:.0f}")
    retried = each(results, KILL, "publishes_retried")
    pending = each(results, KILL, "fanout_ack_pending")
    return [
        f"| one of two `hub serve` killed (SIGKILL), the one playing fan-out, at"
        f" {results['kill_rate']} events/s offered | s after the kill |",
        "|---|---|",
        f"| longest wait between two accepted answers (from the kill) | {secs('longest_gap_s')} |",
        f"| … which began, after the kill | {secs('longest_gap_at_s')} |",
        f"| longest single publish call (SDK defaults: {timeout} s timeout, then again)"
        f" | {secs('longest_publish_s')} |",
        f"| publish calls answered only after a retry | {retried} |",
        f"| events the fan-out held unacknowledged just before the kill (they come back after"
        f" `ack_wait`, {each(results, KILL, 'ack_wait_s')} s) | {pending} |",
        f"| the other process held the fan-out lease | {secs('lease_taken_s')} |",
        f"| bundles written again (deliveries resume) | {secs('deliveries_resumed_s')} |",
        f"| the ledger had every receipt | {secs('ledger_complete_s')} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="one repetition, small sizes (a smoke test)"
    )
    parser.add_argument("--repetitions", type=int, default=2, help="repetitions (default 2)")
    parser.add_argument(
        "--minutes",
        type=float,
        default=25.0,
        help="start a repetition only if it should end within this many minutes of the start",
    )
    parser.add_argument(
        "--only", default="", help=f"these columns only, comma-separated (of {', '.join(SHORT)})"
    )
    parser.add_argument(
        "--filled",
        type=int,
        default=0,
        help="events each hub county accepts and delivers before its figures (a filled ledger)",
    )
    args = parser.parse_args()
    chosen = [c for c in args.only.split(",") if c]
    if unknown := set(chosen) - set(SHORT):
        parser.error(f"unknown column(s): {', '.join(sorted(unknown))}")
    only = tuple(SHORT[c] for c in chosen)
    logging.basicConfig(level=logging.ERROR)  # the farm's reconnect notices are not figures
    repetitions = 1 if args.quick else args.repetitions
    results = asyncio.run(run(args.quick, repetitions, args.minutes * 60, only, args.filled))
    if args.filled and not args.quick:  # its own results file; the README keeps an empty county's
        print(render(results))
        print(f"→ {RESULTS / results_name(args.filled)}.json")
    else:
        finish(results_name(args.filled), results, render, not args.quick, (START, END))


def render_saved() -> None:
    """Write the tables of the last full run from its JSON."""
    publish_saved("scale", render, (START, END))


if __name__ == "__main__":
    main()
