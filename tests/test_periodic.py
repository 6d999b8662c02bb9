"""Periodic checks: trouble is noted and tried again; a stopping hub does not wait for one."""

from __future__ import annotations

import asyncio

from hub.periodic import Schedule, repeat


def schedule() -> Schedule:
    return Schedule(pause=lambda _took: 0.01, retry_s=0.01, timeout_s=60, trouble=(OSError,))


async def test_a_check_still_running_when_the_hub_stops_is_abandoned() -> None:
    """A full check re-reads a large record for minutes: stopping must not wait for it."""
    stop, started = asyncio.Event(), asyncio.Event()
    outcomes: list[str | None] = []
    abandoned = asyncio.Event()

    async def endless() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            abandoned.set()
            raise

    running = asyncio.create_task(repeat(stop, endless, schedule(), outcomes.append, "test"))
    await asyncio.wait_for(started.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(running, timeout=10)  # without the abandon: waits for ever
    assert abandoned.is_set() and outcomes == []


async def test_checks_repeat_and_trouble_is_noted_until_the_hub_stops() -> None:
    stop, calls = asyncio.Event(), []
    outcomes: list[str | None] = []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("数据库不可用")
        if len(calls) == 4:
            stop.set()

    await asyncio.wait_for(repeat(stop, flaky, schedule(), outcomes.append, "test"), timeout=10)
    assert len(calls) == 4
    assert outcomes == [None, "OSError: 数据库不可用", None, None]
