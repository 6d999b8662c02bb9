"""The hub's streams and consumers as declared, made so, and kept so.

At start-up the admin identity creates what is missing and brings what drifted back to the
declaration. Each stream's consumers are listed once (a page of 256 per request) and only missing
or changed ones are written, many at once. Creating a consumer costs the server a write and an
fsync of its state (about 12 ms on a 2-core machine with ``sync_interval: always``, and requests
in flight together hardly overlap), so a province's thousands of organisations would hold the
start for half a minute: beyond ``WAIT_FOR`` of them the hub starts at once with the fan-out
consumer paused, writes the rest in the background and then resumes it, so no event is fanned
out to an organisation before its consumer exists (ingest accepts meanwhile; the events wait in
their stream).

While the hub runs, the same comparison is repeated every ``HUB_DRIFT_CHECK_S``: a stream or
consumer changed behind the hub's back (a shortened ``max_age``, a lifted ``deny_delete``, a
consumer's filter) is shown on the ops page and in the ``hub_config_drift`` gauge, and repaired
when the admin identity is at hand. A changed registry file is read again at the same time; its new
organisations get their consumers before the hub routes anything to them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, ConsumerInfo, KeyValueConfig, ObjectStoreConfig

from hub.config import HubSettings
from hub.errors import HubError, HubNotFound
from hub.registry import Registry, load_registry
from hub.roles import LEASE_S
from hub.streams import delivery_consumer_config, hub_consumers, stream_configs
from hub.timeliness import Clock
from subscribers.connection import while_unavailable

log = logging.getLogger(__name__)

CONCURRENCY = 32  # consumer requests in flight at once
PAGE = 256  # consumers per CONSUMER.LIST page
WAIT_FOR = 100  # consumers written before the hub is ready (≈1 s); more are written after
CHUNK = 256  # consumers written per renewal of the fan-out's pause
PAUSE_S = 120.0  # a pause outlives its renewal by this much (a hub killed meanwhile: it ends)
RETRY_S = 1.0  # after trouble, the background writes are tried again this much later
STREAM_FIELDS = (
    "subjects",
    "retention",
    "storage",
    "discard",
    "num_replicas",
    "duplicate_window",
    "max_msg_size",
    "max_age",
    "max_bytes",
    "max_consumers",
    "max_msgs",
    "max_msgs_per_subject",
    "allow_direct",
    "deny_delete",
    "deny_purge",
)
CONSUMER_FIELDS = (
    "filter_subject",
    "deliver_policy",
    "ack_policy",
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
    "metadata",
)


def _unset(value: Any) -> bool:
    """How the server (or a declaration) says "no limit": absent, -1 or 0."""
    return value is None or (type(value) in (int, float) and value in (-1, 0))


@dataclass(frozen=True)
class Drift:
    """One stream or consumer whose live settings differ from the declaration."""

    what: str  # "stream HUB_EVENTS" or "consumer HUB_DELIVERIES/deliver-renqiu-chuan"
    fields: tuple[str, ...]


@dataclass
class ConfigState:
    """The outcome of the latest comparison, for ops."""

    drift: tuple[Drift, ...] = ()
    repaired: int = 0
    checked_at: datetime | None = None
    trouble: str | None = None
    history: list[Drift] = field(default_factory=list)  # every drift seen since start-up
    consumers_to_write: int = 0  # organisations' consumers still being written: fan-out paused


def _value(config: Any, name: str) -> Any:
    value = getattr(config, name, None)
    if isinstance(value, Iterable) and not isinstance(value, str | dict):
        return tuple(value)
    if name == "metadata" and isinstance(value, dict):  # the server adds its own keys
        return {k: v for k, v in value.items() if not k.startswith("_nats")} or None
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return round(value, 3)
    return value


def differences(expected: Any, actual: Any, names: Iterable[str]) -> tuple[str, ...]:
    """The fields whose values differ (treating every way of saying "no limit" as one)."""
    found = []
    for name in names:
        want, have = _value(expected, name), _value(actual, name)
        if _unset(want) and _unset(have):
            continue
        if want != have:
            found.append(name)
    return tuple(found)


Write = tuple[str, ConsumerConfig]  # a consumer to create or update, and its stream


class Provisioner:
    """Makes and keeps the declared streams and consumers."""

    def __init__(
        self,
        settings: HubSettings,
        registry: Registry,
        reader: JetStreamContext,
        admin: JetStreamContext | None,
        clock: Clock,
    ) -> None:
        self.settings, self.registry, self.clock = settings, registry, clock
        self.reader, self.admin = reader, admin  # admin: None when this hub may not manage
        self.state = ConfigState()
        self.deferred: list[Write] = []  # organisations' consumers ``run`` writes; fan-out paused
        self._registry_mtime = self._mtime()

    async def ensure(self) -> None:
        """Create what is missing and repair what drifted (needs the admin identity).

        Beyond ``WAIT_FOR`` missing or changed organisations' consumers, those are left in
        ``deferred`` for ``run`` and the fan-out consumer is paused until they exist.

        JetStream answering "unavailable" (503), as a cluster that has just started may, is waited
        out (``while_unavailable``): every step is idempotent, so the whole preparation is tried
        again.

        Raises:
            HubNotFound: the streams are missing and this hub may not create them.
            nats.js.errors.ServiceUnavailableError: still unavailable after the wait.
        """
        await while_unavailable(self._ensure_once, "provisioning")

    async def _ensure_once(self) -> None:
        if self.admin is None:
            drift = await self.compare()
            if any(d.fields == ("missing",) for d in drift):
                raise HubNotFound("流或消费者（需用管理身份创建）", self.settings.wire.root)
            return
        started = time.perf_counter()
        await self._ensure_streams(self.admin)
        written = await self._ensure_consumers(self.admin)
        await self._ensure_buckets(self.admin)
        log.info(
            "provisioning.done",
            extra={
                "seconds": round(time.perf_counter() - started, 3),
                "written": written,
                "deferred": len(self.deferred),
            },
        )

    async def _ensure_buckets(self, js: JetStreamContext) -> None:
        """The attachment store and its grants (created once, then kept undeletable); the leases."""
        wire, replicas = self.settings.wire, self.settings.replicas
        try:
            await js.object_store(wire.attachments_bucket)
        except nats.js.errors.BucketNotFoundError:
            await js.create_object_store(
                wire.attachments_bucket,
                ObjectStoreConfig(description="案件附件（以 SHA-256 命名）", replicas=replicas),
            )
        buckets = [
            KeyValueConfig(
                bucket=wire.grants_bucket, description="附件的使用权", history=5, replicas=replicas
            ),
            KeyValueConfig(
                bucket=wire.roles_bucket,
                description="枢纽各进程承担的角色（到期即释放的租约）",
                history=1,
                ttl=LEASE_S,
                replicas=replicas,
            ),
        ]
        for bucket in buckets:
            try:
                await js.key_value(bucket.bucket)
            except nats.js.errors.BucketNotFoundError:
                await js.create_key_value(bucket)
        for stream in wire.store_streams:
            config = (await js.stream_info(stream)).config
            if not config.deny_delete:  # evidence of a case: no single message is removed
                config.deny_delete = True
                await js.update_stream(config)

    async def _ensure_streams(self, js: JetStreamContext) -> None:
        for config in stream_configs(self.settings):
            try:
                info = await js.stream_info(config.name or "")
            except nats.js.errors.NotFoundError:
                await js.add_stream(config)
                log.info("stream.created", extra={"stream": config.name})
                continue
            if differences(config, info.config, STREAM_FIELDS):
                await js.update_stream(config)
                log.info("stream.updated", extra={"stream": config.name})

    def _consumers(self, registry: Registry | None = None) -> list[Write]:
        return [*hub_consumers(self.settings), *self._deliveries(registry or self.registry)]

    def _deliveries(self, registry: Registry, skip: frozenset[str] = frozenset()) -> list[Write]:
        """The delivery consumer of every organisation of ``registry`` but those in ``skip``."""
        wire = self.settings.wire
        return [
            (wire.deliveries_stream, delivery_consumer_config(self.settings, wire, org.id))
            for org in registry.organisations
            if org.id not in skip
        ]

    async def _existing(self, js: JetStreamContext, stream: str) -> dict[str, ConsumerInfo]:
        found: dict[str, ConsumerInfo] = {}
        while True:
            page = await js.consumers_info(stream, offset=len(found))
            found |= {c.name: c for c in page}
            if len(page) < PAGE:
                return found

    async def _ensure_consumers(self, js: JetStreamContext) -> int:
        """Write the missing or changed consumers (or defer the organisations'); how many."""
        wanted = self._consumers()
        existing = {s: await self._existing(js, s) for s in {s for s, _ in wanted}}
        writes = [
            (stream, config)
            for stream, config in wanted
            if (info := existing[stream].get(config.name or "")) is None
            or differences(config, info.config, CONSUMER_FIELDS)
        ]
        deliveries = self.settings.wire.deliveries_stream
        own = [w for w in writes if w[0] != deliveries]
        theirs = [w for w in writes if w[0] == deliveries]
        await self._write(js, own)  # fan-out, ledger, advisories: the hub needs them now
        if len(theirs) > WAIT_FOR:
            await self._pause_fanout(js)
            self.deferred = theirs
            self.state.consumers_to_write = len(theirs)
            log.info("consumers.deferred", extra={"count": len(theirs)})
            return len(own)
        await self._write(js, theirs)
        fanout = existing[self.settings.wire.events_stream].get(self.settings.wire.fanout_consumer)
        if fanout is not None and fanout.paused:  # left by a hub stopped before it caught up
            await self._resume_fanout(js)
        return len(writes)

    async def _write(self, js: JetStreamContext, writes: list[Write]) -> None:
        """Create or update each consumer, ``CONCURRENCY`` requests in flight."""
        gate = asyncio.Semaphore(CONCURRENCY)

        async def write(stream: str, config: ConsumerConfig) -> None:
            async with gate:
                await js.add_consumer(stream, config)

        try:
            async with asyncio.TaskGroup() as tasks:
                for stream, config in writes:
                    tasks.create_task(write(stream, config))
        except ExceptionGroup as failed:  # the first says why; the rest are written next time
            raise failed.exceptions[0] from failed
        if writes:
            log.info("consumers.written", extra={"count": len(writes)})

    async def _pause_fanout(self, js: JetStreamContext) -> None:
        """Hold the fan-out for ``PAUSE_S`` (renewed while consumers are written)."""
        until = datetime.now(UTC) + timedelta(seconds=PAUSE_S)  # the server's time, not the clock
        wire = self.settings.wire
        await js.pause_consumer(wire.events_stream, wire.fanout_consumer, until.isoformat())

    async def _resume_fanout(self, js: JetStreamContext) -> None:
        wire = self.settings.wire
        await js.resume_consumer(wire.events_stream, wire.fanout_consumer)
        log.info("fanout.resumed")

    async def catch_up(self, stop: asyncio.Event | None = None) -> None:
        """Write the deferred consumers, a chunk per renewal of the pause, then resume fan-out.

        Stops between chunks once ``stop`` is set (the pause then ends on its own).
        """
        if self.admin is None or not self.deferred:
            return
        started = time.perf_counter()
        count = len(self.deferred)
        while self.deferred:
            if stop is not None and stop.is_set():
                return
            chunk = self.deferred[:CHUNK]
            await self._pause_fanout(self.admin)
            await self._write(self.admin, chunk)
            del self.deferred[: len(chunk)]
            self.state.consumers_to_write = len(self.deferred)
        await self._resume_fanout(self.admin)
        log.info(
            "consumers.caught_up",
            extra={"count": count, "seconds": round(time.perf_counter() - started, 3)},
        )

    async def compare(self) -> list[Drift]:
        """Every stream, bucket and consumer that is missing or differs from its declaration."""
        drift = []
        for declared in stream_configs(self.settings):
            try:
                live = await self.reader.stream_info(declared.name or "")
            except nats.js.errors.NotFoundError:
                drift.append(Drift(f"stream {declared.name}", ("missing",)))
                continue
            if fields := differences(declared, live.config, STREAM_FIELDS):
                drift.append(Drift(f"stream {declared.name}", fields))
        for bucket in self.settings.wire.bucket_streams:
            try:
                await self.reader.stream_info(bucket)
            except nats.js.errors.NotFoundError:
                drift.append(Drift(f"bucket {bucket}", ("missing",)))
        if any(d.fields == ("missing",) for d in drift):
            return drift
        wanted = self._consumers()
        existing = {s: await self._existing(self.reader, s) for s in {s for s, _ in wanted}}
        for stream, config in wanted:
            info = existing[stream].get(config.name or "")
            what = f"consumer {stream}/{config.name}"
            if info is None:
                drift.append(Drift(what, ("missing",)))
            elif fields := differences(config, info.config, CONSUMER_FIELDS):
                drift.append(Drift(what, fields))
        return drift

    async def check(self) -> ConfigState:
        """Admit a changed registry, compare, and repair when allowed."""
        await self._reload_registry()
        drift = await self.compare()
        if drift:
            log.error(
                "config.drift",
                extra={"drift": [f"{d.what}: {','.join(d.fields)}" for d in drift[:50]]},
            )
            self.state.history.extend(drift)
            if self.admin is not None:
                await self.ensure()
                self.state.repaired += len(drift)
        self.state.drift, self.state.checked_at = tuple(drift), self.clock()
        return self.state

    async def run(self, stop: asyncio.Event) -> None:
        """Write what ``ensure`` deferred, then check every ``HUB_DRIFT_CHECK_S`` until ``stop``.

        Trouble is retried, never fatal.
        """
        while not await _stopped(stop, self._next_s()):
            try:
                if self.deferred:
                    await self.catch_up(stop)
                else:
                    await self.check()
                self.state.trouble = None
            except (nats.errors.Error, TimeoutError, HubError) as exc:
                self.state.trouble = f"{type(exc).__name__}: {exc}"
                log.warning("config.check_deferred", extra={"error": self.state.trouble})

    def _next_s(self) -> float:
        """How long ``run`` waits before its next step."""
        if self.deferred:
            return RETRY_S if self.state.trouble else 0.0
        return self.settings.drift_check_s

    def _mtime(self) -> float | None:
        path: Path | None = self.settings.registry
        return path.stat().st_mtime if path is not None and path.exists() else None

    async def _reload_registry(self) -> None:
        """Read a changed registry file; its newcomers get their consumers before it is used."""
        mtime = self._mtime()
        if mtime is None or mtime == self._registry_mtime:
            return
        try:
            fresh = load_registry(self.settings.registry)
        except HubError as exc:
            self._registry_mtime = mtime  # read again once it changes
            log.error("registry.reload_failed", extra={"error": str(exc)})
            return
        if self.admin is not None:  # on trouble: raised, and the file is read again next time
            known = frozenset(o.id for o in self.registry.organisations)
            await self._write(self.admin, self._deliveries(fresh, skip=known))
        self._registry_mtime = mtime
        self.registry.replace_with(fresh)
        log.info("registry.reloaded", extra={"organisations": len(fresh)})


async def _stopped(stop: asyncio.Event, after_s: float) -> bool:
    """Wait ``after_s`` seconds unless ``stop`` is set first; whether it is set."""
    try:
        async with asyncio.timeout(after_s):
            await stop.wait()
    except TimeoutError:
        pass
    return stop.is_set()
