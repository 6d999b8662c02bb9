"""The ledger knows its schema version: another version is refused, with the way to upgrade."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import Connection, inspect, text

from hub.config import HubSettings
from hub.errors import LedgerVersionError
from hub.ledger import SCHEMA_VERSION, Ledger
from hub.ledger.database import BUSY_WAIT_S
from tests.conftest import BACKENDS, POSTGRES_URL
from tests.helpers import PUBLISHER, RECIPIENT, event, receipt, run_hub

OTHER = "renqiu-zjj"


@asynccontextmanager
async def database(backend: str, tmp_path: Path) -> AsyncIterator[tuple[str, str | None]]:
    """A URL (and PostgreSQL schema) nobody else uses, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite3'}", None
        return
    schema = f"t{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield POSTGRES_URL, schema
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


async def as_version_2(ledger: Ledger) -> None:
    """Give the pairs table version 2's shape: no events_seq or lag_us, its figures indexes."""
    async with ledger.engine.begin() as conn:
        for side in ("recipient", "publisher"):
            await conn.execute(text(f"DROP INDEX ix_ledger_delivery_{side}_sums"))
        await conn.execute(
            text(
                "CREATE INDEX ix_ledger_delivery_recipient_figures ON ledger_delivery (recipient,"
                " formed_day, category, published_day, acknowledged_day, state, published_at,"
                " acknowledged_at, event_key)"
            )
        )
        await conn.execute(
            text(
                "CREATE INDEX ix_ledger_delivery_publisher_figures"
                " ON ledger_delivery (publisher, formed_day)"
            )
        )
        for column in ("events_seq", "lag_us"):
            await conn.execute(text(f"ALTER TABLE ledger_delivery DROP COLUMN {column}"))
        await conn.execute(text("UPDATE ledger_meta SET value = '2' WHERE name = 'version'"))


async def stored_version(ledger: Ledger) -> str:
    async with ledger.engine.connect() as conn:
        found = await conn.execute(text("SELECT value FROM ledger_meta WHERE name = 'version'"))
        return str(found.scalar())


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_new_ledger_stores_the_current_version(backend: str, tmp_path: Path) -> None:
    async with database(backend, tmp_path) as (url, schema):
        async with Ledger.open(url, schema=schema) as ledger:
            assert await stored_version(ledger) == str(SCHEMA_VERSION)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_another_version_is_refused_and_recreate_upgrades_it(
    backend: str, tmp_path: Path
) -> None:
    async with database(backend, tmp_path) as (url, schema):
        async with Ledger.open(url, schema=schema) as ledger:
            await ledger.apply(
                [event("2025-09-30T10:00:00+08:00", "2025-09-30T10:00:01+08:00")], []
            )
            async with ledger.engine.begin() as conn:
                await conn.execute(
                    text("UPDATE ledger_meta SET value = '99' WHERE name = 'version'")
                )
        with pytest.raises(LedgerVersionError) as refused:
            async with Ledger.open(url, schema=schema):
                pass
        async with Ledger.open(url, schema=schema, recreate=True) as upgraded:
            version, counts = await stored_version(upgraded), await upgraded.counts()
    assert (refused.value.found, refused.value.expected) == (99, SCHEMA_VERSION)
    assert "hub ledger rebuild --recreate" in str(refused.value)
    assert version == str(SCHEMA_VERSION) and counts == {}  # emptied, ready for the rebuild


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_ledger_from_before_versions_were_stored_is_upgraded_keeping_its_rows(
    backend: str, tmp_path: Path
) -> None:
    async with database(backend, tmp_path) as (url, schema):
        async with Ledger.open(url, schema=schema) as ledger:
            await ledger.apply(
                [event("2025-09-30T10:00:00+08:00", "2025-09-30T10:00:01+08:00")],
                [receipt("2025-09-30T10:00:02+08:00")],
            )
            await as_version_2(ledger)
            async with ledger.engine.begin() as conn:
                await conn.execute(text("DROP TABLE ledger_meta"))
        async with Ledger.open(url, schema=schema) as reopened:
            version, counts = await stored_version(reopened), await reopened.counts()
    # version 1 (no meta table), upgraded in place: versions 2 and 3 only added tables and columns
    assert version == str(SCHEMA_VERSION) and counts == {"acknowledged": 1}  # rows kept


