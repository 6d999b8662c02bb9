"""What authorization and TLS cost: the hub measured open, with auth, and with auth and TLS.

    python -m bench.security [--quick]

In one run, for each configuration of ``bench.configs`` (``open``, ``auth``, ``auth+tls``): the
hub's accepted events/s and deliveries/s (fsync always, 2,000 permit events to 20 recipients),
publish→acknowledgement p50/p99 at 100 events/s × 20 recipients, and the time to open 32
organisations' connections (one after another, and all at once). Raw nats-py is measured open and
with auth and TLS, for the ratio. The configurations take turns within each of the three
repetitions (so a drift of the machine is spread over all of them); tables give min / median.
Results go to ``bench/results/security.json`` and the table to ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.configs import AUTH, AUTH_TLS, CONFIGS, OPEN, RAW_CONFIGS, Config, Credentials
from bench.machine import machine, sampled, save, summary
from bench.suite import hub_throughput, latency_at, nats_server, raw_latency_at, raw_throughput
from bench.tables import DASH, finish, measured, publish_saved, under_load
from hub.registry import load_registry

START, END = (
    "<!-- security: written by python -m bench.security -->",
    "<!-- end of security -->",
)
CONNECTIONS = 32  # organisations' connections opened for the set-up figure
RATE = 100  # offered events/s of the latency figure
Job = Callable[[], Awaitable[dict[str, float]]]


async def connection_setup(config: Config, count: int, rounds: int = 5) -> dict[str, float]:
    """Milliseconds to open ``count`` organisations' connections: in turn, and all at once.

    A connection is ready when the server answered its first PING (after the TLS handshake and
    the CONNECT that carries the user JWT and the signed nonce). Median of ``rounds`` rounds.
    """
    orgs = [o.id for o in load_registry().organisations][:count]
    in_turn, at_once = [], []
    async with nats_server(config, True) as server:
        for _ in range(rounds):
            started = time.perf_counter()
            opened = [await config.connect(server.url, org, f"bench-{org}") for org in orgs]
            in_turn.append((time.perf_counter() - started) * 1000)
            await asyncio.gather(*(nc.close() for nc in opened))
            started = time.perf_counter()
            opened = await asyncio.gather(
                *(config.connect(server.url, org, f"bench-{org}") for org in orgs)
            )
            at_once.append((time.perf_counter() - started) * 1000)
            await asyncio.gather(*(nc.close() for nc in opened))
    return {"in_turn_ms": statistics.median(in_turn), "at_once_ms": statistics.median(at_once)}


def jobs(configs: list[Config], events: int, seconds: float) -> dict[str, Job]:
    """Every figure of the run, by its key; the configurations side by side."""
    figures: dict[str, Job] = {}
    for c in configs:
        if c.name in RAW_CONFIGS:
            figures[f"raw throughput, {c.name}"] = partial(raw_throughput, c, True, events)
        figures[f"hub throughput, {c.name}"] = partial(hub_throughput, c, True, events)
    for c in configs:
        if c.name in RAW_CONFIGS:
            figures[f"raw latency, {c.name}"] = partial(raw_latency_at, c, RATE, seconds)
        figures[f"hub latency, {c.name}"] = partial(latency_at, c, RATE, seconds)
    for c in configs:
        figures[f"connections, {c.name}"] = partial(connection_setup, c, CONNECTIONS)
    return figures


async def run(quick: bool) -> dict[str, Any]:
    """Every figure, ``runs`` times, the figures taking turns; saved after each sample."""
    began = time.perf_counter()
    runs = 1 if quick else 3
    events, seconds = (500, 3.0) if quick else (2000, 10.0)
    name = "security-quick" if quick else "security"
    results: dict[str, Any] = {
        "machine": machine(),
        "runs": runs,
        "events": events,
        "rate": RATE,
        "seconds": seconds,
        "connections": CONNECTIONS,
    }
    samples: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-credentials-") as folder:
        credentials = Credentials.create(Path(folder))
        figures = jobs([Config(c, credentials) for c in CONFIGS], events, seconds)
        for n in range(runs):
            for key, job in figures.items():
                print(f"  {key} ({n + 1}/{runs}) …", flush=True)
                samples.setdefault(key, []).append(await sampled(job))
                results[key] = summarised(samples[key])
                save(name, results)
    results["took_s"] = round(time.perf_counter() - began, 1)
    save(name, results)
    return results


def summarised(samples: list[dict[str, float]]) -> dict[str, Any]:
    return {k: summary([s[k] for s in samples]) for k in samples[0]} | {"samples": samples}


def render(results: dict[str, Any]) -> str:
    """The results as a Markdown table: each configuration, and the change against ``open``."""

    def value(key: str, field: str, config: str, fmt: str = "{:,.0f}") -> str:
        figure = results.get(f"{key}, {config}")
        if figure is None:
            return DASH
        s = figure[field]
        return f"{fmt.format(s['min'])} / {fmt.format(s['median'])}"

    def change(key: str, field: str, config: str) -> str:
        base, other = results.get(f"{key}, {OPEN}"), results.get(f"{key}, {config}")
        if base is None or other is None:
            return DASH
        return f"{other[field]['median'] / base[field]['median'] - 1:+.0%}"

    events, rate = results["events"], results["rate"]
    rows = [
        ("hub throughput", "accepted_per_s", f"hub accepted events/s ({events:,} events × 20)"),
        ("hub throughput", "deliveries_per_s", "hub deliveries/s"),
        ("raw throughput", "accepted_per_s", "raw nats-py accepted events/s"),
        ("raw throughput", "deliveries_per_s", "raw nats-py deliveries/s"),
        ("hub latency", "p50_ms", f"hub publish→acknowledgement p50 at {rate}/s × 20, ms"),
        ("hub latency", "p99_ms", "hub publish→acknowledgement p99, ms"),
        ("raw latency", "p50_ms", f"raw publish→acknowledgement p50 at {rate}/s × 20, ms"),
        ("raw latency", "p99_ms", "raw publish→acknowledgement p99, ms"),
        (
            "connections",
            "in_turn_ms",
            f"{results['connections']} organisations' connections, one after another, ms",
        ),
        ("connections", "at_once_ms", f"{results['connections']} connections all at once, ms"),
    ]
    out = [
        measured(results) + f" fsync always; the run took {results.get('took_s', 0) / 60:.0f} min.",
        "",
        f"| figure (min / median) | {OPEN} | {AUTH} | {AUTH_TLS} | {AUTH} vs {OPEN}"
        f" | {AUTH_TLS} vs {OPEN} |",
        "|---|---|---|---|---|---|",
    ]
    for key, field, label in rows:
        cells = [value(key, field, c) for c in CONFIGS]
        changes = [change(key, field, c) for c in (AUTH, AUTH_TLS)]
        out.append(f"| {label} | {' | '.join(cells)} | {' | '.join(changes)} |")
    ratios = []
    for config in RAW_CONFIGS:
        hub, raw = (
            results.get(f"hub throughput, {config}"),
            results.get(f"raw throughput, {config}"),
        )
        if hub and raw:
            share = hub["deliveries_per_s"]["median"] / raw["deliveries_per_s"]["median"]
            ratios.append(f"{share:.0%} {config}")
    if ratios:
        out += [
            "",
            "Hub deliveries/s against raw nats-py in the same configuration (median):"
            f" {', '.join(ratios)}.",
        ]
    if loaded := under_load(results):
        out += ["", loaded]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="one run each, small sizes (a smoke test)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the farm's reconnect notices are not figures
    results = asyncio.run(run(args.quick))
    finish("security", results, render, not args.quick, (START, END))


def render_saved() -> None:
    """Write the table of the last full run from its JSON."""
    publish_saved("security", render, (START, END))


if __name__ == "__main__":
    main()
