"""The hub's web side: the ops page and its data, Prometheus metrics, health, AsyncAPI docs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from importlib import resources
from typing import Any, TypeVar

import nats.errors
from nats.aio.client import Client
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from hub.asyncapi import specification
from hub.audit.watch import AuditState
from hub.config import HubSettings
from hub.ledger import Ledger
from hub.metrics import HubMetrics
from hub.oplogin import OpsLogin, required_password
from hub.ops import OpsSnapshot, ops_snapshot
from hub.provisioning import ConfigState
from hub.reconcile import StoreCheck
from hub.registry import Registry
from hub.rejections import WINDOW, Rejections
from hub.timeliness import Clock
from schemas.envelope import CATEGORIES
from schemas.personal import mask_values
from schemas.shanghai import local_text

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 2.0
T = TypeVar("T")


@dataclass
class WebState:
    """What the web side reads."""

    settings: HubSettings
    registry: Registry
    ledger: Ledger
    metrics: HubMetrics
    nc: Client
    clock: Clock
    store_check: StoreCheck
    rejections: Rejections
    config_state: ConfigState
    audit: AuditState | None = None
    roles: Callable[[], dict[str, Any]] | None = None  # this process's roles (hub.roles)


def page(name: str) -> str:
    """One of the hub's HTML pages (package data)."""
    return (resources.files("hub") / "web" / name).read_text(encoding="utf-8")


def web_app(state: WebState) -> ASGIApp:
    """The ASGI application."""

    async def snapshot(request: Request) -> OpsSnapshot:
        county = request.query_params.get("county") or None
        category = request.query_params.get("category") or None
        return await ops_snapshot(
            state.ledger,
            state.registry,
            now=state.clock(),
            at_risk_after=state.settings.at_risk_after,
            county=county if county in {c.id for c in state.registry.counties} else None,
            category=category if category in CATEGORIES else None,
        )

    async def ops_json(request: Request) -> Response:
        try:
            taken = await _within(state.settings.request_timeout_s, snapshot(request))
        except LedgerSlow as slow:
            return slow.response()
        document = ops_document(taken, state.registry, state.store_check)
        document["config"] = config_document(state.config_state)
        document["audit"] = audit_document(state.audit, state.registry)
        document["roles"] = state.roles() if state.roles is not None else None
        rejected = rejections_document(state.rejections, state.registry)
        # every text of the page masked, whichever part names a key: event and case keys are the
        # publishers' own ids, and errors quote them
        return JSONResponse(mask_values(document | {"rejections": rejected}))

    async def metrics(request: Request) -> Response:
        try:
            taken = await _within(state.settings.request_timeout_s, snapshot(request))
        except LedgerSlow as slow:
            return slow.response()
        state.metrics.refresh(taken, state.store_check, state.config_state, state.audit)
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = {
            "nats": await _nats_ready(state.nc),
            "ledger": await _ledger_ready(state.ledger),
            "fanout": await _fanout_ready(state.nc, state.settings),
        }
        return JSONResponse(checks, status_code=200 if all(checks.values()) else 503)

    async def ops_page(request: Request) -> Response:
        return HTMLResponse(page("ops.html"))

    async def asyncapi_json(request: Request) -> Response:
        return JSONResponse(specification(state.settings))

    async def asyncapi_page(request: Request) -> Response:
        return HTMLResponse(page("asyncapi.html"))

    app = Starlette(
        routes=[
            Route("/", lambda request: RedirectResponse("/ops")),
            Route("/ops", ops_page),
            Route("/api/ops", ops_json),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/asyncapi.json", asyncapi_json),
            Route("/asyncapi", asyncapi_page),
        ]
    )
    password = required_password(state.settings)
    return app if password is None else OpsLogin(app, password)


