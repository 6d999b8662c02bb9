"""What recording deliveries costs the ledger: CPU per 1,000 deliveries, events and receipts.

    python -m bench.ledger [--quick] [--pairs 400000] [--events 2000]
                           [--backend sqlite|postgresql|both]

A ledger first gets ``--pairs`` pairs (permit events to Renqiu's 20 recipients, every one
acknowledged), as a county's ledger holds after some weeks. Event ids are random UUIDs, as
publishers' systems make them, so each new pair lands at a random place of the pairs' key. Then
``--events`` more events are recorded as the live projection records them: 128 events at a time,
then their receipts, 2,560 at a time. Timed: the CPU seconds of this process (the event loop and
SQLite's writer thread, and the share of it in system calls; PostgreSQL's own server processes
are not counted) and the wall time. SQLite runs twice, with the hub's page cache
(``hub.ledger.database.CACHE_KIB``) and with SQLite's default of 2 MiB, one after the other.
Figures only; the results go to ``bench/results/ledger.json`` (``ledger-quick.json`` for
``--quick``: 20,000 pairs, 200 events).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import asyncpg
import psutil

import hub.ledger.database
from bench.machine import machine, save
from bench.suite import PUBLISHER, county_recipients
from hub.ledger import EventRecord, Ledger, ReceiptRecord
from schemas.receipt import Receipt

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
EVENTS_PER_APPLY = 128  # what the projection records at once at saturation (about 135 measured)
FILL_RECEIPTS = 20_000  # pairs per transaction while the ledger is filled
SQLITE_DEFAULT_KIB = 2000


def traffic(events: int, recipients: list[str], now: datetime) -> Iterator[EventRecord]:
    """``events`` permit events to ``recipients``, each with a random id."""
    for seq in range(events):
        event_id = str(uuid.uuid4())
        yield EventRecord(
            key=f"{PUBLISHER}/{event_id}",
            source=PUBLISHER,
            event_id=event_id,
            category="permit",
            type="permit.v1",
            formed_at=now,
            published_at=now,
            events_seq=seq + 1,
            recipients=tuple(recipients),
            summary="基准测试事件",
        )


def receipts(events: list[EventRecord], at: datetime) -> list[ReceiptRecord]:
    """Every recipient's acknowledgement of each of ``events``."""
    return [
        ReceiptRecord(
            Receipt(
                event_source=event.source,
                event_id=event.event_id,
                recipient=recipient,
                status="acknowledged",
                delivery_seq=event.events_seq,
                deliveries=1,
                received_at=at,
                finished_at=at,
                agent="bench",
            ),
            at,
            event.events_seq,
        )
        for event in events
        for recipient in event.recipients
    ]


@asynccontextmanager
async def fresh_ledger(database: str, folder: Path) -> AsyncIterator[Ledger]:
    """An empty ledger: a SQLite file in ``folder``, or a PostgreSQL schema dropped afterwards."""
    if database == "sqlite":
        async with Ledger.open(f"sqlite:///{folder / 'ledger'}.sqlite3") as ledger:
            yield ledger
        return
    schema = f"bench_ledger_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        async with Ledger.open(POSTGRES_URL, schema=schema) as ledger:
            yield ledger
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


def cpu() -> tuple[float, float]:
    """This process's (user + system, system) CPU seconds, every thread."""
    times = psutil.Process().cpu_times()
    return times.user + times.system, times.system


