"""The HTTP gateway beside the NATS SDK: publish → delivered, through each, on the same hub.

    python -m bench.gateway [--quick]
    python -m bench.gateway receive URL ROOT ORG [ORG ...]   (the receivers' process, started here)

Two paths through one county (nats-server, ``hub serve`` and ``hub gateway``, in ``auth+tls``
with fsync always), each to recipients of its own, since an organisation reads either through the
SDK or through the gateway:

- ``gateway``: ``POST /v1/events`` (structured CloudEvents, the publisher's bearer token) to
  ``hub gateway``, which publishes as the organisation; the hub fans out; the gateway's pushers
  read each recipient's deliveries and POST them, signed per Standard Webhooks, to the
  recipient's endpoint. Delivered: the endpoint received the POST and its signature held
  (checked with the ``standardwebhooks`` package, as a vendor's endpoint would).
- ``sdk``: ``subscribers.Publisher.publish`` over the publisher's own NATS connection; the hub fans
  out; each recipient's ``subscribers.Recipient`` hands the event to its handler. Delivered: the
  handler was called.

The endpoints and the SDK recipients live in one process of their own (``receive``), which notes
the first arrival of each (recipient, event) pair; the publishers are this process. Figures:
accepted events/s and deliveries/s (events published ``IN_FLIGHT`` at a time, until every
recipient has every event), publish→delivered p50/p99/max at fixed offered rates, and each
process's CPU per event in the throughput figures. Each repetition starts a fresh county; the two
paths take turns within it (the first one alternates), and each figure waits until the ledger has
every receipt of the previous one. Figures only: nothing here asserts a time. Results go to
``bench/results/gateway.json`` and the table to ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.configs import AUTH_TLS, Config, Credentials
from bench.farm import OPENING, _connect_as, _recipient
from bench.machine import ATTEMPTS, OtherLoad, machine, quiet, save, summary
from bench.suite import (
    BIN,
    PUBLISHER,
    PUBLISHERS,
    WIRE,
    _pulling,
    connected,
    county_recipients,
    hub_process,
    lag_figures,
    nats_server,
    open_loop,
    until,
)
from bench.tables import DASH, finish, measured, publish_saved, under_load
from hub.gateway import tokens, webhooks
from hub.identity import OPS
from hub.ledger import DeliveryState, Ledger
from hub.samples import sample_event
from schemas.envelope import Event
from subscribers.publisher import Publisher
from subscribers.recipient import Delivery
from subscribers.serving import address, listening, serve_asgi

START, END = (
    "<!-- gateway: written by python -m bench.gateway -->",
    "<!-- end of gateway -->",
)
GATEWAY, SDK = "gateway", "sdk"
PATHS = (GATEWAY, SDK)
LABELS = {GATEWAY: "HTTP gateway → webhook", SDK: "NATS SDK → Recipient"}
RECIPIENTS = 10  # per event, on each path
RATES = (10, 50, 100)  # offered events/s of the latency figures
IN_FLIGHT = PUBLISHERS  # requests in flight in the throughput figures, as bench.suite
STRUCTURED = "application/cloudevents+json"
ANNOUNCED = re.compile(rb"http://[0-9.]+:[0-9]+")
PROCESSES = ("nats-server", "hub serve", "hub gateway", "receivers", "publisher")

# -- the receivers' process --------------------------------------------------------------------


@dataclass
class Arrivals:
    """First arrival (``time.time()``) of each (recipient, event key), by webhook or SDK."""

    first: dict[tuple[str, str], float] = field(default_factory=dict)
    endpoints: dict[str, Webhook] = field(default_factory=dict)
    forged: int = 0

    async def hook(self, request: Request) -> Response:
        """An organisation's webhook endpoint: check the signature, note the arrival."""
        arrived = time.time()
        org, body = request.path_params["org"], await request.body()
        try:
            self.endpoints[org].verify(body, dict(request.headers))
        except (KeyError, WebhookVerificationError):
            self.forged += 1
            return Response(status_code=401)
        self.first.setdefault((org, request.headers["webhook-id"]), arrived)
        return Response(status_code=204)

    def handler(self, org: str) -> Callable[[Event, Delivery], Awaitable[None]]:
        """An SDK recipient's handler: note the arrival."""

        async def handle(event: Event, delivery: Delivery) -> None:
            self.first.setdefault((org, event.key), time.time())

        return handle

    async def secrets(self, request: Request) -> Response:
        """The endpoints' secrets, as ``hub credentials webhook`` printed them."""
        for org, secret in orjson.loads(await request.body()).items():
            self.endpoints[org] = Webhook(secret)
        return Response(status_code=204)

    async def count(self, request: Request) -> Response:
        return JSONResponse({"count": len(self.first), "forged": self.forged})

    async def take(self, request: Request) -> Response:
        """Every arrival so far, forgotten once answered."""
        taken = [[org, key, at] for (org, key), at in self.first.items()]
        self.first.clear()
        return Response(orjson.dumps(taken), media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/hook/{org}", self.hook, methods=["POST"]),
                Route("/secrets", self.secrets, methods=["POST"]),
                Route("/count", self.count),
                Route("/take", self.take, methods=["POST"]),
            ]
        )


