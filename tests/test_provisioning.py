"""Start-up provisioning: only what is missing or changed is written; fan-out never outruns it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import nats.js.errors
import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, ConsumerInfo

import hub.provisioning
import subscribers.connection
from hub.config import HubSettings
from hub.errors import HubNotFound
from hub.identity import ADMIN
from hub.ingest import utc_now
from hub.provisioning import Drift, Provisioner
from hub.registry import Registry, load_registry
from hub.roles import LEASE_S
from hub.samples import sample_event
from tests.conftest import Orgs, _delete_streams, hub_running
from tests.helpers import eventually, just_started, scrape

pytestmark = pytest.mark.connected

READ, SKIPPED, CHANGED = "renqiu-chuan", "renqiu-qingta", "renqiu-scjg"


@pytest.fixture
async def admin(settings: HubSettings, orgs: Orgs) -> AsyncIterator[JetStreamContext]:
    """The admin identity's JetStream context; this test's streams are deleted afterwards."""
    try:
        yield (await orgs.nc(ADMIN)).jetstream(timeout=settings.request_timeout_s)
    finally:
        await _delete_streams(settings)


def provisioner(settings: HubSettings, registry: Registry, js: JetStreamContext) -> Provisioner:
    return Provisioner(settings, registry, js, js, utc_now)


async def deliveries(js: JetStreamContext, settings: HubSettings) -> dict[str, ConsumerInfo]:
    found: dict[str, ConsumerInfo] = {}
    while page := await js.consumers_info(settings.wire.deliveries_stream, offset=len(found)):
        found |= {c.name: c for c in page}
    return found


async def fanout_paused(js: JetStreamContext, settings: HubSettings) -> bool:
    info = await js.consumer_info(settings.wire.events_stream, settings.wire.fanout_consumer)
    return bool(info.paused)


def written(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [getattr(r, "count", 0) for r in caplog.records if r.getMessage() == "consumers.written"]


async def read_one(js: JetStreamContext, settings: HubSettings, org: str) -> None:
    """One bundle stored for ``org`` and acknowledged through its consumer."""
    await js.publish(settings.wire.deliver(org), b"{}")
    sub = await js.pull_subscribe_bind(
        durable=settings.wire.delivery_consumer(org), stream=settings.wire.deliveries_stream
    )
    try:
        for msg in await sub.fetch(1, timeout=5):
            await msg.ack_sync()
    finally:
        await sub.unsubscribe()


async def test_a_restart_recreates_only_the_missing_consumer_and_updates_only_the_changed_one(
    settings: HubSettings,
    registry: Registry,
    admin: JetStreamContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await provisioner(settings, registry, admin).ensure()
    await read_one(admin, settings, READ)
    await admin.delete_consumer(settings.wire.deliveries_stream, f"deliver-{SKIPPED}")
    changed = (await deliveries(admin, settings))[f"deliver-{CHANGED}"].config
    changed.max_ack_pending = 7
    await admin.add_consumer(settings.wire.deliveries_stream, changed)
    before = await deliveries(admin, settings)
    caplog.set_level("INFO", logger="hub.provisioning")
    caplog.clear()

    await provisioner(settings, registry, admin).ensure()

    after = await deliveries(admin, settings)
    assert written(caplog) == [2]  # of 87 organisations' consumers and the hub's 4
    assert set(after) == {f"deliver-{o.id}" for o in registry.organisations}
    assert f"deliver-{SKIPPED}" not in before
    assert after[f"deliver-{CHANGED}"].config.max_ack_pending == settings.max_ack_pending
    kept = after[f"deliver-{READ}"]
    assert kept.delivered and kept.delivered.stream_seq == 1  # kept, not started over
    assert kept.ack_floor and kept.ack_floor.stream_seq == 1
    untouched = set(before) - {f"deliver-{CHANGED}"}
    assert {n: after[n].created for n in untouched} == {n: before[n].created for n in untouched}


async def test_a_restart_with_nothing_missing_writes_no_consumer(
    settings: HubSettings,
    registry: Registry,
    admin: JetStreamContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await provisioner(settings, registry, admin).ensure()
    caplog.set_level("INFO", logger="hub.provisioning")
    caplog.clear()
    await provisioner(settings, registry, admin).ensure()
    assert written(caplog) == []


async def test_beyond_the_start_up_share_consumers_are_written_later_with_fan_out_paused(
    settings: HubSettings,
    registry: Registry,
    admin: JetStreamContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub.provisioning, "WAIT_FOR", 10)
    monkeypatch.setattr(hub.provisioning, "CHUNK", 32)
    starting = provisioner(settings, registry, admin)
    await starting.ensure()
    assert len(starting.deferred) == len(registry.organisations)
    assert await fanout_paused(admin, settings)
    assert await deliveries(admin, settings) == {}

    await starting.catch_up()

    assert starting.deferred == []
    assert len(await deliveries(admin, settings)) == len(registry.organisations)
    assert not await fanout_paused(admin, settings)


async def test_a_pause_left_by_a_start_that_did_not_catch_up_is_lifted_by_the_next(
    settings: HubSettings,
    registry: Registry,
    admin: JetStreamContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub.provisioning, "WAIT_FOR", 10)
    await provisioner(settings, registry, admin).ensure()  # then stopped
    monkeypatch.setattr(hub.provisioning, "WAIT_FOR", 100)
    await provisioner(settings, registry, admin).ensure()
    assert len(await deliveries(admin, settings)) == len(registry.organisations)
    assert not await fanout_paused(admin, settings)


async def test_events_accepted_before_the_consumers_exist_wait_and_are_delivered_after(
    settings: HubSettings, registry: Registry, orgs: Orgs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub.provisioning, "WAIT_FOR", 10)
    written = asyncio.Event()
    catch_up = Provisioner.catch_up

    async def held(self: Provisioner, stop: asyncio.Event | None = None) -> None:
        await written.wait()
        await catch_up(self, stop)

    monkeypatch.setattr(Provisioner, "catch_up", held)
    async with hub_running(settings, registry) as running:
        js, wire = running.js, settings.wire
        try:
            publisher = await orgs.publisher("renqiu-scjg")
            event = sample_event("other", "renqiu-scjg", datetime.now(UTC), recipients=(READ,))
            await publisher.publish(event)  # accepted while no organisation has a consumer

            async def held_at_fanout() -> bool:
                info = await js.consumer_info(wire.events_stream, wire.fanout_consumer)
                return bool(info.paused and info.num_pending == 1)

            await eventually(held_at_fanout)
            assert (await js.stream_info(wire.deliveries_stream)).state.messages == 0
            ready = await scrape(running, "/readyz")  # ops see why nothing is delivered
            assert ready.status_code == 503 and ready.json()["fanout"] is False
            config = (await scrape(running, "/api/ops")).json()["config"]
            assert config["consumers_to_write"] == len(registry.organisations)
            gauge = f"hub_consumers_to_write {len(registry.organisations)}.0"
            assert gauge in (await scrape(running)).text
        finally:
            written.set()

        async def delivered() -> bool:
            try:
                info = await js.consumer_info(wire.deliveries_stream, wire.delivery_consumer(READ))
            except nats.js.errors.NotFoundError:
                return False
            return bool(info.num_pending == 1)

        await eventually(delivered, within=30)
        assert (await scrape(running, "/readyz")).status_code == 200
        assert (await scrape(running, "/api/ops")).json()["config"]["consumers_to_write"] == 0
    assert running.config_state.trouble is None


async def test_a_newcomer_to_the_registry_has_its_consumer_before_the_hub_routes_to_it(
    settings: HubSettings, admin: JetStreamContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = resources.files("hub") / "data" / "cangzhou.toml"
    registry_file = tmp_path / "registry.toml"
    registry_file.write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    reloading = settings.model_copy(update={"registry": registry_file})
    keeper = provisioner(reloading, load_registry(registry_file), admin)
    await keeper.ensure()
    with registry_file.open("a", encoding="utf-8") as out:
        out.write(
            '\n[[org]]\nid = "renqiu-xfjy"\nname = "任丘市消防救援大队"\n'
            'kind = "department"\ncounty = "renqiu"\n'
        )
    seen: list[tuple[str | None, bool]] = []
    add_consumer = admin.add_consumer

    async def noting(stream: str, config: ConsumerConfig | None = None, **more: Any) -> Any:
        known = {o.id for o in keeper.registry.organisations}
        seen.append((config.name if config else None, "renqiu-xfjy" in known))
        return await add_consumer(stream, config, **more)

    monkeypatch.setattr(admin, "add_consumer", noting)
    await keeper.check()
    assert seen == [("deliver-renqiu-xfjy", False)]  # written while the hub did not know it
    assert "renqiu-xfjy" in {o.id for o in keeper.registry.organisations}
    assert keeper.state.drift == ()


async def test_the_leases_bucket_is_provisioned_and_its_absence_refused_without_admin(
    settings: HubSettings, registry: Registry, admin: JetStreamContext
) -> None:
    wire = settings.wire
    await provisioner(settings, registry, admin).ensure()
    assert (await (await admin.key_value(wire.roles_bucket)).status()).ttl == LEASE_S
    await admin.delete_key_value(wire.roles_bucket)

    reading_only = Provisioner(settings, registry, admin, None, utc_now)
    assert Drift(f"bucket KV_{wire.roles_bucket}", ("missing",)) in await reading_only.compare()
    with pytest.raises(HubNotFound):
        await reading_only.ensure()

    await provisioner(settings, registry, admin).ensure()  # with the admin identity: made again
    assert await reading_only.compare() == []


async def test_start_up_waits_out_a_cluster_that_does_not_serve_jetstream_yet(
    settings: HubSettings,
    registry: Registry,
    admin: JetStreamContext,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(subscribers.connection, "UNAVAILABLE_RETRY_S", 0.01)
    caplog.set_level("WARNING", logger="subscribers.connection")
    js = just_started(admin, "stream_info", refusals=12)

    await Provisioner(settings, registry, js, js, utc_now).ensure()

    logged = [r for r in caplog.records if r.getMessage() == "jetstream.unavailable"]
    assert [getattr(r, "refusals", None) for r in logged] == [1, 11]  # not each of the 12
    assert await Provisioner(settings, registry, admin, admin, utc_now).compare() == []

    monkeypatch.setattr(subscribers.connection, "UNAVAILABLE_WAIT_S", 0.0)  # never serves: said so
    js = just_started(admin, "stream_info", refusals=1)
    with pytest.raises(nats.js.errors.ServiceUnavailableError):
        await Provisioner(settings, registry, js, js, utc_now).ensure()
