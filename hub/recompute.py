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
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext

from hub.audit.trust import RecordTrust
from hub.ledger import Ledger
from hub.ledger.queries import ROWS_PER_PART
from hub.ledger.tables import deliveries_table, events_table
from hub.projection import ReceiptTime, applier, stored_at
from hub.streams import read_range
from schemas.shanghai import local_text
from schemas.wire import Wire

ROUNDS = 4  # tries for a row that differs while the live ledger is ahead of the consumers
ROUND_PAUSE_S = 1.0
READ_BATCH = 100
"""Messages recomputed at a time. A day's upload makes receipt messages of a hundred receipts and
more: 1,000 of them were 150,000 receipts alive at once, and the garbage collector's passes over
them held the event loop long enough for the hub's leases to expire."""
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


COLUMNS = {
    "events": [c.name for c in events_table.columns],
    "deliveries": [c.name for c in deliveries_table.columns],
}
KEY_WIDTH = {"events": 1, "deliveries": 2}  # a row's first columns are its key
Only = set[tuple[str, tuple[str, ...]]]


async def differences(
    live: Ledger, recomputed: Ledger, only: Only, *, per_part: int = ROWS_PER_PART
) -> list[RowDifference]:
    """Rows that differ (``only``: just these, else all), in table and key order.

    Both ledgers are read side by side in key order, a part at a time: held whole, two copies of
    a county's year (millions of rows) took gigabytes, and collecting them held the event loop.
    """
    found = []
    for table, width in KEY_WIDTH.items():
        async with (
            aclosing(_each(live, table, per_part)) as ours,
            aclosing(_each(recomputed, table, per_part)) as theirs,
        ):
            have, want = await anext(ours, None), await anext(theirs, None)
            while have is not None or want is not None:
                difference: RowDifference | None = None
                if have is not None and want is not None and have[:width] == want[:width]:
                    difference = _changed(table, have, want)
                    have, want = await anext(ours, None), await anext(theirs, None)
                elif have is not None and (want is None or have[:width] < want[:width]):
                    difference = RowDifference(table, have[:width], "extra")
                    have = await anext(ours, None)
                elif want is not None:  # before the live ledger's next row, or after its last
                    difference = RowDifference(table, want[:width], "missing")
                    want = await anext(theirs, None)
                if difference is not None and (not only or (table, difference.key) in only):
                    found.append(difference)
    return found


async def _each(ledger: Ledger, table: str, per_part: int) -> AsyncGenerator[tuple[Any, ...], None]:
    async with aclosing(ledger.rows(table, per_part=per_part)) as parts:
        async for part in parts:
            for row in part:
                yield row


def _changed(table: str, have: tuple[Any, ...], want: tuple[Any, ...]) -> RowDifference | None:
    if have == want:
        return None
    fields = tuple((c, a, b) for c, a, b in zip(COLUMNS[table], have, want, strict=True) if a != b)
    return RowDifference(table, have[: KEY_WIDTH[table]], "changed", fields)


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
            only: Only = set()
            found: Sequence[RowDifference] = []
            for attempt in range(ROUNDS):
                floors = await ack_floors(js, wire)
                for stream in streams:
                    apply = applier(scratch, wire, stream, trust, receipt_time)
                    start, end = done[stream] + 1, floors[stream]
                    async for msgs in read_range(js, stream, start, end, batch=READ_BATCH):
                        await apply(msgs)
                        if progress:
                            progress(stream, len(msgs))
                    done[stream] = max(done[stream], floors[stream])
                found = await differences(ledger, scratch, only)
                if not found:
                    return []
                only = {(d.table, d.key) for d in found}
                if attempt < ROUNDS - 1:
                    await asyncio.sleep(ROUND_PAUSE_S)  # the live ledger may be ahead: again
            return list(found)
