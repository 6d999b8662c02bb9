"""What the signed record costs: the hub as it is, its background work made frequent, and before.

    python -m bench.audit [--quick]

In one run, in the production security configuration (``auth+tls``), for each of

- ``record``: the hub as it is (it seals what it stores, signs every bundle, checks every receipt
  batch's signature; checkpoints every 5 s, verifies the whole record every 60 s);
- ``record, busy``: the same with a checkpoint every 0.5 s and a verification every 5 s;
- ``previous``: commit 3462bfe, the code before the signed record, hub and SDK alike, from a
  ``git worktree`` of that commit (``previous_tree``), driven by this harness;

the hub's deliveries/s (2,000 permit events × 20 recipients, fsync always) and
publish→acknowledgement p50/p99 at 100 events/s × 20. The configurations take turns within each
repetition, starting one later each time. The cost of each signing operation is measured in the
same run (µs, median). Results go to ``bench/results/audit.json`` and the table to
``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench.configs import AUTH_TLS, Config, Credentials
from bench.costs import COSTS, costs
from bench.machine import machine, sampled, save
from bench.security import Job, summarised
from bench.suite import hub_throughput, latency_at
from bench.tables import DASH, finish, measured, publish_saved

START, END = "<!-- audit: written by python -m bench.audit -->", "<!-- end of audit -->"
RECORD, BUSY, PREVIOUS = "record", "record, busy", "previous"
VARIANTS = (RECORD, BUSY, PREVIOUS)
PREVIOUS_COMMIT = "3462bfe"  # issue 12's code: no seals, signatures, checkpoints or audit watch
SECURITY = AUTH_TLS  # what a county deploys: organisations reach the hub over the network
BUSY_SETTINGS = (("HUB_CHECKPOINT_S", "0.5"), ("HUB_AUDIT_VERIFY_S", "5"))
RATE = 100  # offered events/s of the latency figure
ROOT = Path(__file__).parent.parent


@dataclass(frozen=True)
class Variant(Config):
    """A security configuration plus the hub's settings, or another checkout's code to run."""

    label: str = RECORD
    settings: tuple[tuple[str, str], ...] = ()
    tree: Path | None = None  # the checkout whose hub and SDK run (this one: ``ROOT``)
    shim: Path | None = None  # holds ``bench/farm.py`` for ``tree``'s SDK (``unsigned_farm``)

    def _code(self, *paths: Path | None) -> dict[str, str]:
        """Imports from ``paths`` first: ``PYTHONSAFEPATH`` keeps the working directory out."""
        found = [str(p) for p in paths if p is not None]
        return {"PYTHONSAFEPATH": "1", "PYTHONPATH": ":".join(found)} if found else {}

    def hub_env(self, url: str) -> dict[str, str]:
        """``hub serve``'s environment, with this variant's settings and code."""
        return super().hub_env(url) | dict(self.settings) | self._code(self.tree)

    def farm_env(self, raw: bool = False) -> dict[str, str]:
        """The recipients' environment, with this variant's SDK."""
        code = self._code(self.shim, self.tree) if self.tree is not None else {}
        return super().farm_env(raw) | code


@contextmanager
def previous_tree(folder: Path) -> Iterator[tuple[Path, Path]]:
    """A worktree of ``PREVIOUS_COMMIT`` and a shim with its farm; the worktree removed after."""
    tree, shim = folder / "tree", folder / "shim" / "bench"
    git = ["git", "-C", str(ROOT), "worktree"]
    subprocess.run([*git, "add", "--detach", str(tree), PREVIOUS_COMMIT], check=True)
    try:
        shim.mkdir(parents=True)
        (shim / "__init__.py").write_text("", encoding="utf-8")
        shutil.copy(Path(__file__).parent / "unsigned_farm.py", shim / "farm.py")
        yield tree, shim.parent
    finally:
        subprocess.run([*git, "remove", "--force", str(tree)], check=False)


def imported_from(variant: Variant) -> dict[str, Any]:
    """Where ``variant``'s hub and farm import from, and whether that hub has ``hub/audit``."""
    probe = (
        "import json, pathlib, bench.farm, hub, subscribers;"
        "print(json.dumps({'hub': hub.__file__, 'subscribers': subscribers.__file__,"
        " 'farm': bench.farm.__file__,"
        " 'signed_record': (pathlib.Path(hub.__file__).parent / 'audit').exists()}))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe],
        env=variant.farm_env(),  # the farm's path: the shim, then the tree the hub imports from
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(found.stdout))


def turns(variants: list[Variant], n: int, events: int, seconds: float) -> dict[str, Job]:
    """Repetition ``n``'s figures: the variants in turn, starting with the ``n``-th."""
    order = variants[n % len(variants) :] + variants[: n % len(variants)]
    figures: dict[str, Job] = {}
    for v in order:
        figures[f"hub throughput, {v.label}"] = partial(hub_throughput, v, True, events)
    for v in order:
        figures[f"hub latency, {v.label}"] = partial(latency_at, v, RATE, seconds)
    return figures


