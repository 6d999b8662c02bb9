"""Roles held through expiring leases in NATS KV, on a real nats-server."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

import nats.errors
import nats.js.errors
import pytest
from nats.js.kv import KeyValue

from hub.config import HubSettings
from hub.identity import OPS
from hub.roles import LEASE_S, Play, Roles
from hub.samples import sample_event
from hub.service import Hub
from tests.conftest import Orgs
from tests.helpers import HUB, PUBLISHER, RECIPIENT, eventually, hub_environment, receiving

pytestmark = [pytest.mark.connected, pytest.mark.timeout(120)]

ROLES = ("fanout", "checkpoints", "overdue", "ledger-events", "ledger-receipts", "ledger-check")


class Stage:
    """Which holder plays which role right now, and whether two ever played one at once."""

    def __init__(self) -> None:
        self.playing: dict[str, list[str]] = {}
        self.overlaps = 0
        self.started: dict[str, int] = {}  # how often each role's work began

    def play(self, holder: str, role: str) -> Play:
        async def work(stop: asyncio.Event) -> None:
            players = self.playing.setdefault(role, [])
            players.append(holder)
            self.started[role] = self.started.get(role, 0) + 1
            self.overlaps += len(players) > 1
            try:
                await stop.wait()
            finally:
                players.remove(holder)

        return work

    def who(self, role: str) -> list[str]:
        return list(self.playing.get(role, []))


@asynccontextmanager
async def holding(
    kv: KeyValue, stage: Stage, holder: str, roles: tuple[str, ...]
) -> AsyncIterator[Roles]:
    held = Roles(kv, {r: stage.play(holder, r) for r in roles}, holder=holder)
    stop = asyncio.Event()
    task = asyncio.create_task(held.run(stop))
    try:
        yield held
    finally:
        stop.set()
        await task


async def _bucket(hub: Hub) -> KeyValue:
    return await hub.js.key_value(hub.settings.wire.roles_bucket)


async def test_two_processes_split_the_roles_and_one_leaving_hands_its_role_over(
    hub: Hub,
) -> None:
    kv, stage, roles = await _bucket(hub), Stage(), ("t1-fanout", "t1-overdue")
    async with holding(kv, stage, "one", roles):
        async with holding(kv, stage, "two", roles):
            await eventually(lambda: all(stage.who(r) for r in roles), within=10)
            assert {stage.who(r)[0] for r in roles} == {"one", "two"}  # one role each
        # "two" stopped gracefully and released its key: "one" takes it over without waiting
        # for the lease to expire
        await eventually(lambda: all(stage.who(r) == ["one"] for r in roles), within=LEASE_S)
    assert stage.overlaps == 0
    assert not stage.who("t1-fanout") and not stage.who("t1-overdue")


async def test_a_process_that_starts_late_gets_its_share_handed_over(hub: Hub) -> None:
    kv, stage = await _bucket(hub), Stage()
    roles = ("t6-fanout", "t6-checkpoints", "t6-overdue", "t6-check")
    async with holding(kv, stage, "early", roles):
        await eventually(lambda: all(stage.who(r) == ["early"] for r in roles), within=20)
        async with holding(kv, stage, "late", roles):

            def shared() -> bool:
                players = [stage.who(r) for r in roles]
                return all(players) and sum(p == ["late"] for p in players) == 2

            await eventually(shared, within=30)  # two each, handed over gracefully
    assert stage.overlaps == 0


async def test_a_dead_holder_s_role_is_taken_once_its_lease_expires(hub: Hub) -> None:
    kv, stage = await _bucket(hub), Stage()
    await kv.create("t2-fanout", b"a process that was killed")  # never renewed, never released
    started = time.monotonic()
    async with holding(kv, stage, "survivor", ("t2-fanout",)):
        await eventually(lambda: stage.who("t2-fanout") == ["survivor"], within=LEASE_S * 4)
        waited = time.monotonic() - started
    print(f"the role was taken {waited:.1f} s after the dead holder's last renewal")
    assert waited >= LEASE_S * 0.9  # not before the lease could have expired


async def test_a_holder_whose_lease_was_taken_stops_playing_at_once(hub: Hub) -> None:
    kv, stage = await _bucket(hub), Stage()
    async with holding(kv, stage, "one", ("t3-fanout",)) as one:
        await eventually(lambda: stage.who("t3-fanout") == ["one"], within=10)
        await kv.put("t3-fanout", b"an operator's hand")  # the key is no longer "one"'s
        await eventually(lambda: not stage.who("t3-fanout"), within=LEASE_S)
        assert "t3-fanout" not in one.playing


class SlowAnswers:
    """The roles bucket of a loaded server: renewals stored at once, answered ``delay_s`` later."""

    def __init__(self, kv: KeyValue, delay_s: float) -> None:
        self.kv, self.delay_s = kv, delay_s

    async def update(self, key: str, value: bytes, last: int) -> int:
        revision = await self.kv.update(key, value, last=last)
        await asyncio.sleep(self.delay_s)
        return revision

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kv, name)


async def test_slow_answers_to_renewals_do_not_cost_a_process_its_roles(hub: Hub) -> None:
    # one after another, six renewals answered in 0.8 s each took 4.8 s a round: every lease of
    # 3 s expired between two renewals (seen with a filled ledger's recomputation under load)
    kv, stage = await _bucket(hub), Stage()
    roles = tuple(f"t5-{r}" for r in ROLES)
    slow = cast(KeyValue, SlowAnswers(kv, 0.8))
    async with holding(slow, stage, "busy", roles) as busy:
        await eventually(lambda: all(stage.who(r) == ["busy"] for r in roles), within=LEASE_S * 4)
        await asyncio.sleep(LEASE_S * 2.5)  # several rounds of renewals
        assert sorted(busy.playing) == sorted(roles)
        assert {r: stage.started[r] for r in roles} == dict.fromkeys(roles, 1)


async def test_a_role_whose_work_fails_stops_the_process(hub: Hub) -> None:
    kv = await _bucket(hub)

    async def failing(stop: asyncio.Event) -> None:
        raise RuntimeError("the fan-out broke")

    roles = Roles(kv, {"t4-fanout": failing}, holder="one")
    with pytest.raises(RuntimeError, match="the fan-out broke"):
        await asyncio.wait_for(roles.run(asyncio.Event()), timeout=10)
    with pytest.raises((nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError)):
        await kv.get("t4-fanout")


async def test_hub_serve_with_two_workers_splits_the_roles_delivers_and_stops_cleanly(
    settings: HubSettings, orgs: Orgs
) -> None:
    process = await asyncio.create_subprocess_exec(
        HUB,
        "serve",
        "--workers",
        "2",
        env=hub_environment(settings, HUB_LOG_LEVEL="WARNING"),
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        ops = (await orgs.nc(OPS)).jetstream()

        async def holders() -> dict[str, str]:
            try:
                kv = await ops.key_value(settings.wire.roles_bucket)
                found = {}
                for role in ROLES:
                    found[role] = ((await kv.get(role)).value or b"").decode()
                return found
            except nats.errors.Error:  # not created yet, or not every role taken yet
                return {}

        await eventually(lambda: _two_processes(holders), within=60)
        publisher = await orgs.publisher(PUBLISHER)
        now = datetime.now(UTC)
        sent = [sample_event("other", PUBLISHER, now, n, recipients=(RECIPIENT,)) for n in range(5)]
        async with receiving(settings, [RECIPIENT]) as inboxes:
            for event in sent:
                await publisher.publish(event)
            await eventually(lambda: len(inboxes[RECIPIENT].events) == 5, within=30)
        assert [e.id for e, _ in inboxes[RECIPIENT].events] == [e["id"] for e in sent]  # in order
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=60)
    assert code == 0
    assert await holders() in ({}, dict.fromkeys(ROLES, ""))  # each released


async def _two_processes(holders: Callable[[], Awaitable[dict[str, str]]]) -> bool:
    found = await holders()
    return len(found) == len(ROLES) and len(set(found.values())) == 2  # split between the two
