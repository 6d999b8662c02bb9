"""The deep check of the ledger: every row recomputed from the streams and compared.

The ledger is a projection of the events and receipts streams, whose messages the signed
checkpoints vouch for; a row that differs from its recomputation was edited in the database (an
acknowledged time moved, a state changed, a row added or removed). The recomputation goes into a
scratch SQLite ledger up to where the ledger's own consumers have acknowledged (everything before
is applied), while the hub keeps running: a row that differs only because the live ledger is ahead
is compared again once the consumers moved on, and only differences that remain are reported.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext

from hub.audit.trust import RecordTrust
from hub.ledger import Ledger
from hub.ledger.tables import deliveries_table, events_table
from hub.projection import ReceiptTime, applier, stored_at
from hub.streams import read_range
from schemas.shanghai import local_text
from schemas.wire import Wire

ROUNDS = 4  # tries for a row that differs while the live ledger is ahead of the consumers
ROUND_PAUSE_S = 1.0
KIND_ZH = {"changed": "与重算结果不同", "extra": "不应存在", "missing": "缺失"}
TABLE_ZH = {"events": "事件", "deliveries": "投递"}
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class RowDifference:
    """One ledger row that is not what the streams say."""

    table: str  # events or deliveries
    key: tuple[str, ...]
    kind: str  # changed, extra, missing
    fields: tuple[tuple[str, Any, Any], ...] = ()  # column, in the ledger, recomputed

    def text(self) -> str:
        """One line, Chinese first."""
        where = f"{TABLE_ZH[self.table]}行 {' / '.join(self.key)}"
        shown = "；".join(f"{c}：台账 {_v(a)}，应为 {_v(b)}" for c, a, b in self.fields)
        return f"{where} {KIND_ZH[self.kind]}" + (f"（{shown}）" if shown else "")


def _v(value: Any) -> str:
    if isinstance(value, datetime):
        return local_text(value)
    return "空" if value is None else str(value)


Rows = dict[tuple[str, ...], tuple[Any, ...]]


def _keyed(dump: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]) -> dict[str, Rows]:
    events, deliveries = dump
    return {
        "events": {(r[0],): r for r in events},
        "deliveries": {(r[0], r[1]): r for r in deliveries},
    }


COLUMNS = {
    "events": [c.name for c in events_table.columns],
    "deliveries": [c.name for c in deliveries_table.columns],
}


def differences(
    live: dict[str, Rows], recomputed: dict[str, Rows], only: set[tuple[str, tuple[str, ...]]]
) -> list[RowDifference]:
    """Rows that differ (``only``: just these, else all)."""
    found = []
    for table in ("events", "deliveries"):
        keys = set(live[table]) | set(recomputed[table])
        for key in sorted(k for k in keys if not only or (table, k) in only):
            have, want = live[table].get(key), recomputed[table].get(key)
            if want is None:
                found.append(RowDifference(table, key, "extra"))
            elif have is None:
                found.append(RowDifference(table, key, "missing"))
            elif have != want:
                columns = COLUMNS[table]
                changed = tuple(
                    (c, a, b) for c, a, b in zip(columns, have, want, strict=True) if a != b
                )
                found.append(RowDifference(table, key, "changed", changed))
    return found


def _compare(
    live: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]],
    recomputed: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]],
    only: set[tuple[str, tuple[str, ...]]],
) -> list[RowDifference]:
    return differences(_keyed(live), _keyed(recomputed), only)


async def ack_floors(js: JetStreamContext, wire: Wire) -> dict[str, int]:
    """Per stream: the ledger's consumer has applied (and acknowledged) everything up to here."""
    floors = {}
    for stream in (wire.events_stream, wire.receipts_stream):
        info = await js.consumer_info(stream, wire.ledger_consumer)
        floors[stream] = int(info.ack_floor.stream_seq if info.ack_floor else 0)
    return floors


async def deep_check(
    js: JetStreamContext,
    wire: Wire,
    ledger: Ledger,
    trust: RecordTrust,
    *,
    receipt_time: ReceiptTime = stored_at,
    progress: Progress | None = None,
) -> list[RowDifference]:
    """Every ledger row recomputed from the streams; the rows that differ."""
    streams = (wire.events_stream, wire.receipts_stream)
    with tempfile.TemporaryDirectory(prefix="hub-deep-check-") as scratch_dir:
        url = f"sqlite:///{Path(scratch_dir) / 'recomputed.db'}"
        async with Ledger.open(url) as scratch:
            done = dict.fromkeys(streams, 0)
            only: set[tuple[str, tuple[str, ...]]] = set()
            found: Sequence[RowDifference] = []
            for attempt in range(ROUNDS):
                floors = await ack_floors(js, wire)
                for stream in streams:
                    apply = applier(scratch, wire, stream, trust, receipt_time)
                    async for msgs in read_range(js, stream, done[stream] + 1, floors[stream]):
                        await apply(msgs)
                        if progress:
                            progress(stream, len(msgs))
                    done[stream] = max(done[stream], floors[stream])
                live, recomputed = await ledger.dump(), await scratch.dump()
                # a county's year is millions of rows: compared beside the event loop, not in it
                found = await asyncio.to_thread(_compare, live, recomputed, only)
                if not found:
                    return []
                only = {(d.table, d.key) for d in found}
                if attempt < ROUNDS - 1:
                    await asyncio.sleep(ROUND_PAUSE_S)  # the live ledger may be ahead: again
            return list(found)