async def receive(url: str, root: str, orgs: list[str]) -> None:
    """The endpoints and, each on its own connection, the SDK recipients ``orgs``; until SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    arrivals = Arrivals()
    opening = asyncio.Semaphore(OPENING)
    connections = await asyncio.gather(*(_connect_as(url, org, opening) for org in orgs))
    sock = listening("127.0.0.1", 0)
    print(address(sock), flush=True)  # the run reads where the endpoints listen
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(serve_asgi(arrivals.app(), sock, stop))
            for org, nc in zip(orgs, connections, strict=True):
                tasks.create_task(_recipient(nc, org, root).run(arrivals.handler(org), stop))
    finally:
        await asyncio.gather(*(nc.drain() for nc in connections))


# -- the county --------------------------------------------------------------------------------


@asynccontextmanager
async def announced(
    out: Path, *argv: str, env: dict[str, str]
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """A child that prints the ``http://host:port`` it listens on; yields it and that address."""
    with out.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=sink)
        try:

            async def said() -> bool:
                if process.returncode is not None:
                    raise RuntimeError(f"{argv[0]} {argv[1]} exited with {process.returncode}")
                return _address_in(out) is not None

            await until(said, within=120)
            yield process, _address_in(out) or ""

        finally:
            if process.returncode is None:
                process.terminate()
                await asyncio.wait_for(process.wait(), timeout=60)


def _address_in(out: Path) -> str | None:
    found = ANNOUNCED.search(out.read_bytes())
    return found.group().decode() if found else None


@dataclass
class County:
    """A running county: both paths' publishers, the receivers, the ledger and the processes."""

    orgs: dict[str, list[str]]
    publisher: Publisher  # renqiu-scjg over its own NATS connection
    gateway: httpx.AsyncClient  # renqiu-scjg over HTTP, with its bearer token
    receivers: httpx.AsyncClient
    ledger: Ledger
    pids: dict[str, int]
    receipts: int = 0  # deliveries sent so far: the ledger must acknowledge them all
    sent: dict[str, float] = field(default_factory=dict)  # event key → time.time() at sending

    def events(self, path: str, count: int) -> list[dict[str, Any]]:
        now, recipients = datetime.now(UTC), tuple(self.orgs[path])
        return [
            sample_event("permit", PUBLISHER, now, n, recipients=recipients) for n in range(count)
        ]

    def sender(self, path: str) -> Callable[[dict[str, Any]], Coroutine[Any, Any, None]]:
        """Publish one event on ``path``, noting when it left."""

        async def by_gateway(event: dict[str, Any]) -> None:
            self.sent[f"{PUBLISHER}/{event['id']}"] = time.time()
            answer = await self.gateway.post("/v1/events", content=orjson.dumps(event))
            if answer.status_code != 201:
                raise RuntimeError(f"the gateway answered {answer.status_code}: {answer.text}")

        async def by_sdk(event: dict[str, Any]) -> None:
            self.sent[f"{PUBLISHER}/{event['id']}"] = time.time()
            await self.publisher.publish(event)

        return by_gateway if path == GATEWAY else by_sdk

    async def arrived(self, count: int) -> None:
        """Until the receivers have ``count`` (recipient, event) pairs."""

        async def enough() -> bool:
            seen = (await self.receivers.get("/count")).json()
            if seen["forged"]:
                raise RuntimeError(f"{seen['forged']} webhook call(s) failed the signature check")
            return int(seen["count"]) >= count

        await until(enough, within=900, every=0.02)

    async def take(self) -> list[float]:
        """The lags (ms) of every arrival since the last take."""
        taken = orjson.loads((await self.receivers.post("/take")).content)
        return [(at - self.sent[key]) * 1000 for _org, key, at in taken]

    async def settled(self, deliveries: int) -> None:
        """Until the ledger acknowledged every delivery so far (receipts of the previous figure)."""
        self.receipts += deliveries

        async def acknowledged() -> bool:
            counts = await self.ledger.counts()
            return counts.get(DeliveryState.ACKNOWLEDGED, 0) >= self.receipts

        await until(acknowledged, within=900, every=0.1)

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds each process of the county has used so far."""
        used = {}
        for name, pid in self.pids.items():
            times = psutil.Process(pid).cpu_times()
            used[name] = times.user + times.system
        return used


def split_recipients() -> dict[str, list[str]]:
    """Renqiu's 20 recipients of bench.suite, ``RECIPIENTS`` for each path."""
    everyone = county_recipients()
    return {GATEWAY: everyone[:RECIPIENTS], SDK: everyone[-RECIPIENTS:]}