async def test_the_command_line_refuses_another_version_and_says_how_to_upgrade(
    settings: HubSettings, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    async with Ledger.open(url) as ledger, ledger.engine.begin() as conn:
        await conn.execute(text("UPDATE ledger_meta SET value = '0' WHERE name = 'version'"))
    code, _, err = await run_hub(settings, "lag", HUB_LEDGER_URL=url)
    assert code == 2 and "hub ledger rebuild --recreate" in err and "Traceback" not in err


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_version_1_ledger_gets_the_case_tables_and_keeps_its_rows(
    backend: str, tmp_path: Path
) -> None:
    async with database(backend, tmp_path) as (url, schema):
        async with Ledger.open(url, schema=schema) as ledger:
            await ledger.apply(
                [event("2025-09-30T10:00:00+08:00", "2025-09-30T10:00:01+08:00")],
                [receipt("2025-09-30T10:00:02+08:00")],
            )
            await as_version_2(ledger)
            async with ledger.engine.begin() as conn:  # as version 1 left it
                await conn.execute(text("DROP TABLE ledger_case_deadline"))
                await conn.execute(text("DROP TABLE ledger_case"))
                await conn.execute(text("UPDATE ledger_meta SET value = '1'"))
        async with Ledger.open(url, schema=schema) as upgraded:
            version, counts = await stored_version(upgraded), await upgraded.counts()
            cases = await upgraded.case_states()
    assert version == str(SCHEMA_VERSION) == "3"
    assert counts == {"acknowledged": 1} and cases == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_version_2_ledger_gets_the_pairs_sequences_and_lags_a_new_ledger_writes(
    backend: str, tmp_path: Path
) -> None:
    """Acknowledged, pending, dead-lettered and receipt-first pairs: as if written by version 3."""
    applied = [
        (
            [event("2025-09-30T10:00:00+08:00", "2025-09-30T10:00:01+08:00", seq=7)],
            [receipt("2025-09-30T10:00:02.250001+08:00")],  # 1.250001 s after publishing
        ),
        (  # its receipt first, then the event (published a day late)
            [],
            [receipt("2025-10-02T09:00:00+08:00", key=f"{PUBLISHER}/e2", recipient=OTHER)],
        ),
        (
            [
                event(
                    "2025-09-30T23:00:00+08:00",
                    "2025-10-01T08:00:00+08:00",
                    key=f"{PUBLISHER}/e2",
                    recipients=(RECIPIENT, OTHER),
                    seq=9,
                ),
                event(
                    "2025-10-01T08:00:00+08:00",
                    "2025-10-01T08:00:00+08:00",
                    key=f"{PUBLISHER}/e3",
                    recipients=(RECIPIENT, OTHER),
                    seq=12,
                ),
            ],
            [receipt("2025-10-01T09:00:00+08:00", key=f"{PUBLISHER}/e3", status="dead_lettered")],
        ),
    ]
    dumps = []
    for version in (2, 3):
        (tmp_path / str(version)).mkdir()
        async with database(backend, tmp_path / str(version)) as (url, schema):
            async with Ledger.open(url, schema=schema) as ledger:
                for events, receipts in applied:
                    await ledger.apply(events, receipts)
                if version == 2:
                    await as_version_2(ledger)
            async with Ledger.open(url, schema=schema) as reopened:
                dumps.append(await reopened.dump())
                assert await stored_version(reopened) == str(SCHEMA_VERSION)
    upgraded, written = dumps
    assert upgraded == written
    lags = {(row[0], row[1]): row[-1] for row in written[1]}
    assert lags == {
        (f"{PUBLISHER}/e1", RECIPIENT): 1_250_001,
        (f"{PUBLISHER}/e2", RECIPIENT): None,  # pending
        (f"{PUBLISHER}/e2", OTHER): 90_000_000_000,  # 25 hours, receipt before event
        (f"{PUBLISHER}/e3", RECIPIENT): None,  # dead-lettered
        (f"{PUBLISHER}/e3", OTHER): None,
    }


def index_names(conn: Connection) -> set[str]:
    return {i["name"] for i in inspect(conn).get_indexes("ledger_delivery") if i["name"]}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_ledger_with_earlier_indexes_gets_the_figures_indexes_and_keeps_its_rows(
    backend: str, tmp_path: Path
) -> None:
    async with database(backend, tmp_path) as (url, schema):
        async with Ledger.open(url, schema=schema) as ledger:
            await ledger.apply(
                [event("2025-09-30T10:00:00+08:00", "2025-09-30T10:00:01+08:00")],
                [receipt("2025-09-30T10:00:02+08:00")],
            )
            async with ledger.engine.begin() as conn:  # as the ledger was before the figures
                for side in ("recipient", "publisher"):
                    await conn.execute(text(f"DROP INDEX ix_ledger_delivery_{side}_sums"))
                    await conn.execute(
                        text(
                            f"CREATE INDEX ix_ledger_delivery_{side}_day"
                            f" ON ledger_delivery ({side}, formed_day)"
                        )
                    )
        async with Ledger.open(url, schema=schema) as upgraded:
            async with upgraded.engine.connect() as conn:
                names = await conn.run_sync(index_names)
            counts = await upgraded.counts()
    assert {"ix_ledger_delivery_recipient_sums", "ix_ledger_delivery_publisher_sums"} <= names
    assert not names & {"ix_ledger_delivery_recipient_day", "ix_ledger_delivery_publisher_day"}
    assert counts == {"acknowledged": 1}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_hub_processes_opening_a_new_ledger_at_once_all_get_it(
    backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two hub processes start together on an empty database: neither waits, neither fails."""
    async with database(backend, tmp_path) as (url, schema):

        async def opened() -> str:
            async with Ledger.open(url, wait_s=30, schema=schema) as ledger:
                return await stored_version(ledger)

        versions = await asyncio.gather(*(opened() for _ in range(4)))
    assert versions == [str(SCHEMA_VERSION)] * 4
    assert "ledger.unavailable" not in caplog.text  # a race, not an outage


async def test_every_sqlite_connection_waits_for_locks_syncs_each_commit_and_caches_64_mib(
    tmp_path: Path,
) -> None:
    """The settings every connection gets, the writer's and each report's alike."""
    async with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite3'}") as ledger:
        async with ledger.engine.connect() as first, ledger.engine.connect() as second:
            for conn in (first, second):
                found = {
                    pragma: (await conn.exec_driver_sql(f"PRAGMA {pragma}")).scalar()
                    for pragma in ("journal_mode", "synchronous", "busy_timeout", "cache_size")
                }
                assert found == {
                    "journal_mode": "wal",  # reports read while the projection writes
                    "synchronous": 2,  # FULL: a committed batch survives a power cut
                    "busy_timeout": int(BUSY_WAIT_S * 1000),
                    "cache_size": -64 * 1024,  # KiB: a grown ledger's writes hit the cache
                }
