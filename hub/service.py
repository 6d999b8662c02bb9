"""The hub process: ingest (FastStream request/reply), fan-out and the ledger projection."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import nats.errors
from faststream.nats import NatsBroker
from faststream.nats.security import NatsCredentials, NatsSecurity
from nats.js import JetStreamContext

from hub.advisories import DeadLetters
from hub.attachments import Attachments
from hub.audit.checkpoints import Checkpointer
from hub.audit.trust import RecordTrust
from hub.audit.watch import AuditWatch
from hub.cases.answers import CaseAnswers
from hub.cases.desk import CaseDesk
from hub.cases.rules import CaseRules
from hub.cases.watch import OverdueWatch
from hub.config import HubSettings
from hub.delivery import FanOut
from hub.errors import ConfigError, NatsUnavailable
from hub.identity import ADMIN, HUB, credentials_for
from hub.identity.sessions import connect_as, tls_context
from hub.ingest import Ingest, utc_now
from hub.ingest_endpoint import IngestEndpoint
from hub.ledger import Ledger
from hub.metrics import HubMetrics
from hub.projection import Projector, ReceiptTime, stored_at
from hub.provisioning import ConfigState, Provisioner
from hub.recompute import deep_check
from hub.reconcile import StoreCheck, StoreChecker
from hub.registry import Registry
from hub.rejections import Rejections
from hub.rejections import follow as follow_rejections
from hub.replies import answering
from hub.roles import Play, Roles
from hub.streams import JetStreamStore
from hub.timeliness import Clock
from hub.web import WebState, web_app
from hub.workdays import WorkdayCalendar
from subscribers.credentials import inbox_prefix
from subscribers.serving import address, listening, serve_asgi

log = logging.getLogger(__name__)

START_ATTEMPTS = 60  # about a minute for NATS to come up; a refused credential fails after it


def new_broker(settings: HubSettings) -> NatsBroker:
    """A FastStream broker connected as the hub's service identity (``_hub``)."""
    if not settings.nats_url:
        raise ConfigError(
            "HUB_NATS_URL", "the hub needs a NATS URL (hub up starts an embedded one)"
        )
    context = tls_context(settings)
    creds = credentials_for(settings, HUB)
    security: NatsSecurity | None = None
    if creds is not None:
        security = NatsCredentials(str(creds), ssl_context=context)
    elif context is not None:
        security = NatsSecurity(ssl_context=context)
    return NatsBroker(
        settings.nats_url.split(","),
        max_reconnect_attempts=START_ATTEMPTS,  # for ever once connected (see running_hub)
        reconnect_time_wait=1,
        logger=logging.getLogger("hub.broker"),
        security=security,
        inbox_prefix=inbox_prefix(HUB),
    )


@dataclass
class Hub:
    """A running hub: its broker and JetStream context."""

    settings: HubSettings
    registry: Registry
    broker: NatsBroker
    js: JetStreamContext
    ledger: Ledger
    metrics: HubMetrics
    web_url: str
    store_check: StoreCheck
    config_state: ConfigState
    audit: AuditWatch
    checkpointer: Checkpointer
    roles: Roles