async def run(quick: bool, budget_s: float) -> dict[str, Any]:
    """Every figure, ``runs`` times, the variants taking turns; saved after each sample.

    A repetition is started only if, at the pace of those before it, it ends within
    ``budget_s`` of the start (other processes' load makes samples be measured again).
    """
    began = time.perf_counter()
    runs = 1 if quick else 3
    events, seconds = (500, 3.0) if quick else (2000, 10.0)
    name = "audit-quick" if quick else "audit"
    results: dict[str, Any] = {
        "machine": machine(),
        "runs": runs,
        "events": events,
        "rate": RATE,
        "seconds": seconds,
        "security": SECURITY,
        "busy_settings": dict(BUSY_SETTINGS),
    }
    samples: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as folder:
        credentials = Credentials.create(Path(folder) / "run")
        with previous_tree(Path(folder) / "previous") as (tree, shim):
            variants = [
                Variant(SECURITY, credentials, RECORD, tree=ROOT),
                Variant(SECURITY, credentials, BUSY, BUSY_SETTINGS, tree=ROOT),
                Variant(SECURITY, credentials, PREVIOUS, tree=tree, shim=shim),
            ]
            results["imports"] = {v.label: imported_from(v) for v in variants}
            print("  costs of signing …", flush=True)
            results["costs"] = await sampled(partial(costs, Path(folder) / "keys", quick))
            save(name, results)
            for n in range(runs):
                if n and (time.perf_counter() - began) * (n + 1) / n > budget_s:
                    break  # the next repetition would overrun: fewer, whole repetitions
                for key, job in turns(variants, n, events, seconds).items():
                    print(f"  {key} ({n + 1}/{runs}) …", flush=True)
                    samples.setdefault(key, []).append(await sampled(job))
                    results[key] = summarised(samples[key])
                    save(name, results)
                results["runs"] = n + 1
    results["took_s"] = round(time.perf_counter() - began, 1)
    save(name, results)
    return results


def render(results: dict[str, Any]) -> str:
    """The figures of each variant and their change against ``previous``; the costs of signing."""

    def value(key: str, field: str, variant: str) -> str:
        figure = results.get(f"{key}, {variant}")
        if figure is None:
            return DASH
        return f"{figure[field]['min']:,.0f} / {figure[field]['median']:,.0f}"

    def change(key: str, field: str, variant: str) -> str:
        base, other = results.get(f"{key}, {PREVIOUS}"), results.get(f"{key}, {variant}")
        if base is None or other is None:
            return DASH
        return f"{other[field]['median'] / base[field]['median']:.2f}"

    events, rate = results["events"], results["rate"]
    rows = [
        ("hub throughput", "deliveries_per_s", f"deliveries/s ({events:,} events × 20)"),
        ("hub throughput", "accepted_per_s", "accepted events/s"),
        ("hub latency", "p50_ms", f"publish→acknowledgement p50 at {rate}/s × 20, ms"),
        ("hub latency", "p99_ms", "publish→acknowledgement p99, ms"),
        ("hub latency", "max_ms", "publish→acknowledgement max, ms"),
    ]
    out = [
        measured(results)
        + f" {results['security']}, fsync always; the run took"
        + f" {results.get('took_s', 0) / 60:.0f} min.",
        "",
        f"| figure (min / median) | {RECORD} | {BUSY} | {PREVIOUS} ({PREVIOUS_COMMIT})"
        f" | {RECORD} / {PREVIOUS} | {BUSY} / {PREVIOUS} |",
        "|---|---|---|---|---|---|",
    ]
    for key, field, label in rows:
        cells = [value(key, field, v) for v in VARIANTS]
        ratios = [change(key, field, v) for v in (RECORD, BUSY)]
        out.append(f"| {label} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    short = [
        f"{key} ({len(figure['samples'])})"
        for key, figure in results.items()
        if isinstance(figure, dict) and 0 < len(figure.get("samples", [])) < results["runs"]
    ]
    if short:
        out += ["", f"Fewer samples than runs: {', '.join(short)}. {results.get('note', '')}"]
    out += ["", *render_costs(results["costs"], events * 20)]
    return "\n".join(out)


def render_costs(measured_costs: dict[str, float], deliveries: int) -> list[str]:
    """The costs of signing, and what they would add up to at one bundle per delivery."""
    out = ["| operation (one permit event, or one receipt) | µs, median |", "|---|---|"]
    out += [
        f"| {label} | {measured_costs[key]:,.1f} |"
        for key, label in COSTS.items()
        if key in measured_costs
    ]
    per_delivery = sum(
        measured_costs[k] for k in ("bundle_sign", "bundle_verify", "receipt_sign", "receipt_check")
    )
    if (load := measured_costs.get("other_cores")) is not None:
        out += ["", f"Measured while other processes kept {load:.2f} of the cores busy."]
    out += [
        "",
        f"Ed25519 on both sides adds up to {per_delivery:,.0f} µs if every delivery were a bundle"
        f" and a receipt batch of its own: {per_delivery * deliveries / 1e6:,.1f} CPU-s for the"
        f" {deliveries:,} deliveries of the throughput figure, an upper bound (bundles and receipt"
        " batches carry several events when the hub is busy).",
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="one run each, small sizes (a smoke test)"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=25.0,
        help="start a repetition only if it should end within this many minutes of the start",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the farm's reconnect notices are not figures
    results = asyncio.run(run(args.quick, args.minutes * 60))
    finish("audit", results, render, not args.quick, (START, END))


def render_saved() -> None:
    """Write the table of the last full run from its JSON."""
    publish_saved("audit", render, (START, END))


if __name__ == "__main__":
    main()