@asynccontextmanager
async def county(config: Config) -> AsyncIterator[County]:
    """nats-server, ``hub serve``, the receivers and ``hub gateway`` pushing to them; warmed up."""
    orgs = split_recipients()
    everyone = orgs[GATEWAY] + orgs[SDK]
    store = config.credentials.store
    token = tokens.issue(store, PUBLISHER)
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as folder:
        data = Path(folder)
        async with AsyncExitStack() as stack:
            enter = stack.enter_async_context
            server = await enter(nats_server(config, True))
            hub, _ = await enter(hub_process(config, server, data, everyone))
            receive_argv = ("-m", "bench.gateway", "receive", server.url, WIRE.root, *orgs[SDK])
            receivers, receivers_url = await enter(
                announced(
                    data / "receivers.out", sys.executable, *receive_argv, env=config.farm_env()
                )
            )
            to_receivers = await enter(httpx.AsyncClient(base_url=receivers_url, timeout=60))
            secrets = {
                org: webhooks.register(store, org, f"{receivers_url}/hook/{org}").secret
                for org in orgs[GATEWAY]
            }
            (await to_receivers.post("/secrets", content=orjson.dumps(secrets))).raise_for_status()
            gateway_env = config.hub_env(server.url) | {
                "HUB_DATA_DIR": str(data),
                "HUB_LOG_LEVEL": "ERROR",
                "HUB_GATEWAY_PORT": "0",
            }
            gateway, gateway_url = await enter(
                announced(data / "gateway.out", str(BIN / "hub"), "gateway", env=gateway_env)
            )
            ops = await enter(connected(config, server.url, OPS, "bench-ops"))
            consumers = [WIRE.delivery_consumer(org) for org in everyone]
            await until(partial(_pulling, ops, WIRE.deliveries_stream, consumers), within=120)
            nc = await enter(connected(config, server.url, PUBLISHER, "bench-publisher"))
            headers = {"authorization": f"Bearer {token}", "content-type": STRUCTURED}
            to_gateway = await enter(
                httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=60)
            )
            ledger = await enter(Ledger.open(f"sqlite:///{data}/ledger.sqlite3"))
            pids = {
                "nats-server": server.pid or 0,
                "hub serve": hub.pid,
                "hub gateway": gateway.pid,
                "receivers": receivers.pid,
                "publisher": os.getpid(),
            }
            publisher = Publisher(nc, PUBLISHER, wire=WIRE, timeout_s=60)
            found = County(orgs, publisher, to_gateway, to_receivers, ledger, pids)
            for path in PATHS:  # connections opened, first requests served, before any figure
                await found.sender(path)(found.events(path, 1)[0])
                await found.arrived(len(orgs[path]))
                await found.take()
                await found.settled(len(orgs[path]))
            yield found


# -- the figures -------------------------------------------------------------------------------


