"""A check that runs again and again until the hub stops; trouble is noted and tried again.

Checks only read: one still running when the hub stops is abandoned, not waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """When a periodic check runs."""

    pause: Callable[[float], float]  # seconds until the next check, given what this one took
    retry_s: float  # after trouble
    timeout_s: float  # a check that takes longer is trouble
    trouble: tuple[type[Exception], ...]  # what a check may meet and try again after
    first_after_s: float = 0.0  # before the first check


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` unless ``stop`` is set first; whether it was."""
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        return False
    return True


async def repeat(
    stop: asyncio.Event,
    check: Callable[[], Awaitable[object]],
    schedule: Schedule,
    noted: Callable[[str | None], None],
    event: str,
) -> None:
    """Run ``check`` on ``schedule`` until ``stop``; it never stops the hub.

    ``noted`` gets each outcome's trouble (``None`` after a check that went well); trouble is
    logged as ``event``.
    """
    if schedule.first_after_s and await stopped_within(stop, schedule.first_after_s):
        return
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        try:
            async with asyncio.timeout(schedule.timeout_s):
                if not await _finished_unless_stopped(check(), stop):
                    return
        except schedule.trouble as exc:
            noted(f"{type(exc).__name__}: {exc}")
            log.warning(event, extra={"error": repr(exc)})
            pause = schedule.retry_s
        else:
            noted(None)
            pause = schedule.pause(loop.time() - started)
        if await stopped_within(stop, pause):
            return


async def _finished_unless_stopped(check: Awaitable[object], stop: asyncio.Event) -> bool:
    """Await ``check``; abandon it when ``stop`` is set first (whether it finished).

    A check only reads (the streams, the ledger), and one that re-reads a large record can take
    minutes: a stopping hub does not wait for it, the next start checks again.
    """
    checking = asyncio.ensure_future(check)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((checking, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not checking.done():
            checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checking
    if checking.cancelled():
        log.info("periodic.check_abandoned")
        return False
    checking.result()  # its trouble, if any, is the caller's
    return True
