"""Long loops on the event loop that let the rest of the hub run between turns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

T = TypeVar("T")

PER_TURN = 32  # items handled between two turns of the event loop (each up to ~0.1 ms of work)


async def in_turns(items: Iterable[T], per_turn: int = PER_TURN) -> AsyncIterator[T]:
    """``items``, the event loop running after every ``per_turn`` of them.

    For loops whose every step checks a signature: a batch of 1,000 would otherwise hold
    deliveries and answers up for a tenth of a second.
    """
    for n, item in enumerate(items, 1):
        yield item
        if n % per_turn == 0:
            await asyncio.sleep(0)
