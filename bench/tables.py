"""The delivery benchmark's results as Markdown, and writing a table into bench/README.md."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.configs import OPEN
from bench.machine import ATTEMPTS, BUSY_CORES, RESULTS

README = Path(__file__).parent / "README.md"
RATES = (100, 200, 1000)  # offered events/s for the latency figures
SCALES = (20, 200, 2000)  # organisations of the scaling figures
DASH = "—"
Marks = tuple[str, str]  # where a benchmark's tables stand in bench/README.md


def keyed(key: str, config: str) -> str:
    """A figure's key in the results: ``open`` keeps the key it had before configurations."""
    return key if config == OPEN else f"{key}, {config}"


def cell(figure: dict[str, Any], key: str, fmt: str = "{:,.0f}") -> str:
    s = figure[key]
    return f"{fmt.format(s['min'])} / {fmt.format(s['median'])}"


def median(figure: dict[str, Any], *keys: str) -> list[float]:
    return [figure[k]["median"] for k in keys]


def measured(results: dict[str, Any]) -> str:
    """Where and when, in one sentence."""
    m = results["machine"]
    return (
        f"Measured {m['when'][:10]} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB;"
        f" Python {m['python']}; {m['nats_server']};"
        + (f" code {m['code']};" if m.get("code") else "")
        + f" {results['runs']} run(s) per figure."
        + other_load(results)
        + (
            " Figures missing after an interrupted run were measured by `--resume` at "
            + ", ".join(w[:16].replace("T", " ") for w in results["resumed"])
            + " UTC, same machine."
            if results.get("resumed")
            else ""
        )
    )


def other_load(results: dict[str, Any]) -> str:
    """What else the machine was doing, from the samples' ``other_cores`` (when recorded)."""
    samples = [
        sample
        for figure in results.values()
        if isinstance(figure, dict)
        for sample in figure.get("samples", [])
        if "other_cores" in sample
    ]
    if not samples:
        return ""
    loads = [s["other_cores"] for s in samples]
    spoiled = sum(int(s.get("spoiled", 0)) for s in samples)
    still = sum(load >= BUSY_CORES for load in loads)
    return (
        f" Other processes (not the benchmark's) kept {statistics.median(loads):.2f} of the"
        f" {results['machine']['cores']} cores busy in the median sample, {max(loads):.2f} at most"
        + (f"; {spoiled} attempt(s) they spoiled were measured again" if spoiled else "")
        + (
            f"; {still} of {len(loads)} samples kept ran beside more than {BUSY_CORES} cores of"
            f" theirs (after {ATTEMPTS} attempts)."
            if still
            else "."
        )
    )


def under_load(results: dict[str, Any]) -> str:
    """The figures that kept samples taken beside other processes' load, and how many."""
    found = []
    for key, figure in results.items():
        samples = figure.get("samples", []) if isinstance(figure, dict) else []
        if loaded := sum(s.get("other_cores", 0.0) >= BUSY_CORES for s in samples):
            found.append(f"{key} {loaded} of {len(samples)}")
    if not found:
        return ""
    return (
        f"Samples kept although other processes kept more than {BUSY_CORES} cores busy (their"
        f" medians are not the hub's alone): {'; '.join(found)}."
    )


def publish(table: str, start: str, end: str, copy: Path | None = None) -> None:
    """Write ``table`` between the markers ``start`` and ``end`` of bench/README.md (and copy)."""
    if copy is not None:
        copy.write_text(table + "\n", encoding="utf-8")
        print(f"→ {copy}")
    readme = README.read_text(encoding="utf-8")
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    README.write_text(f"{head}{start}\n{table}\n{end}{tail}", encoding="utf-8")
    print(f"→ {README}")


Render = Callable[[dict[str, Any]], str]


def finish(name: str, results: dict[str, Any], render: Render, full: bool, marks: Marks) -> None:
    """Print a benchmark's tables and where its results went; a full run's go into the README.

    ``name``: its results file, ``results/NAME.json`` (``NAME-quick.json`` for a smoke run).
    """
    table = render(results)
    print(table)
    print(f"→ {RESULTS / (f'{name}.json' if full else f'{name}-quick.json')}")
    if full:
        publish(table, *marks)


def publish_saved(name: str, render: Render, marks: Marks) -> None:
    """Write the tables of the last full run again from ``results/NAME.json``."""
    publish(render(json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))), *marks)


