"""The township dashboard: one organisation's own page of what was shared with it.

    hub dashboard --as renqiu-chuan          # receives as 出岸镇 and serves its page

Its open cases (transfers, assistance requests, hazard notices, complaint referrals) with what
is owed by whom and by when; then what was shared with it, by category, newest first, each with
its state (handled on the day it was formed or late; the complainant's data removed from this
copy), the counts per category, and the detail of one event with Chinese field names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from schemas.envelope import CATEGORIES, EnvelopeBase, model_of
from subscribers.inbox import Entry, Inbox, labelled

ENVELOPE_LABELS = {
    "id": "事件标识",
    "source": "发布单位",
    "type": "事件类型",
    "time": "信息形成时间",
    "subject": "事件主题",
}


CaseLister = Callable[[], Awaitable[list[dict[str, Any]]]]


def dashboard_app(
    inbox: Inbox,
    org_name: str,
    name_of: Callable[[str], str],
    cases: CaseLister | None = None,
) -> Starlette:
    """The dashboard of ``inbox``'s organisation; ``name_of`` gives organisations' Chinese names.

    ``cases`` lists the organisation's open cases (``CaseClient.cases``); without it the page
    shows shared information only.
    """

    async def page(request: Request) -> Response:
        html = (resources.files("subscribers") / "web" / "inbox.html").read_text(encoding="utf-8")
        return HTMLResponse(html)

    async def listing(request: Request) -> Response:
        category = request.query_params.get("category") or None
        entries = await inbox.entries(category if category in CATEGORIES else None)
        counts = await inbox.counts()
        return JSONResponse(
            {
                "org": inbox.org,
                "org_name": org_name,
                "categories": [
                    {"id": c.name, "name": c.label, **counts.get(c.name, _none())}
                    for c in CATEGORIES.values()
                ],
                "entries": [e.listing() | {"source_name": name_of(e.source)} for e in entries],
            }
        )

    async def detail(request: Request) -> Response:
        entry = await inbox.entry(request.query_params.get("key", ""))
        if entry is None:
            return JSONResponse({"error": "没有这条信息"}, status_code=404)
        return JSONResponse(
            entry.listing()
            | {"source_name": name_of(entry.source), "fields": fields(entry, name_of)}
        )

    async def open_cases(request: Request) -> Response:
        if cases is None:
            return JSONResponse({"error": "本页面未接入案件"}, status_code=404)
        return JSONResponse({"org": inbox.org, "cases": await cases()})

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/inbox", listing),
            Route("/api/event", detail),
            Route("/api/cases", open_cases),
        ]
    )


def fields(entry: Entry, name_of: Callable[[str], str]) -> list[dict[str, str]]:
    """The event's envelope and payload as (label, value) rows, in Chinese."""
    event = entry.event
    shown = {**event, "source": name_of(entry.source), "time": entry.listing()["formed_at"]}
    rows = [
        {"label": label, "value": str(shown[name])}
        for name, label in ENVELOPE_LABELS.items()
        if name in shown
    ]
    payload = _payload_model(model_of(entry.category))
    rows += [{"label": label, "value": value} for label, value in labelled(payload, event["data"])]
    return rows


def _payload_model(event: type[EnvelopeBase]) -> type[BaseModel]:
    model: type[BaseModel] = event.model_fields["data"].annotation  # type: ignore[assignment]
    return model


def _none() -> dict[str, Any]:
    return {"received": 0, "on_time": 0, "late": 0}
