"""Long loops let the rest of the event loop run between turns."""

from __future__ import annotations

import asyncio

from hub.turns import in_turns


async def test_a_long_loop_lets_another_task_run_every_turn_and_keeps_every_item() -> None:
    ran_at: list[int] = []
    seen: list[int] = []

    async def other() -> None:
        while True:
            ran_at.append(len(seen))
            await asyncio.sleep(0)

    beside = asyncio.create_task(other())
    await asyncio.sleep(0)  # it starts
    async for item in in_turns(range(100), per_turn=32):
        seen.append(item)  # no await here: only in_turns gives the loop a turn
    beside.cancel()
    assert seen == list(range(100))
    assert ran_at == [0, 32, 64, 96]
