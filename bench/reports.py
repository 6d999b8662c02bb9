"""How fast the Art. 16 / Art. 23 reports answer over a year of one county's ledger.

    python -m bench.reports [--pairs 2000000] [--backend sqlite|postgresql|both]

Builds (once, cached under bench/.cache) a ledger with a year of synthetic Renqiu traffic: every
department and township publishing each working day, every pair acknowledged, a few percent late or
redelivered. Then times, three runs each: the daily report of one day, and the year-long scorecard
of a department and of a township. A ledger cached by an earlier version gets today's indexes when
it is opened, as any ledger does.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.machine import machine, save, summary
from hub.ledger import EventRecord, Ledger, ReceiptRecord
from hub.registry import OrgKind, Registry, load_registry
from hub.reports import daily_report, org_report
from hub.timeliness import SHANGHAI
from schemas.envelope import CATEGORIES
from schemas.receipt import Receipt

CACHE = Path(__file__).parent / ".cache"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
YEAR = 2025


def traffic(
    registry: Registry, pairs: int, seed: int = 7
) -> Iterator[tuple[EventRecord, list[ReceiptRecord]]]:
    """A year of events with their receipts, about ``pairs`` (event, recipient) pairs in all."""
    rng = random.Random(seed)
    members = [o for o in registry.members("renqiu") if o.kind != OrgKind.OFFICE]
    publishers = [
        o for o in members if o.kind in (OrgKind.DEPARTMENT, OrgKind.TOWNSHIP, OrgKind.STREET)
    ]
    fan_out = {o.id: registry.default_recipients(o, "permit") for o in publishers}
    per_event = sum(len(r) for r in fan_out.values()) / len(fan_out)
    events_per_day = max(int(pairs / per_event / 365), 1)
    categories = list(CATEGORIES)
    seq = receipt_seq = 0
    for day in range(365):
        midnight = datetime(YEAR, 1, 1, tzinfo=SHANGHAI) + timedelta(days=day)
        for _ in range(events_per_day):
            seq += 1
            source = rng.choice(publishers).id
            formed = midnight + timedelta(seconds=rng.randint(8 * 3600, 18 * 3600))
            late_publication = rng.random() < 0.02
            published = formed + timedelta(
                hours=20 if late_publication else 0, seconds=rng.randint(1, 600)
            )
            event = EventRecord(
                key=f"{source}/{YEAR}-{seq:07d}",
                source=source,
                event_id=f"{YEAR}-{seq:07d}",
                category=rng.choice(categories),
                type="other.v1",
                formed_at=formed.astimezone(UTC),
                published_at=published.astimezone(UTC),
                events_seq=seq,
                recipients=fan_out[source],
                summary="基准测试事件",
            )
            receipts = []
            for recipient in event.recipients:
                receipt_seq += 1
                slow = rng.random() < 0.03
                acknowledged = published + timedelta(
                    hours=16 if slow else 0, seconds=rng.randint(1, 120)
                )
                attempts = 2 if rng.random() < 0.05 else 1
                receipt = Receipt(
                    event_source=source,
                    event_id=event.event_id,
                    recipient=recipient,
                    status="acknowledged",
                    delivery_seq=receipt_seq,
                    deliveries=attempts,
                    received_at=acknowledged,
                    finished_at=acknowledged,
                    agent="bench",
                )
                receipts.append(ReceiptRecord(receipt, acknowledged.astimezone(UTC), receipt_seq))
            yield event, receipts


@asynccontextmanager
async def built_ledger(backend: str, pairs: int) -> AsyncIterator[tuple[Ledger, float | None]]:
    """The benchmark ledger on ``backend``; built on first use (returns the build time then)."""
    CACHE.mkdir(exist_ok=True)
    name = f"ledger_{pairs}"
    if backend == "sqlite":
        path = CACHE / f"{name}.sqlite3"
        fresh = not path.exists()
        async with Ledger.open(f"sqlite:///{path}") as ledger:
            yield ledger, (await _fill(ledger, pairs) if fresh else None)
        return
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        fresh = not await admin.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", name)
        await admin.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
        async with Ledger.open(POSTGRES_URL, schema=name) as ledger:
            build_s = await _fill(ledger, pairs) if fresh else None
            # what autovacuum does to a year-old ledger (this machine's server runs without it):
            # statistics for the planner, and the visibility map that index-only scans need
            await admin.execute(f"VACUUM (ANALYZE) {name}.ledger_delivery, {name}.ledger_event")
            yield ledger, build_s
    finally:
        await admin.close()


async def _fill(ledger: Ledger, pairs: int) -> float:
    started = time.perf_counter()
    batch_events: list[EventRecord] = []
    batch_receipts: list[ReceiptRecord] = []
    written = 0
    for event, receipts in traffic(load_registry(), pairs):
        batch_events.append(event)
        batch_receipts.extend(receipts)
        if len(batch_receipts) >= 20_000:
            await ledger.apply(batch_events, batch_receipts)
            written += len(batch_receipts)
            print(f"  … {written:,} pairs", flush=True)
            batch_events, batch_receipts = [], []
    await ledger.apply(batch_events, batch_receipts)
    return time.perf_counter() - started


async def measure(backend: str, pairs: int) -> dict[str, Any]:
    """Build (if needed) and time the reports on one backend."""
    registry = load_registry()
    async with built_ledger(backend, pairs) as (ledger, build_s):
        rows = sum((await ledger.counts()).values())
        now = datetime(YEAR + 1, 1, 1, 12, tzinfo=SHANGHAI)
        jobs: dict[str, Callable[[], Awaitable[object]]] = {
            "daily report, one day": lambda: daily_report(
                ledger, registry, date(YEAR, 6, 16), now=now
            ),
            "scorecard, a department, one year": lambda: org_report(
                ledger, registry, "renqiu-scjg", date(YEAR, 1, 1), date(YEAR, 12, 31), now=now
            ),
            "scorecard, a township, one year": lambda: org_report(
                ledger, registry, "renqiu-chuan", date(YEAR, 1, 1), date(YEAR, 12, 31), now=now
            ),
        }
        figures = {}
        for label, job in jobs.items():
            samples = []
            for _ in range(3):
                started = time.perf_counter()
                await job()
                samples.append(time.perf_counter() - started)
            figures[label] = summary(samples)
    return {"backend": backend, "pairs": rows, "build_s": build_s, "seconds": figures}


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=2_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = [asyncio.run(measure(b, args.pairs)) for b in backends]
    print(f"\n报表耗时（秒，3 次取最小/中位）· {machine()['cpu']}")
    for result in results:
        print(f"{result['backend']}: {result['pairs']:,} 条台账记录")
        for label, s in result["seconds"].items():
            print(f"  {label:<36} min {s['min']:.3f}  median {s['median']:.3f}")
    path = save("reports", {"machine": machine(), "results": results})
    print(f"→ {path}")


if __name__ == "__main__":
    main()