class LedgerSlow(Exception):
    """The ledger did not answer a request in time (or failed): the page gets a 503."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)

    def response(self) -> Response:
        """503 with the reason, in Chinese and English."""
        return JSONResponse(
            {"error": f"台账数据库暂不可用（{self.detail}）/ ledger unavailable"}, status_code=503
        )


async def _within(timeout_s: float, work: Awaitable[T]) -> T:
    """``work`` within ``timeout_s``; a slow or failing ledger becomes ``LedgerSlow``."""
    try:
        async with asyncio.timeout(timeout_s):
            return await work
    except TimeoutError as exc:
        log.warning("web.ledger_slow", extra={"timeout_s": timeout_s})
        raise LedgerSlow(f"{timeout_s:g} 秒内没有应答") from exc
    except (OSError, DBAPIError) as exc:
        log.warning("web.ledger_failed", extra={"error": repr(exc)})
        raise LedgerSlow(type(exc).__name__) from exc


async def _nats_ready(nc: Client) -> bool:
    if not nc.is_connected:
        return False
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await nc.jetstream().account_info()
    except (TimeoutError, nats.errors.Error):
        return False
    return True


async def _fanout_ready(nc: Client, settings: HubSettings) -> bool:
    """Fan-out is not paused (as while organisations' consumers are written after start-up).

    Asked of the server, so every hub process answers alike, whichever writes the consumers.
    """
    wire = settings.wire
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            info = await nc.jetstream().consumer_info(wire.events_stream, wire.fanout_consumer)
    except (TimeoutError, nats.errors.Error):
        return False
    return not info.paused


async def _ledger_ready(ledger: Ledger) -> bool:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), ledger.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (TimeoutError, OSError, DBAPIError) as exc:
        log.warning("web.ledger_not_ready", extra={"error": repr(exc)})
        return False
    return True


def ops_document(
    snapshot: OpsSnapshot, registry: Registry, store_check: StoreCheck
) -> dict[str, Any]:
    """The ops snapshot as the page reads it (times in Asia/Shanghai, durations in seconds).

    Unmasked: ``/api/ops`` masks the whole document (keys may quote a resident ID or mobile number).
    """

    def when(moment: datetime | None) -> str | None:
        return local_text(moment) if moment else None

    return {
        "generated_at": when(snapshot.generated_at),
        "day": snapshot.day.isoformat(),
        "county": snapshot.county,
        "category": snapshot.category,
        "at_risk_after": snapshot.at_risk_after.strftime("%H:%M"),
        "at_risk_active": snapshot.at_risk_active,
        "counties": [{"id": c.id, "name": c.name} for c in registry.counties],
        "categories": [{"id": c.name, "name": c.label} for c in CATEGORIES.values()],
        "orgs": [
            asdict(o)
            | {"last_receipt": when(o.last_receipt), "today_on_time_rate": o.today_on_time_rate}
            for o in snapshot.orgs
        ],
        "at_risk": [asdict(a) | {"oldest_formed": when(a.oldest_formed)} for a in snapshot.at_risk],
        "lag_by_hour": [asdict(h) for h in snapshot.lag_by_hour],
        "overdue_cases": [asdict(c) | {"due_at": when(c.due_at)} for c in snapshot.overdue_cases],
        "store_check": {
            "checked_at": when(store_check.checked_at),
            "full_checked_at": when(store_check.full_checked_at),
            "missing": None if store_check.missing is None else len(store_check.missing),
            "examples": (store_check.missing or ())[:5],
            "trouble": store_check.trouble,
        },
    }


def audit_document(audit: AuditState | None, registry: Registry) -> dict[str, Any] | None:
    """The record: the key it is signed with, the latest verification and what it found."""
    if audit is None:
        return None
    return {
        "public_key": audit.public_key,
        "suite": audit.suite,
        "verified_at": local_text(audit.verified_at) if audit.verified_at else None,
        "checkpoints": audit.checkpoints,
        "last_checkpoint_at": (
            local_text(audit.last_checkpoint_at) if audit.last_checkpoint_at else None
        ),
        "messages": audit.messages,
        "findings": audit.findings,
        "examples": audit.examples,  # findings name event keys
        "trouble": audit.trouble,
        "ledger_checked_at": (
            local_text(audit.ledger_checked_at) if audit.ledger_checked_at else None
        ),
        "ledger_differences": audit.ledger_differences,
        "ledger_examples": audit.ledger_examples,
        "ledger_trouble": audit.ledger_trouble,
        "refused": [
            {"recipient": org, "name": registry.name(org), "count": n}
            for org, n in sorted(audit.refused.items())
        ],
    }


def config_document(config: ConfigState) -> dict[str, Any]:
    """Streams and consumers that drifted from their declaration (and were put back)."""
    return {
        "checked_at": local_text(config.checked_at) if config.checked_at else None,
        "drift": [{"what": d.what, "fields": list(d.fields)} for d in config.drift],
        "repaired": config.repaired,
        "seen": [{"what": d.what, "fields": list(d.fields)} for d in config.history[-20:]],
        "trouble": config.trouble,
        "consumers_to_write": config.consumers_to_write,
    }


def rejections_document(seen: Rejections, registry: Registry) -> dict[str, Any]:
    """The quarantine panel: the last day's rejections by publisher and rule, and the latest."""
    by_rule = seen.by_rule()
    return {
        "window_hours": int(WINDOW.total_seconds() // 3600),
        "total": len(seen.kept),
        "by_publisher": [
            {
                "publisher": org,
                "name": registry.name(org),
                "count": n,
                "rules": {rule: c for (o, rule), c in by_rule.items() if o == org},
            }
            for org, n in seen.by_publisher().most_common()
        ],
        "latest": [
            {
                "seq": r.seq,
                "received_at": local_text(r.received_at),
                "publisher": r.publisher,
                "name": registry.name(r.publisher),
                "reasons": list(r.reasons),
            }
            for r in seen.latest()
        ],
    }
