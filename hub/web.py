"""The hub's web side: the ops page and its data, Prometheus metrics, health, AsyncAPI docs."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import nats.errors
from nats.aio.client import Client
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from hub.asyncapi import specification
from hub.config import HubSettings
from hub.ledger import Ledger
from hub.metrics import HubMetrics
from hub.ops import OpsSnapshot, ops_snapshot
from hub.reconcile import StoreCheck
from hub.registry import Registry
from hub.timeliness import SHANGHAI, Clock
from schemas.envelope import CATEGORIES

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 2.0


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


def page(name: str) -> str:
    """One of the hub's HTML pages (package data)."""
    return (resources.files("hub") / "web" / name).read_text(encoding="utf-8")


def web_app(state: WebState) -> Starlette:
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
        return JSONResponse(
            ops_document(await snapshot(request), state.registry, state.store_check)
        )

    async def metrics(request: Request) -> Response:
        state.metrics.refresh(await snapshot(request), state.store_check)
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = {"nats": await _nats_ready(state.nc), "ledger": await _ledger_ready(state.ledger)}
        return JSONResponse(checks, status_code=200 if all(checks.values()) else 503)

    async def ops_page(request: Request) -> Response:
        return HTMLResponse(page("ops.html"))

    async def asyncapi_json(request: Request) -> Response:
        return JSONResponse(specification(state.settings))

    async def asyncapi_page(request: Request) -> Response:
        return HTMLResponse(page("asyncapi.html"))

    return Starlette(
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


async def _nats_ready(nc: Client) -> bool:
    if not nc.is_connected:
        return False
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await nc.jetstream().account_info()
    except (TimeoutError, nats.errors.Error):
        return False
    return True


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
    """The ops snapshot as the page reads it (times in Asia/Shanghai, durations in seconds)."""

    def when(moment: datetime | None) -> str | None:
        return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") if moment else None

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
        "store_check": {
            "checked_at": when(store_check.checked_at),
            "missing": None if store_check.missing is None else len(store_check.missing),
            "examples": list((store_check.missing or ())[:5]),
        },
    }