def render_delivery(results: dict[str, Any]) -> str:
    """The delivery results as Markdown tables (min / median of the runs)."""
    configs: list[str] = results.get("security", [OPEN])
    out = [
        measured(results),
        "",
        "| figure (min / median) | configuration | raw nats-py | hub | hub / raw (median) |",
        "|---|---|---|---|---|",
    ]
    for mode in ("fsync always", "fsync off"):
        for key, label in (
            ("accepted_per_s", "accepted events/s"),
            ("deliveries_per_s", "deliveries/s"),
        ):
            for config in configs:
                hub = results.get(keyed(f"hub, {mode}", config))
                raw = results.get(keyed(f"raw, {mode}", config))
                if hub is None:
                    continue
                ratio = f"{hub[key]['median'] / raw[key]['median']:.0%}" if raw else DASH
                raw_cell = cell(raw, key) if raw else DASH
                out.append(
                    f"| {label}, {mode} | {config} | {raw_cell} | {cell(hub, key)} | {ratio} |"
                )
    out += [
        "",
        "| figure (fsync always) | configuration | raw nats-py | hub |",
        "|---|---|---|---|",
    ]
    for rate in RATES:
        for config in configs:
            hub, raw = (
                results.get(keyed(k, config))
                for k in (f"latency at {rate}/s", f"raw latency at {rate}/s")
            )
            if hub is None:
                continue
            lags = [
                " / ".join(f"{v:,.0f}" for v in median(f, "p50_ms", "p99_ms", "max_ms"))
                if f
                else DASH
                for f in (raw, hub)
            ]
            out.append(
                f"| publish→acknowledgement at {rate} events/s × 20, p50 / p99 / max ms"
                f" (median run) | {config} | {lags[0]} | {lags[1]} |"
            )
    for config in configs:
        out += catch_up_rows(results, config)
    out += [
        "",
        "| organisations | configuration | raw deliveries/s | hub deliveries/s | hub / raw"
        " | hub accepted/s | hub start-up, s | hub peak RSS, MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for organisations in SCALES:
        for config in configs:
            f = results.get(keyed(f"{organisations} organisations", config))
            raw_f = results.get(keyed(f"raw {organisations} organisations", config))
            if f is None:
                continue
            startup, accepted, delivered, rss = median(
                f, "startup_s", "accepted_per_s", "deliveries_per_s", "hub_rss_peak_mib"
            )
            raw_delivered = raw_f["deliveries_per_s"]["median"] if raw_f else None
            out.append(
                f"| {organisations} | {config} |"
                f" {f'{raw_delivered:,.0f}' if raw_delivered else DASH} | {delivered:,.0f} |"
                f" {f'{delivered / raw_delivered:.0%}' if raw_delivered else DASH} |"
                f" {accepted:,.0f} | {startup:.1f} | {rss:.0f} |"
            )
    if loaded := under_load(results):
        out += ["", loaded]
    return "\n".join(out)


def catch_up_rows(results: dict[str, Any], config: str) -> list[str]:
    """The catch-up and memory rows of one configuration (none when it was not measured)."""
    c, raw_c = results.get(keyed("catch-up", config)), results.get(keyed("raw catch-up", config))
    if c is None:
        return []
    backlog = int(c["backlog"]["median"])
    raw_seconds = cell(raw_c, "seconds", "{:,.1f}") if raw_c else DASH
    raw_rss = f"{raw_c['nats_rss_peak_mib']['median']:.0f}" if raw_c else DASH
    start, end, peak = median(c, "hub_rss_start_mib", "hub_rss_end_mib", "hub_rss_peak_mib")
    rounds = sorted(k for k in c if k.startswith("hub_rss_after_round_"))
    after = " / ".join(f"{v:.0f}" for v in median(c, *rounds))
    handled = " / ".join(f"{backlog * (n + 1) // 1000:,}k" for n in range(len(rounds)))
    return [
        f"| backlog of {backlog:,} deliveries cleared in, s (min / median) | {config} |"
        f" {raw_seconds} | {cell(c, 'seconds', '{:,.1f}')} |",
        f"| nats-server peak RSS during catch-up, MiB | {config} | {raw_rss}"
        f" | {c['nats_rss_peak_mib']['median']:.0f} |",
        f"| hub RSS during the first catch-up: start → end (peak), MiB | {config} | {DASH} |"
        f" {start:.0f} → {end:.0f} ({peak:.0f}) |",
        f"| hub RSS after {handled} deliveries (one process), MiB | {config} | {DASH} | {after} |",
    ]