async def record(ledger: Ledger, events: list[EventRecord], at: datetime) -> dict[str, float]:
    """Record ``events`` as the projection does; CPU and wall ms per 1,000 deliveries."""
    deliveries = sum(len(e.recipients) for e in events) / 1000
    figures: dict[str, float] = {}
    chunks = list(_chunks(events))
    sides: dict[str, list[tuple[list[EventRecord], list[ReceiptRecord]]]] = {
        "events": [(chunk, []) for chunk in chunks],
        "receipts": [([], receipts(chunk, at)) for chunk in chunks],
    }
    for side, batches in sides.items():
        (cpu_before, sys_before), started = cpu(), time.perf_counter()
        for batch_events, batch_receipts in batches:
            await ledger.apply(batch_events, batch_receipts)
        (cpu_after, sys_after), took = cpu(), time.perf_counter() - started
        figures[f"{side}: cpu_ms"] = (cpu_after - cpu_before) * 1000 / deliveries
        figures[f"{side}: system_ms"] = (sys_after - sys_before) * 1000 / deliveries
        figures[f"{side}: wall_ms"] = took * 1000 / deliveries
    return figures


def _chunks(events: list[EventRecord]) -> Iterator[list[EventRecord]]:
    for start in range(0, len(events), EVENTS_PER_APPLY):
        yield events[start : start + EVENTS_PER_APPLY]


async def fill(ledger: Ledger, pairs: int, recipients: list[str], at: datetime) -> None:
    """``pairs`` acknowledged pairs, in large transactions."""
    events: list[EventRecord] = []
    for event in traffic(pairs // len(recipients), recipients, at):
        events.append(event)
        if len(events) * len(recipients) >= FILL_RECEIPTS:
            await ledger.apply(events, receipts(events, at))
            events = []
    await ledger.apply(events, receipts(events, at))


async def measure(
    label: str, database: str, pairs: int, events: int, cache_kib: int | None = None
) -> dict[str, Any]:
    """Fill a ledger on ``database`` and time recording ``events`` more.

    ``cache_kib``: SQLite's page cache instead of the hub's.
    """
    recipients = county_recipients()
    now = datetime.now(UTC)
    chosen = hub.ledger.database.CACHE_KIB
    hub.ledger.database.CACHE_KIB = cache_kib or chosen
    try:
        with TemporaryDirectory(prefix="bench-ledger-") as folder:
            async with fresh_ledger(database, Path(folder)) as ledger:
                started = time.perf_counter()
                await fill(ledger, pairs, recipients, now)
                filled_s = time.perf_counter() - started
                fresh = list(traffic(events, recipients, now + timedelta(seconds=1)))
                figures = await record(ledger, fresh, now + timedelta(seconds=2))
    finally:
        hub.ledger.database.CACHE_KIB = chosen
    return {"backend": label, "pairs": pairs, "events": events, "fill_s": filled_s} | figures


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run at small sizes")
    parser.add_argument("--pairs", type=int, default=400_000)
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.events = 20_000, 200
    runs: list[tuple[str, str, int | None]] = []  # label, database, SQLite's page cache
    if args.backend in ("sqlite", "both"):
        runs += [(f"sqlite, {hub.ledger.database.CACHE_KIB // 1024} MiB cache", "sqlite", None)]
        runs += [("sqlite, 2 MiB cache", "sqlite", SQLITE_DEFAULT_KIB)]
    if args.backend in ("postgresql", "both"):
        runs += [("postgresql", "postgresql", None)]
    results = []
    for label, database, cache_kib in runs:
        print(f"  {label} …", flush=True)
        results.append(asyncio.run(measure(label, database, args.pairs, args.events, cache_kib)))
    print(f"\n台账写入：每 1,000 次投递的 CPU 毫秒（其中系统调用）· {machine()['cpu']}")
    for r in results:
        print(f"{r['backend']}: {r['pairs']:,} 条已有记录之后再登记 {r['events']:,} 个事件")
        for side in ("events", "receipts"):
            print(
                f"  {side:<9} CPU {r[f'{side}: cpu_ms']:6.1f}"
                f"  (system {r[f'{side}: system_ms']:5.1f})  wall {r[f'{side}: wall_ms']:6.1f}"
            )
    name = "ledger-quick" if args.quick else "ledger"
    print(f"→ {save(name, {'machine': machine(), 'results': results})}")


if __name__ == "__main__":
    main()
