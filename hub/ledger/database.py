"""The ledger database: opening it (version checked, retried while it is away), writes and reads.

A projection of the events and receipts streams into SQL (SQLite by default, PostgreSQL in
production). Every write is an idempotent upsert whose result does not depend on how the two
streams interleave, so a rebuild from the streams gives the same rows as the live projection.

"Delivered" is what the recipient's receipts say: the earliest ``received_at`` of any receipt for
the pair (a ``failed`` attempt's too), never later than the hub stored that receipt. A recipient
system that dies before it sends any receipt leaves the pair pending, without a delivery time,
until a redelivery's receipt or the dead-letter record arrives.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Iterable, Sequence
from contextlib import aclosing, asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Index, delete, event, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.schema import DropIndex

from hub.cases.state import CaseState
from hub.errors import ConfigError, LedgerUnavailable, LedgerVersionError
from hub.ledger import cases, figures, queries
from hub.ledger.cases import CaseStep, DeadlineRow
from hub.ledger.figures import Level, Side
from hub.ledger.records import (
    Backlog,
    DeliveryRow,
    DeliveryState,
    EventRecord,
    EventRow,
    PairFigures,
    ReceiptRecord,
)
from hub.ledger.tables import (
    ADDITIVE_SINCE,
    CASE_TABLES,
    DATA_TABLES,
    OBSOLETE_INDEXES,
    SCHEMA_VERSION,
    deliveries_table,
    events_table,
    meta_table,
    metadata,
)
from hub.ledger.upgrade import add_missing_columns
from hub.ledger.upserts import Bound, chunks, event_rows, first_of_each_key, runs

log = logging.getLogger(__name__)

RETRY_PAUSE_S = 1.0
BUSY_WAIT_S = 10.0  # how long SQLite waits for another process's lock (and the WAL switch)
CACHE_KIB = 64 * 1024
"""SQLite's page cache per connection (its default is 2 MiB), filled only as pages are read.

The pool keeps up to 5 connections open, so a hub whose reports read a year of a busy county can
hold about 320 MiB of ledger pages; the writer's connection stays at 64 MiB.

A pair's key (event key, recipient) lands at a random place of its index (publishers choose event
ids), so on a grown ledger nearly every write read its page back from the OS. On a ledger of
400,000 pairs (``bench.ledger``, three runs) 64 MiB halved the writer's system-call time per
1,000 deliveries (events 15 → 9 ms, receipts 21–23 → 10–11); the total fell by 0–12 %, close to
the run-to-run noise. The larger the ledger, the more it saves."""
PREPARE_LOCK_ID = 0x6C6564676572  # PostgreSQL advisory lock held while the tables are prepared
CONFIG_SQLSTATES = {
    "28000",  # invalid authorization
    "28P01",  # invalid password
    "3D000",  # database does not exist
    "3F000",  # schema does not exist
    "42501",  # insufficient privilege
}


def engine_url(url: str) -> str:
    """Accept plain ``sqlite:///…`` and ``postgresql://…`` URLs and pick the async drivers."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
    backend = parsed.get_backend_name()
    if backend not in driver:
        raise ConfigError(
            "HUB_LEDGER_URL", f"unsupported database {backend!r}: use sqlite or postgresql"
        )
    return parsed.set(drivername=driver[backend]).render_as_string(hide_password=False)


def shown(url: str) -> str:
    """The URL as it may be printed: without its password."""
    return make_url(url).render_as_string(hide_password=True)


def problem(url: str, exc: BaseException) -> ConfigError | LedgerUnavailable:
    """What a failure to reach the database means: a setting to fix, or a server that is away."""
    where = shown(url)
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else ""
    detail = f"{type(original).__name__}: {text}" if text else type(original).__name__
    if make_url(url).get_backend_name() == "sqlite" and "unable to open" in text:
        return ConfigError(
            "HUB_LEDGER_URL", f"无法打开 SQLite 文件 {where}：目录不存在或没有写权限（{detail}）"
        )
    if getattr(original, "sqlstate", None) in CONFIG_SQLSTATES:
        return ConfigError("HUB_LEDGER_URL", f"{where}：{detail}")
    return LedgerUnavailable(where, detail)


