"""The store check: race-free while ingest runs, periodic, and patient with a database hiccup."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import nats.js.errors
import pytest
from nats.js.api import DiscardPolicy

from hub.config import HubSettings
from hub.errors import LedgerUnavailable
from hub.identity import ADMIN
from hub.ingest import utc_now
from hub.ledger import Ledger
from hub.natsd import free_port
from hub.reconcile import StoreChecker
from hub.registry import Registry
from hub.samples import sample_event
from hub.service import Hub
from tests.conftest import POSTGRES_URL, Orgs, hub_running
from tests.helpers import eventually, scrape

pytestmark = pytest.mark.connected


async def _publish(orgs: Orgs, hub: Hub, n: int) -> str:
    accepted = await (await orgs.publisher("renqiu-scjg")).publish(
        sample_event("other", "renqiu-scjg", datetime.now(UTC), n, recipients=("renqiu-chuan",))
    )
    return f"{accepted.source}/{accepted.id}"


async def test_checks_while_events_are_accepted_never_report_a_false_missing(
    hub: Hub, orgs: Orgs
) -> None:
    checker = StoreChecker(hub.broker.connection, hub.js, hub.settings.wire, hub.ledger, utc_now)
    found: list[tuple[str, ...]] = []
    sent = itertools.count()

    async def traffic() -> None:  # until the checks below are done, and 300 events at least
        while (n := next(sent)) < 300 or len(found) < 6:
            await _publish(orgs, hub, n)

    publishing = asyncio.gather(*(traffic() for _ in range(8)))
    while len(found) < 6:
        for full in (True, False):
            await checker.check(full=full)
            found.append(checker.outcome.missing or ())
    await publishing
    assert set(found) == {()}  # checked under traffic, nothing reported


async def test_a_message_deleted_while_the_hub_runs_is_noticed_within_seconds(
    settings: HubSettings, registry: Registry, orgs: Orgs
) -> None:
    quick = settings.model_copy(update={"store_check_s": 0.2, "drift_check_s": 0.5})
    async with hub_running(quick, registry) as hub:
        keys = [await _publish(orgs, hub, n) for n in range(5)]
        await eventually(lambda: _ledger_high_water(hub, 5))
        await eventually(lambda: hub.store_check.missing == ())
        # deleting a message is refused by the server, even to admin (deny_delete, irreversible)
        admin = (await orgs.nc(ADMIN)).jetstream()
        with pytest.raises(nats.js.errors.APIError):
            await admin.delete_msg(quick.wire.events_stream, 3)
        # but an admin may change the stream's limits so that the oldest events are dropped
        config = (await admin.stream_info(quick.wire.events_stream)).config
        config.discard, config.max_msgs = DiscardPolicy.OLD, 3
        await admin.update_stream(config)
        await eventually(lambda: hub.store_check.missing == (keys[0], keys[1]), within=5)
        metrics = (await scrape(hub)).text
        ops = (await scrape(hub, "/api/ops")).json()["store_check"]
        await eventually(lambda: bool(hub.config_state.history), within=5)

        async def put_back() -> bool:  # (noted first, then repaired)
            config = (await admin.stream_info(quick.wire.events_stream)).config
            return (config.discard, config.max_msgs) == (DiscardPolicy.NEW, -1)

        await eventually(put_back, within=5)
    assert "hub_events_missing 2.0" in metrics
    assert ops["missing"] == 2 and ops["examples"] == keys[:2]
    drift = hub.config_state.history[0]
    assert drift.what == f"stream {quick.wire.events_stream}"
    assert set(drift.fields) == {"discard", "max_msgs"}


class FlakyLedger(Ledger):
    """A ledger whose database is away for its first ``failures`` high-water reads."""

    failures = 3

    async def high_water(self) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        return await super().high_water()


async def test_a_database_hiccup_during_the_store_check_is_retried_and_the_hub_keeps_serving(
    settings: HubSettings, registry: Registry, orgs: Orgs, tmp_path: Path
) -> None:
    quick = settings.model_copy(update={"store_check_s": 0.2})
    async with Ledger.open(f"sqlite:///{tmp_path / 'flaky.sqlite3'}") as opened:
        flaky = FlakyLedger(opened.engine, opened.where)
        async with hub_running(quick, registry, ledger=flaky) as hub:
            await eventually(lambda: hub.store_check.trouble is not None, within=5)
            ops = (await scrape(hub, "/api/ops")).json()["store_check"]
            key = await _publish(orgs, hub, 0)  # still serving
            await eventually(lambda: _ledger_high_water(hub, 1))
            await eventually(lambda: hub.store_check.trouble is None, within=10)
            await eventually(lambda: hub.store_check.missing == (), within=5)
    assert "ConnectionRefusedError" in (ops["trouble"] or "")
    assert key.startswith("renqiu-scjg/")


@asynccontextmanager
async def late_postgres(delay_s: float) -> AsyncIterator[int]:
    """A port that starts forwarding to PostgreSQL only after ``delay_s`` (a server booting)."""
    port = free_port()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def forward(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", 5432)
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    async def start_later() -> asyncio.Server:
        await asyncio.sleep(delay_s)
        return await asyncio.start_server(forward, "127.0.0.1", port)

    starting = asyncio.create_task(start_later())
    try:
        yield port
    finally:
        server = await starting
        server.close()


async def test_the_ledger_waits_for_a_database_that_comes_up_late() -> None:
    schema = f"t{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        async with late_postgres(1.5) as port:
            url = f"postgresql://postgres@127.0.0.1:{port}/test"
            with pytest.raises(LedgerUnavailable, match=f"127.0.0.1:{port}"):
                async with Ledger.open(url, schema=schema, wait_s=0):
                    pass
            async with Ledger.open(url, schema=schema, wait_s=15) as ledger:
                assert await ledger.high_water() == 0
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


async def _ledger_high_water(hub: Hub, seq: int) -> bool:
    events = await hub.ledger.events()  # not high_water(): the flaky ledger fails that on purpose
    return bool(events) and events[-1].events_seq >= seq