@asynccontextmanager
async def running_hub(
    settings: HubSettings,
    registry: Registry,
    *,
    clock: Clock = utc_now,
    ledger: Ledger | None = None,
    receipt_time: ReceiptTime = stored_at,
) -> AsyncIterator[Hub]:
    """Run the hub until the ``async with`` body ends; shut down in reverse start-up order.

    ``ledger`` is opened from the settings unless one is given (tests pass their own).
    """
    async with AsyncExitStack() as stack:
        if ledger is None:
            ledger = await stack.enter_async_context(
                Ledger.open(settings.ledger_database, wait_s=settings.ledger_wait_s)
            )
        trust = RecordTrust.load(settings)
        metrics = HubMetrics()
        broker = new_broker(settings)
        await _connect(broker, settings)
        stack.push_async_callback(_stop_broker, broker)
        js = broker.connection.jetstream(timeout=settings.request_timeout_s)
        admin = None
        if credentials_for(settings, ADMIN) is not None:  # else another process manages streams
            admin_nc = await connect_as(settings, ADMIN, label="hub-admin")
            stack.push_async_callback(admin_nc.drain)
            admin = admin_nc.jetstream(timeout=settings.request_timeout_s)
        provisioner = Provisioner(settings, registry, js, admin, clock)
        await provisioner.ensure()
        store = JetStreamStore(js, settings.wire, settings.request_timeout_s, trust)
        attachments = await Attachments.open(js, settings)
        calendar = WorkdayCalendar.load(settings.workday_overrides)
        rules = CaseRules(registry, calendar, settings.hazard_response_hours)
        desk = CaseDesk(store, rules, attachments, settings.wire)
        ingest = Ingest(settings, registry, store, clock, metrics, cases=desk)
        endpoint = IngestEndpoint(broker.connection, settings.wire, ingest, metrics)
        await endpoint.open()
        stack.push_async_callback(endpoint.close)  # before the broker stops: replies are sent
        endpoints = [
            (settings.wire.attach_any, "hub-attach", attachments.answer_upload),
            (settings.wire.attachment_any, "hub-attachment", attachments.answer_fetch),
        ]
        if settings.project_ledger:  # the ledger answers case questions
            answers = CaseAnswers(ledger, registry, settings.wire, clock)
            endpoints.append((settings.wire.cases_any, "hub-cases", answers.answer))
        for subject, queue, handler in endpoints:
            subscription = await broker.connection.subscribe(
                subject, queue=queue, cb=answering(handler)
            )
            stack.push_async_callback(subscription.unsubscribe)
        store_checker = StoreChecker(broker.connection, js, settings.wire, ledger, clock)
        store_check, rejections = store_checker.outcome, Rejections()
        checkpointer = Checkpointer(js, settings, trust, clock)
        audit = AuditWatch(js, settings.wire, trust, clock, settings.audit_verify_s)
        refused = await broker.connection.subscribe(
            settings.wire.refused_advisories, cb=audit.count_refused
        )
        stack.push_async_callback(refused.unsubscribe)
        # one process at a time: fan-out (each recipient's order), checkpoints, the overdue watch,
        # the ledger projection of each stream, the deep check; every process: ingest and the
        # rest (hub.roles)
        plays: dict[str, Play] = {
            "fanout": FanOut(js, settings, trust).run,
            "checkpoints": checkpointer.run,  # a second writer would redo the work and lose
        }
        if settings.project_ledger:
            plays["overdue"] = OverdueWatch(desk, ledger, clock, settings.case_watch_s).run
            # one writer per stream: processes taking turns on one SQLite writer cost more CPU
            # and smaller batches; every write is idempotent, so a takeover may repeat a batch
            projector = Projector(js, settings, ledger, trust, receipt_time=receipt_time)
            wire = settings.wire
            plays["ledger-events"] = functools.partial(projector.follow, wire.events_stream)
            plays["ledger-receipts"] = functools.partial(projector.follow, wire.receipts_stream)
            deep = functools.partial(
                deep_check, js, settings.wire, ledger, trust, receipt_time=receipt_time
            )
            plays["ledger-check"] = functools.partial(
                audit.run_ledger, deep=deep, every_s=settings.deep_check_s
            )
        kv = await js.key_value(settings.wire.roles_bucket)  # the provisioner made it
        roles = Roles(kv, plays, seen=metrics.role_seen)
        web = web_app(
            WebState(
                settings,
                registry,
                ledger,
                metrics,
                broker.connection,
                clock,
                store_check,
                rejections,
                provisioner.state,
                audit.state,
                roles.document,
            )
        )
        try:
            web_socket = listening(settings.web_host, settings.web_port)
        except OSError as exc:
            where = f"{settings.web_host}:{settings.web_port}"
            raise ConfigError("HUB_WEB_PORT", f"cannot listen on {where}: {exc.strerror}") from exc
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(roles.run(stop))
            tasks.create_task(DeadLetters(js, settings, trust).run(stop))
            tasks.create_task(provisioner.run(stop))
            tasks.create_task(audit.run(stop))
            tasks.create_task(follow_rejections(js, settings.wire, rejections, clock, stop))
            tasks.create_task(
                store_checker.run(
                    stop,
                    quick_every_s=settings.store_check_s,
                    full_every_s=settings.store_check_full_s,
                )
            )
            web_url = address(web_socket)
            tasks.create_task(serve_asgi(web, web_socket, stop))
            log.info("hub.ready", extra={"url": settings.nats_url, "web": web_url})
            try:
                yield Hub(
                    settings,
                    registry,
                    broker,
                    js,
                    ledger,
                    metrics,
                    web_url,
                    store_check,
                    provisioner.state,
                    audit,
                    checkpointer,
                    roles,
                )
            finally:
                stop.set()  # every loop finishes its batch; the task group waits for them


async def _connect(broker: NatsBroker, settings: HubSettings) -> None:
    """Connect within ``START_ATTEMPTS``; once connected, reconnect for ever.

    A refused credential must fail the start, not hang it.
    """
    try:
        await broker.connect()
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise NatsUnavailable(settings.nats_url or "", f"{type(exc).__name__}: {exc}") from exc
    broker.connection.options["max_reconnect_attempts"] = -1


async def _stop_broker(broker: NatsBroker) -> None:
    await broker.stop()  # drains: in-flight ingest replies are sent
    log.info("hub.stopped")


async def serve(settings: HubSettings, registry: Registry, stop: asyncio.Event) -> None:
    """Run the hub until ``stop`` is set."""
    async with running_hub(settings, registry):
        await stop.wait()


async def follow_ledger(settings: HubSettings, stop: asyncio.Event) -> None:
    """Keep the ledger in step with the streams, in a process of its own, until ``stop``."""
    async with Ledger.open(settings.ledger_database, wait_s=settings.ledger_wait_s) as ledger:
        nc = await connect_as(settings, HUB, label="hub-ledger")
        try:
            js = nc.jetstream(timeout=settings.request_timeout_s)
            await Projector(js, settings, ledger, RecordTrust.load(settings)).run(stop)
        finally:
            await nc.drain()
