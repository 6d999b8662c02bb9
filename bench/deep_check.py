"""What the deep check's comparison costs: two equal ledgers compared, as the hub compares hourly.

    python -m bench.deep_check [--pairs 400000]

A SQLite ledger gets ``--pairs`` acknowledged pairs (``bench.ledger``'s ``fill``: random event
ids, Renqiu's 20 recipients) and is copied, as the deep check's recomputation would rebuild it;
then ``hub.recompute.differences`` compares the two while a task notes how late the event loop
wakes it (every 10 ms). Printed: the wall and CPU seconds, the longest the loop was held, and the
peak of this process's memory before and after. Figures only: ``bench/results/deep_check.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench.ledger import fill
from bench.machine import machine, save
from bench.suite import county_recipients
from hub.ledger import Ledger
from hub.recompute import differences

TICK_S = 0.01


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def ticks(gaps: list[float], stop: asyncio.Event) -> None:
    """How long each wake-up took beyond the sleep asked for."""
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(TICK_S)
        now = time.perf_counter()
        gaps.append(now - last - TICK_S)
        last = now


async def measure(pairs: int, folder: Path) -> dict[str, Any]:
    live, copy = folder / "live.sqlite3", folder / "recomputed.sqlite3"
    async with Ledger.open(f"sqlite:///{live}") as ledger:
        await fill(ledger, pairs, county_recipients(), datetime.now(UTC))
    with sqlite3.connect(live) as db:  # everything in the main file before copying it
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(live, copy)
    async with (
        Ledger.open(f"sqlite:///{live}") as ledger,
        Ledger.open(f"sqlite:///{copy}") as recomputed,
    ):
        before = peak_mib()
        gaps: list[float] = []
        stop = asyncio.Event()
        watching = asyncio.create_task(ticks(gaps, stop))
        wall, cpu = time.perf_counter(), time.process_time()
        found = await differences(ledger, recomputed, set())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        stop.set()
        await watching
    return {
        "pairs": pairs,
        "differences": len(found),
        "wall_s": wall,
        "cpu_s": cpu,
        "loop_held_max_s": max(gaps, default=0.0),
        "peak_mib_before": before,
        "peak_mib_after": peak_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=400_000)
    args = parser.parse_args()
    with TemporaryDirectory(prefix="bench-deep-check-") as folder:
        found = asyncio.run(measure(args.pairs, Path(folder)))
    print(
        f"深度核对：两份各 {found['pairs']:,} 条投递记录的台账比对 · {machine()['cpu']}\n"
        f"  differences {found['differences']}, wall {found['wall_s']:.1f} s,"
        f" CPU {found['cpu_s']:.1f} s, event loop held up to {found['loop_held_max_s']:.2f} s,"
        f" peak memory {found['peak_mib_before']:.0f} → {found['peak_mib_after']:.0f} MiB"
    )
    print(f"→ {save('deep_check', {'machine': machine(), 'results': found})}")


if __name__ == "__main__":
    main()