async def throughput(county: County, path: str, events: int) -> dict[str, float]:
    """Accepted events/s and deliveries/s, ``IN_FLIGHT`` publications at a time."""
    send, queue = county.sender(path), list(reversed(county.events(path, events)))
    deliveries = events * len(county.orgs[path])
    before = county.cpu_s()

    async def worker() -> None:
        while queue:
            await send(queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    publish_s = time.perf_counter() - started
    await county.arrived(deliveries)
    total_s = time.perf_counter() - started
    await county.take()
    await county.settled(deliveries)
    after = county.cpu_s()  # the receipts in the ledger included
    return {
        "accepted_per_s": events / publish_s,
        "deliveries_per_s": deliveries / total_s,
    } | {
        f"cpu_ms_per_event, {name}": (after[name] - before[name]) * 1000 / events for name in after
    }


async def latency(county: County, path: str, rate: int, seconds: float) -> dict[str, float]:
    """publish→delivered at ``rate`` events/s offered, whatever the answers take (open loop)."""
    events = county.events(path, int(rate * seconds))
    await open_loop(rate, events, county.sender(path))
    deliveries = len(events) * len(county.orgs[path])
    await county.arrived(deliveries)
    lags = await county.take()
    await county.settled(deliveries)
    return lag_figures(lags)


Job = Callable[[County], Awaitable[dict[str, float]]]


def sizes(quick: bool) -> tuple[int, float]:
    """Events of the throughput figures, seconds of the latency figures."""
    return (200, 3.0) if quick else (600, 10.0)


def jobs(quick: bool) -> dict[str, Job]:
    """Every figure of a repetition, by its key, the paths side by side."""
    events, seconds = sizes(quick)
    figures: dict[str, Job] = {}
    for path in PATHS:
        figures[f"{path} throughput"] = partial(throughput, path=path, events=events)
    for rate in RATES:
        for path in PATHS:
            figures[f"{path} latency at {rate}/s"] = partial(
                latency, path=path, rate=rate, seconds=seconds
            )
    return figures


def turns(figures: dict[str, Job], repetition: int) -> list[tuple[str, Job]]:
    """The figures in order, the path that goes first alternating with each repetition."""
    ordered = list(figures.items())
    if repetition % 2:  # swap each (gateway, sdk) pair
        ordered = [item for pair in zip(ordered[1::2], ordered[::2], strict=True) for item in pair]
    return ordered


async def run(quick: bool) -> dict[str, Any]:
    """Every figure, ``runs`` times, each repetition in a fresh county; saved after each sample."""
    began = time.perf_counter()
    runs = 1 if quick else 3
    name = "gateway-quick" if quick else "gateway"
    results: dict[str, Any] = {
        "machine": machine(),
        "runs": runs,
        "events": sizes(quick)[0],
        "recipients": RECIPIENTS,
        "rates": list(RATES),
        "seconds": sizes(quick)[1],
        "in_flight": IN_FLIGHT,
        "configuration": AUTH_TLS,
        "load_average_start": os.getloadavg(),
    }
    samples: dict[str, list[dict[str, float]]] = {}
    figures = jobs(quick)
    with tempfile.TemporaryDirectory(prefix="bench-credentials-") as folder:
        config = Config(AUTH_TLS, Credentials.create(Path(folder)))
        for n in range(runs):
            await quiet()  # at most half a minute for a second that other processes leave alone
            async with county(config) as running:
                for key, job in turns(figures, n):
                    print(f"  {key} ({n + 1}/{runs}) …", flush=True)
                    load, before = OtherLoad(), running.cpu_s()
                    sample = await job(running)
                    other = others(load, before, running.cpu_s())
                    print(f"    other processes kept {other:.2f} cores busy", flush=True)
                    samples.setdefault(key, []).append(sample | {"other_cores": other})
                    results[key] = {
                        k: summary([s[k] for s in samples[key]]) for k in samples[key][0]
                    } | {"samples": samples[key]}
                    save(name, results)
    results["load_average_end"] = os.getloadavg()
    results["took_s"] = round(time.perf_counter() - began, 1)
    save(name, results)
    return results


def others(load: OtherLoad, before: dict[str, float], after: dict[str, float]) -> float:
    """Cores other processes kept busy: ``OtherLoad`` less the county's children still running.

    ``OtherLoad`` counts only the children that have ended; the county's outlive its figures.
    """
    elapsed = time.perf_counter() - load.started
    children = sum(after[name] - before[name] for name in after if name != "publisher")
    return max(load.cores() - children / elapsed, 0.0)


# -- the table ---------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    """The results as Markdown: the two paths side by side, then where the CPU went."""

    def value(key: str, stat: str, fmt: str = "{:,.0f}") -> str:
        figure = results.get(key)
        if figure is None:
            return DASH
        return f"{fmt.format(figure[stat]['min'])} / {fmt.format(figure[stat]['median'])}"

    def ratio(key: str, stat: str) -> str:
        a, b = (results.get(f"{path} {key}") for path in PATHS)
        return f"{a[stat]['median'] / b[stat]['median']:.2f}" if a and b else DASH

    def lags(key: str) -> str:
        figure = results.get(key)
        if figure is None:
            return DASH
        return " / ".join(f"{figure[s]['median']:,.0f}" for s in ("p50_ms", "p99_ms", "max_ms"))

    events, recipients = results["events"], results["recipients"]
    start, end = results["load_average_start"], results.get("load_average_end", [0.0] * 3)
    # each sample is measured once here: bench.machine's "after N attempts" does not apply
    line = measured(results).replace(f" (after {ATTEMPTS} attempts)", "")
    out = [
        line + f" {results['configuration']}, fsync always; load average (1, 5, 15 min)"
        f" {start[0]:.2f}, {start[1]:.2f}, {start[2]:.2f} at the start and"
        f" {end[0]:.2f}, {end[1]:.2f}, {end[2]:.2f} at the end;"
        f" the run took {results.get('took_s', 0) / 60:.0f} min.",
        "",
        f"| figure | {LABELS[GATEWAY]} | {LABELS[SDK]} | gateway / SDK (median) |",
        "|---|---|---|---|",
        f"| accepted events/s ({events:,} events × {recipients}, {results['in_flight']} in flight;"
        f" min / median) | {value(f'{GATEWAY} throughput', 'accepted_per_s')}"
        f" | {value(f'{SDK} throughput', 'accepted_per_s')}"
        f" | {ratio('throughput', 'accepted_per_s')} |",
        f"| deliveries/s end to end (min / median) | "
        f"{value(f'{GATEWAY} throughput', 'deliveries_per_s')}"
        f" | {value(f'{SDK} throughput', 'deliveries_per_s')}"
        f" | {ratio('throughput', 'deliveries_per_s')} |",
    ]
    for rate in RATES:
        key = f"latency at {rate}/s"
        out.append(
            f"| publish→delivered at {rate} events/s × {recipients}, p50 / p99 / max ms"
            f" (medians of the runs) | {lags(f'{GATEWAY} {key}')} | {lags(f'{SDK} {key}')}"
            f" | {ratio(key, 'p99_ms')} (p99) |"
        )
    out += [
        "",
        "| CPU ms per event (its deliveries and receipts), throughput figure, median"
        f" | {LABELS[GATEWAY]} | {LABELS[SDK]} |",
        "|---|---|---|",
    ]
    for process in PROCESSES:
        stat = f"cpu_ms_per_event, {process}"
        cells = [
            f"{results[f'{path} throughput'][stat]['median']:.2f}"
            if f"{path} throughput" in results
            else DASH
            for path in PATHS
        ]
        out.append(f"| {process} | {' | '.join(cells)} |")
    if loaded := under_load(results):
        out += ["", loaded]
    return "\n".join(out)


def main() -> None:
    if sys.argv[1:2] == ["receive"]:
        logging.basicConfig(level=logging.ERROR)  # reconnect notices are not figures
        url, root, *orgs = sys.argv[2:]
        asyncio.run(receive(url, root, orgs))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="one run each, small sizes (a smoke test)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    results = asyncio.run(run(args.quick))
    finish("gateway", results, render, not args.quick, (START, END))


def render_saved() -> None:
    """Write the table of the last full run from its JSON."""
    publish_saved("gateway", render, (START, END))


if __name__ == "__main__":
    main()