def _sqlite_directory(url: str) -> None:
    """Refuse a SQLite file in a missing directory before the driver's thread meets it."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    if parsed.database != ":memory:" and not Path(parsed.database).parent.is_dir():
        raise ConfigError(
            "HUB_LEDGER_URL",
            f"无法打开 SQLite 文件 {shown(url)}：目录 {Path(parsed.database).parent} 不存在",
        )


class Ledger:
    """Writes and reads the ledger tables."""

    def __init__(self, engine: AsyncEngine, where: str = "") -> None:
        self.engine, self.where = engine, where
        self._write = asyncio.Lock()  # one writer: SQLite would refuse a second
        self._bound: dict[tuple[str, str], Bound] = {}

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        url: str,
        *,
        schema: str | None = None,
        wait_s: float = 0.0,
        recreate: bool = False,
    ) -> AsyncIterator[Ledger]:
        """Open the ledger at ``url``, creating its tables, and close it afterwards.

        Args:
            url: ``sqlite:///…`` or ``postgresql://…``.
            schema: a PostgreSQL schema of its own (tests).
            wait_s: how long to keep trying while the database is unreachable.
            recreate: drop the tables first (a ledger of another schema version, before a rebuild).

        Raises:
            LedgerUnavailable: the database did not answer within ``wait_s``.
            LedgerVersionError: the tables belong to another schema version.
            ConfigError: the URL cannot work (bad path, password or database name).
        """
        _sqlite_directory(url)
        options: dict[str, Any] = {}
        if schema is not None:
            options["connect_args"] = {"server_settings": {"search_path": schema}}
        engine = create_async_engine(engine_url(url), **options)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        try:
            await _prepare(engine, url, wait_s, recreate)
            yield cls(engine, shown(url))
        finally:
            await engine.dispose()

    async def apply(
        self,
        events: Sequence[EventRecord],
        receipts: Sequence[ReceiptRecord],
        case_steps: Sequence[CaseStep] = (),
    ) -> None:
        """Record events, receipts and case steps in one transaction (each in stream order)."""
        events = first_of_each_key(events)
        async with self._write, self.engine.begin() as conn:
            await cases.record(conn, case_steps)
            upsert = self._upsert(conn, "events")
            for chunk in chunks(upsert.params(event_rows(events))):
                await conn.exec_driver_sql(upsert.sql, chunk)
            upsert = self._upsert(conn, "pairs")
            for chunk in chunks(upsert.pair_params(events)):
                await conn.exec_driver_sql(upsert.sql, chunk)
            for status, run in runs(receipts):
                upsert = self._upsert(conn, status)
                for chunk in chunks(upsert.receipt_params(run)):
                    await conn.exec_driver_sql(upsert.sql, chunk)

    def _upsert(self, conn: AsyncConnection, kind: str) -> Bound:
        """The upsert of ``kind`` on this database, compiled once."""
        key = (conn.dialect.name, kind)
        if key not in self._bound:
            self._bound[key] = Bound.compile(conn.dialect, kind)
        return self._bound[key]

    async def wipe(self) -> None:
        """Delete every row (before a rebuild)."""
        async with self._write, self.engine.begin() as conn:
            for table in (deliveries_table, events_table, *CASE_TABLES):
                await conn.execute(delete(table))

    async def pairs(
        self,
        *,
        day_from: date,
        day_to: date,
        recipient: str | None = None,
        publisher: str | None = None,
    ) -> list[DeliveryRow]:
        """Pairs of events formed on ``day_from``..``day_to`` (Shanghai days), or one org's."""
        query = queries.pairs_query(day_from, day_to, recipient, publisher)
        async with self.engine.connect() as conn:
            return await queries.pairs(conn, query)

    async def figures(
        self,
        *,
        day_from: date,
        day_to: date,
        today: date,
        side: Side,
        levels: Sequence[Level] = ("category", "org"),
        recipient: str | None = None,
        publisher: str | None = None,
        members: Collection[str] | None = None,
    ) -> list[PairFigures]:
        """The reports' sums over the pairs ``pairs`` would return, judged on Shanghai's ``today``.

        Args:
            day_from: the first day of formation (Shanghai).
            day_to: the last.
            today: the Shanghai day of the report's "now" (open pairs formed before it are late).
            side: whose organisation groups the pairs: each pair's recipient or its publisher.
            levels: per organisation and category, per organisation, and everything together.
            recipient: only this recipient's pairs.
            publisher: only this publisher's pairs.
            members: only pairs sent or received by one of these organisations.
        """
        async with self.engine.connect() as conn:
            return await figures.figures(
                conn,
                day_from=day_from,
                day_to=day_to,
                today=today,
                side=side,
                levels=levels,
                recipient=recipient,
                publisher=publisher,
                members=members,
            )

    async def faults(
        self, day_from: date, day_to: date, org: str, role: Side, today: date
    ) -> list[DeliveryRow]:
        """The pairs ``org`` answers for as ``role`` (see ``hub.ledger.figures.faults``)."""
        query = figures.faults(day_from, day_to, org, role, today)
        async with self.engine.connect() as conn:
            return await queries.pairs(conn, query)

    async def rows(
        self, table: str, *, per_part: int = queries.ROWS_PER_PART
    ) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        """Every row of ``table`` (``events`` or ``deliveries``) in binary key order, in parts.

        To compare two ledgers without holding either: the order is the same on both databases.
        """
        async with (
            self.engine.connect() as conn,
            aclosing(queries.rows_in_key_order(conn, table, per_part)) as parts,
        ):
            async for part in parts:
                yield part

    async def dump(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Every row of both tables, in key order (to compare two ledgers whole)."""
        return await self._all_rows("events"), await self._all_rows("deliveries")

    async def _all_rows(self, table: str) -> list[tuple[Any, ...]]:
        return [row async for part in self.rows(table) for row in part]

    async def events(self, *, up_to_seq: int | None = None) -> list[EventRow]:
        """Accepted events the ledger knows, in stream order (up to a sequence, if given)."""
        async with self.engine.connect() as conn:
            return await queries.events(conn, up_to_seq)

    async def case_states(
        self, *, org: str | None = None, open_only: bool = False
    ) -> list[CaseState]:
        """Cases an organisation is party to (every case when ``org`` is None), newest first."""
        async with self.engine.connect() as conn:
            return await cases.states(conn, org=org, open_only=open_only)

    async def case_state(self, key: str) -> CaseState | None:
        """One case's state after its latest step."""
        async with self.engine.connect() as conn:
            return await cases.state(conn, key)

    async def case_deadlines(
        self,
        *,
        party: str | None = None,
        due_before: datetime | None = None,
        unnoticed: bool = False,
    ) -> list[DeadlineRow]:
        """Case deadlines (see ``hub.ledger.cases.deadlines``)."""
        async with self.engine.connect() as conn:
            return await cases.deadlines(
                conn, party=party, due_before=due_before, unnoticed=unnoticed
            )

    async def high_water(self) -> int:
        """The highest events-stream sequence the ledger recorded (0 when it has none)."""
        async with self.engine.connect() as conn:
            return await queries.high_water(conn)

    async def events_gone(
        self, *, up_to_seq: int, first_seq: int, last_seq: int, deleted: Iterable[int]
    ) -> list[EventRow]:
        """Recorded events up to ``up_to_seq`` the stream no longer holds, by its own account."""
        async with self.engine.connect() as conn:
            return await queries.events_gone(conn, up_to_seq, first_seq, last_seq, deleted)

    async def counts(self) -> dict[DeliveryState, int]:
        """How many pairs are in each state."""
        async with self.engine.connect() as conn:
            return await queries.counts(conn)

    async def backlog(self, *, category: str | None = None) -> dict[str, Backlog]:
        """Per recipient: events still waiting for its acknowledgement (dead letters apart)."""
        async with self.engine.connect() as conn:
            return await queries.backlog(conn, category)


async def _prepare(engine: AsyncEngine, url: str, wait_s: float, recreate: bool) -> None:
    """Create or check the tables, trying again while the database is away (up to ``wait_s``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        try:
            async with engine.begin() as conn:
                found = await conn.run_sync(_tables_at_version, recreate)
            break
        except (OSError, TimeoutError, DBAPIError) as exc:
            if _created_meanwhile(exc) and loop.time() < deadline:
                # a hub of an earlier version, which prepares without the lock, created the
                # tables at the same moment: look again
                log.info("ledger.created_by_another_process", extra={"ledger": shown(url)})
                continue
            failure = problem(url, exc)
            if isinstance(failure, ConfigError) or loop.time() >= deadline:
                raise failure from exc
            log.warning("ledger.unavailable", extra={"ledger": shown(url), "error": str(failure)})
            await asyncio.sleep(RETRY_PAUSE_S)
    if found in ADDITIVE_SINCE:  # the missing tables were just created: stamp the new version
        async with engine.begin() as conn:
            await conn.execute(
                meta_table.update()
                .where(meta_table.c.name == "version")
                .values(value=str(SCHEMA_VERSION))
            )
        log.info("ledger.upgraded", extra={"from": found, "to": SCHEMA_VERSION})
    elif found != SCHEMA_VERSION:
        raise LedgerVersionError(shown(url), found, SCHEMA_VERSION)


def _created_meanwhile(exc: BaseException) -> bool:
    """Whether creating a table or index failed because it exists now (a race, not a fault)."""
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    return "already exists" in str(original) or getattr(original, "sqlstate", None) in {
        "42P07",  # duplicate_table
        "23505",  # unique_violation (PostgreSQL's catalog, two CREATE TABLE at once)
    }


def _tables_at_version(conn: Connection, recreate: bool) -> int:
    """Create what is missing and return the stored schema version (stamping a new ledger).

    A ledger written before the version was stored has the data tables and no meta table: it is
    version 1, whose tables these are.
    """
    # one process at a time looks and creates: the others wait, then find the tables made
    if conn.dialect.name == "sqlite":
        # the write lock before looking: a reader that wants to write later is refused at once
        # ("database is locked") when another process wrote meanwhile, not made to wait
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.execute(select(func.pg_advisory_xact_lock(PREPARE_LOCK_ID)))
    if recreate:
        metadata.drop_all(conn, tables=[*DATA_TABLES, *CASE_TABLES, meta_table])
    existing = set(inspect(conn).get_table_names())
    metadata.create_all(conn)
    add_missing_columns(conn, existing)
    _indexes(conn, existing)
    if meta_table.name in existing:
        stored = conn.execute(select(meta_table.c.value).where(meta_table.c.name == "version"))
        value = stored.scalar()
        if value is not None:
            return int(value)
    version = 1 if events_table.name in existing else SCHEMA_VERSION
    conn.execute(meta_table.insert().values(name="version", value=str(version)))
    return version


def _indexes(conn: Connection, existing: set[str]) -> None:
    """Give tables made by an earlier version today's indexes (once: minutes on a large ledger)."""
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue  # just created, with its indexes
        present = {i["name"] for i in inspect(conn).get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in present:
                log.info("ledger.indexing", extra={"index": index.name})
                index.create(conn)
        for name in OBSOLETE_INDEXES:
            if name in present:
                conn.execute(DropIndex(Index(name)))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_WAIT_S * 1000)}")
    _wal(cursor)  # reports read while the projector writes
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    cursor.close()


def _wal(cursor: Any) -> None:
    """Switch to WAL, waiting while another process holds the new file's lock.

    SQLite refuses the switch at once ("database is locked") instead of calling the busy
    handler, so two hub processes opening a new ledger together would see a locked database.
    This runs on the driver's own thread: sleeping here blocks no event loop.
    """
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
