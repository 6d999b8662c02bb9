"""Deliveries/s and start-up with 20, 200 and 2,000 organisations, beside raw nats-py in one run.

    python -m bench.organisations [--quick] [--repetitions N]

Issue 15's organisations figure on its own (``bench.suite`` measures it only inside the full
suite), in the configuration a county deploys (``auth+tls`` of ``bench.configs``, fsync always).
For each size, ``bench.suite``'s synthetic registry: counties of one department and 20 townships
(20 townships: one county, 21 organisations; 2,000: 100 counties, 2,100 organisations). The same
1,000 events (``other`` events of about 450 bytes, 16 requests in flight) are published, each by
its county's department and delivered to that county's 20 townships:

- **hub** (``bench.suite.scaling``): nats-server, ``hub serve`` with the registry, the SDK farm
  (every township on a connection of its own), each department publishing on its own connection;
  the clock starts once every township is pulling (the farm's connections are open): deliveries/s
  until the ledger holds every receipt, accepted events/s until the last event is accepted; and
  start-up: from ``hub serve``'s start until the last township's consumer and the ledger's exist.
- **raw** (``bench.suite.raw_scaling``): nats-py alone, one stream and a durable pull consumer per
  township filtered to its county's subject, the consumers on one connection in a process of
  their own; deliveries/s from the moment every consumer is pulling until every consumer has
  acknowledged everything.

"Per organisation" is deliveries/s divided by the 20 organisations each event is delivered to
(its county's townships), the same at every size: the rate at which each recipient of an event
gets its deliveries, or fully delivered events/s. If the hub scales with organisations it stays
flat from 20 to 2,000; divided by every organisation of the registry instead, it would fall a
hundredfold by construction.

Raw and hub take turns (which goes first alternates with each repetition), the sizes one after
another, every figure with a server of its own. Each sample is measured once, however busy the
machine; it records how many cores other processes kept busy (``bench.machine.OtherLoad``) and
the 1-minute load average when it ended. Figures only: nothing here asserts a time. Results go
to ``bench/results/organisations.json`` (``--quick``: 20 and 200 organisations, one repetition,
200 events: ``organisations-quick.json``) and the table of a full run to ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.configs import AUTH_TLS, Config, Credentials
from bench.machine import OtherLoad, machine, save
from bench.scale import each, hub_imports, ratio, summarised
from bench.suite import PUBLISHERS, raw_scaling, scaling
from bench.tables import SCALES, finish, measured, publish_saved

START, END = (
    "<!-- organisations: written by python -m bench.organisations -->",
    "<!-- end of organisations -->",
)
SECURITY = AUTH_TLS  # what a county deploys, as bench.scale
RECIPIENTS = 20  # each event's: its county's townships (bench.suite.synthetic_registry)
EVENTS, QUICK_EVENTS = 1000, 200  # as bench.suite's organisations figure
RAW, HUB = "raw", "hub"
Figure = Callable[[Config, int, int], Awaitable[dict[str, float]]]
FIGURES: dict[str, Figure] = {RAW: raw_scaling, HUB: scaling}


def key(organisations: int, side: str) -> str:
    return f"{organisations} organisations, {side}"


async def measure(
    figure: Figure, config: Config, organisations: int, events: int
) -> dict[str, float]:
    """One sample of ``figure``, with the load it ran beside."""
    load = OtherLoad()  # the figure's server, hub and farm have ended when it returns: ours
    sample = await figure(config, organisations, events)
    return sample | {
        "per_organisation_per_s": sample["deliveries_per_s"] / RECIPIENTS,
        "other_cores": load.cores(),
        "load_1min": os.getloadavg()[0],
    }


async def run(quick: bool, repetitions: int) -> dict[str, Any]:
    """Every size ``repetitions`` times, raw and hub taking turns; saved after each sample."""
    began = time.perf_counter()
    name = "organisations-quick" if quick else "organisations"
    sizes = SCALES[:2] if quick else SCALES
    events = QUICK_EVENTS if quick else EVENTS
    results: dict[str, Any] = {
        "machine": machine(),
        "runs": 0,
        "configuration": SECURITY,
        "events": events,
        "recipients": RECIPIENTS,
        "in_flight": PUBLISHERS,
        "sizes": list(sizes),
        "load_average_start": os.getloadavg(),
    }
    samples: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-credentials-") as folder:
        config = Config(SECURITY, Credentials.create(Path(folder)))
        results["hub_imported_from"] = hub_imports(config)
        for n in range(repetitions):
            sides = [RAW, HUB] if n % 2 == 0 else [HUB, RAW]
            for organisations in sizes:
                for side in sides:
                    print(f"  {key(organisations, side)} ({n + 1}/{repetitions}) …", flush=True)
                    sample = await measure(FIGURES[side], config, organisations, events)
                    print(
                        f"    {sample['deliveries_per_s']:,.0f} deliveries/s; other processes"
                        f" kept {sample['other_cores']:.2f} cores busy",
                        flush=True,
                    )
                    found = samples.setdefault(key(organisations, side), [])
                    found.append(sample | {"repetition": float(n + 1)})
                    results[key(organisations, side)] = summarised(found)
                    save(name, results)
            results["runs"] = n + 1
    results["load_average_end"] = os.getloadavg()
    results["took_s"] = round(time.perf_counter() - began, 1)
    save(name, results)
    return results


def render(results: dict[str, Any]) -> str:
    """The table: every repetition's value, in order; ratios of the medians."""
    sizes, events, recipients = results["sizes"], results["events"], results["recipients"]
    start, end = results["load_average_start"], results.get("load_average_end", [0.0] * 3)
    kept = [
        s
        for figure in results.values()
        if isinstance(figure, dict)
        for s in figure.get("samples", [])
    ]
    others = [s["other_cores"] for s in kept]
    during = [s["load_1min"] for s in kept]
    line = measured({k: v for k, v in results.items() if k in ("machine", "runs")})
    out = [
        line + f" {results['configuration']}, fsync always; {events:,} events, each to its"
        f" county's {recipients} townships, {results['in_flight']} in flight. Other processes"
        f" (not the benchmark's) kept {min(others, default=0):.2f}–{max(others, default=0):.2f}"
        f" of the {results['machine']['cores']} cores busy (median"
        f" {statistics.median(others or [0]):.2f}, per sample); load average (1, 5, 15 min)"
        f" {start[0]:.2f}, {start[1]:.2f}, {start[2]:.2f} at the start,"
        f" {end[0]:.2f}, {end[1]:.2f}, {end[2]:.2f} at the end, 1-min"
        f" {min(during, default=0):.1f}–{max(during, default=0):.1f} (median"
        f" {statistics.median(during or [0]):.1f}) at the end of each sample, the benchmark's"
        f" own processes included; the run took {results.get('took_s', 0) / 60:.0f} min. Each"
        " cell: every repetition's value, in order; ratios: of the medians.",
        "",
        "| townships (organisations in the registry) | raw deliveries/s | hub deliveries/s"
        f" | hub / raw | raw per organisation (÷ {recipients}) | hub per organisation"
        f" (÷ {recipients}) | hub per organisation against {sizes[0]:,} townships"
        " | hub accepted events/s | hub start-up, s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for organisations in sizes:
        raw, hub = key(organisations, RAW), key(organisations, HUB)
        out.append(
            f"| {organisations:,} ({organisations + max(organisations // recipients, 1):,})"
            f" | {each(results, raw, 'deliveries_per_s')}"
            f" | {each(results, hub, 'deliveries_per_s')}"
            f" | {ratio(results, hub, raw, 'deliveries_per_s')}"
            f" | {each(results, raw, 'per_organisation_per_s')}"
            f" | {each(results, hub, 'per_organisation_per_s')}"
            f" | {ratio(results, hub, key(sizes[0], HUB), 'per_organisation_per_s')}"
            f" | {each(results, hub, 'accepted_per_s')}"
            f" | {each(results, hub, 'startup_s', '{:.1f}')} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="20 and 200 organisations, one repetition, 200 events"
    )
    parser.add_argument("--repetitions", type=int, default=2, help="repetitions (default 2)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the farm's reconnect notices are not figures
    results = asyncio.run(run(args.quick, 1 if args.quick else args.repetitions))
    finish("organisations", results, render, not args.quick, (START, END))


def render_saved() -> None:
    """Write the table of the last full run from its JSON."""
    publish_saved("organisations", render, (START, END))


if __name__ == "__main__":
    main()
