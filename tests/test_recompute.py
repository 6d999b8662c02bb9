"""The deep check's comparison: two ledgers read side by side in key order, on both databases."""

from __future__ import annotations

from pathlib import Path

from hub.ledger import Ledger
from hub.recompute import Only, differences
from tests.conftest import open_ledger
from tests.helpers import PUBLISHER, RECIPIENT, event, receipt

FORMED, PUBLISHED, ACKNOWLEDGED = (
    "2025-10-09T09:00:00+08:00",
    "2025-10-09T09:00:01+08:00",
    "2025-10-09T09:05:00+08:00",
)
# publishers' own ids: a locale's collation orders these unlike their bytes ("a-b" and "ab")
IDS = ("ab", "a-b", "B1", "a_c", "a1", "Z", "é1", "a")
KEYS = [f"{PUBLISHER}/{i}" for i in IDS]
ONLY_LIVE, ONLY_RECOMPUTED = f"{PUBLISHER}/only-live", f"{PUBLISHER}/only-recomputed"


async def test_the_comparison_names_every_extra_missing_and_changed_row(
    ledger: Ledger, tmp_path: Path
) -> None:
    # ``ledger`` plays the live one on each database; the hub recomputes into SQLite
    async with open_ledger("sqlite", tmp_path, "recomputed") as recomputed:
        common = [event(FORMED, PUBLISHED, key=k, seq=n) for n, k in enumerate(KEYS, 1)]
        assert await differences(ledger, recomputed, set()) == []
        await ledger.apply([*common, event(FORMED, PUBLISHED, key=ONLY_LIVE, seq=50)], [])
        await recomputed.apply(
            [*common, event(FORMED, PUBLISHED, key=ONLY_RECOMPUTED, seq=51)],
            [receipt(ACKNOWLEDGED, key=KEYS[2])],  # acknowledged, by the streams
        )
        for per_part in (1, 3, 1000):  # parts ending anywhere
            found = await differences(ledger, recomputed, set(), per_part=per_part)
            assert [(d.table, d.key, d.kind) for d in found] == [
                ("events", (ONLY_LIVE,), "extra"),
                ("events", (ONLY_RECOMPUTED,), "missing"),
                *sorted(
                    [
                        ("deliveries", (KEYS[2], RECIPIENT), "changed"),
                        ("deliveries", (ONLY_LIVE, RECIPIENT), "extra"),
                        ("deliveries", (ONLY_RECOMPUTED, RECIPIENT), "missing"),
                    ],
                    key=lambda d: d[1],
                ),
            ], per_part
        changed = {d.key: d for d in found}[(KEYS[2], RECIPIENT)]
        assert ("state", "pending", "acknowledged") in changed.fields
        only: Only = {("deliveries", (KEYS[2], RECIPIENT))}
        assert [d.key for d in await differences(ledger, recomputed, only, per_part=2)] == [
            (KEYS[2], RECIPIENT)
        ]
