"""The HTTP gateway, played as a non-Python system would: plain HTTP, CloudEvents binding."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings import http
from cloudevents.core.v1.event import CloudEvent
from nats.aio.client import Client

from hub.gateway.app import Sessions, gateway_app
from hub.gateway.tokens import Tokens
from hub.identity.sessions import connect_as
from hub.ledger import DeliveryState
from hub.samples import sample_event
from hub.service import Hub
from schemas.shanghai import shanghai_day
from subscribers.serving import address, listening, serve_asgi
from tests.conftest import Orgs
from tests.helpers import eventually, receiving, run_hub

pytestmark = [pytest.mark.connected, pytest.mark.timeout(120)]

DEPARTMENT, TOWNSHIP, OTHER = "renqiu-scjg", "renqiu-chuan", "renqiu-zjj"


@pytest.fixture
async def gateway(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in this event loop, in front of the test's hub; an HTTP client to it."""
    settings = hub.settings

    async def connect(org: str) -> Client:
        return await connect_as(settings, org, label=f"test-gateway-{org}", attempts=3)

    sessions = Sessions(settings, connect)
    app = gateway_app(settings, Tokens(settings.credentials_store), sessions)
    sock, stop = listening("127.0.0.1", 0), asyncio.Event()
    serving = asyncio.create_task(serve_asgi(app, sock, stop))
    try:
        async with httpx.AsyncClient(base_url=address(sock), timeout=20) as client:
            yield client
    finally:
        stop.set()
        await serving
        await sessions.close()


async def token_of(hub: Hub, org: str) -> str:
    """Issued as a county's IT office would: ``hub credentials token ORG``."""
    code, out, err = await run_hub(hub.settings, "credentials", "token", org)
    assert code == 0, err
    return out.strip()


def event(n: int, source: str = DEPARTMENT) -> dict[str, object]:
    return sample_event("other", source, datetime.now(UTC), n, recipients=(TOWNSHIP,))


async def test_publishing_single_binary_and_batch_and_the_township_acknowledges(
    hub: Hub, gateway: httpx.AsyncClient
) -> None:
    auth = {"Authorization": f"Bearer {await token_of(hub, DEPARTMENT)}"}
    structured = await gateway.post(
        "/v1/events",
        content=json.dumps(event(1), ensure_ascii=False).encode(),
        headers=auth | {"Content-Type": "application/cloudevents+json; charset=utf-8"},
    )
    assert structured.status_code == 201, structured.text
    assert structured.json()["status"] == "accepted" and structured.json()["seq"] >= 1
    # binary mode: attributes as ce-* headers, data as the body
    second = event(2)
    binary = await gateway.post(
        "/v1/events",
        content=json.dumps(second["data"], ensure_ascii=False).encode(),
        headers=auth
        | {
            "Content-Type": "application/json; charset=utf-8",
            "ce-specversion": "1.0",
            "ce-id": str(second["id"]),
            "ce-source": DEPARTMENT,
            "ce-type": str(second["type"]),
            "ce-time": str(second["time"]),
            "ce-recipients": TOWNSHIP,
        },
    )
    assert binary.status_code == 201, binary.text
    # a batch: each event answered on its own, the bad one with every field error
    bad = event(4)
    bad["data"] = {"title": ""}
    batch = await gateway.post(
        "/v1/events",
        content=json.dumps([event(3), bad], ensure_ascii=False).encode(),
        headers=auth | {"Content-Type": "application/cloudevents-batch+json"},
    )
    assert batch.status_code == 200, batch.text
    first, rejected = batch.json()["results"]
    assert (first["status"], first["http_status"]) == ("accepted", 201)
    assert (rejected["status"], rejected["http_status"]) == ("rejected", 422)
    assert rejected["quarantine_seq"] >= 1
    assert all(e["field"].startswith("data") for e in rejected["errors"])
    assert all(e["message_zh"] and e["message_en"] for e in rejected["errors"])
    async with receiving(hub.settings, [TOWNSHIP]) as inboxes:
        await eventually(lambda: len(inboxes[TOWNSHIP].events) == 3, within=20)

    async def acknowledged() -> bool:
        counts = await hub.ledger.counts()
        return counts.get(DeliveryState.ACKNOWLEDGED, 0) == 3

    await eventually(acknowledged, within=15)


async def test_requests_without_a_valid_credential_or_for_another_organisation_are_refused(
    hub: Hub, gateway: httpx.AsyncClient
) -> None:
    body = json.dumps(event(1), ensure_ascii=False).encode()
    structured = {"Content-Type": "application/cloudevents+json"}
    missing = await gateway.post("/v1/events", content=body, headers=structured)
    assert missing.status_code == 401 and "Bearer" in missing.headers["WWW-Authenticate"]
    assert "令牌" in missing.json()["message_zh"]
    wrong = await gateway.post(
        "/v1/events", content=body, headers=structured | {"Authorization": "Bearer zhg_nope"}
    )
    assert wrong.status_code == 401
    # a valid token of another organisation, publishing as this one
    other = {"Authorization": f"Bearer {await token_of(hub, OTHER)}"}
    forged = await gateway.post("/v1/events", content=body, headers=structured | other)
    assert forged.status_code == 403
    assert f"不能以 {DEPARTMENT} 的名义发布" in forged.json()["message_zh"]
    info = await hub.js.stream_info(hub.settings.wire.events_stream)
    assert info.state.messages == 0  # nothing reached the record
    # a revoked token stops working at once
    code, _, err = await run_hub(hub.settings, "credentials", "token", OTHER, "--revoke")
    assert code == 0, err
    revoked = await gateway.post(
        "/v1/events",
        content=json.dumps(event(2, OTHER), ensure_ascii=False).encode(),
        headers=structured | other,
    )
    assert revoked.status_code == 401


async def test_malformed_requests_get_a_4xx_with_a_clear_body(
    hub: Hub, gateway: httpx.AsyncClient
) -> None:
    auth = {"Authorization": f"Bearer {await token_of(hub, DEPARTMENT)}"}
    structured = auth | {"Content-Type": "application/cloudevents+json"}
    too_large = await gateway.post(
        "/v1/events", content=b"{" + b" " * (hub.settings.max_event_bytes + 1), headers=structured
    )
    assert too_large.status_code == 413 and "上限" in too_large.json()["message_zh"]
    bad_json = await gateway.post("/v1/events", content=b'{"id": ', headers=structured)
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["message_en"]
    wrong_type = await gateway.post(
        "/v1/events", content=b"hello", headers=auth | {"Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert "application/cloudevents+json" in wrong_type.json()["message_zh"]
    not_a_batch = await gateway.post(
        "/v1/events",
        content=b'{"a": 1}',
        headers=auth | {"Content-Type": "application/cloudevents-batch+json"},
    )
    assert not_a_batch.status_code == 400 and "数组" in not_a_batch.json()["message_zh"]
    assert (await gateway.get("/healthz")).status_code == 200  # and it still serves


async def test_an_intranet_system_pulls_its_deliveries_and_posts_receipts(
    hub: Hub, gateway: httpx.AsyncClient, orgs: Orgs
) -> None:
    publisher = await orgs.publisher(DEPARTMENT)
    keys = [f"{DEPARTMENT}/{(await publisher.publish(event(n))).id}" for n in range(3)]
    auth = {"Authorization": f"Bearer {await token_of(hub, TOWNSHIP)}"}
    deliveries: list[dict[str, Any]] = []
    while sum(len(d["events"]) for d in deliveries) < 3:  # the fan-out may batch them or not
        pulled = await gateway.get("/v1/deliveries", params={"wait": 5, "max": 10}, headers=auth)
        assert pulled.status_code == 200, pulled.text
        deliveries += pulled.json()["deliveries"]
    assert [e["key"] for d in deliveries for e in d["events"]] == keys
    assert deliveries[0]["events"][0]["event"]["source"] == DEPARTMENT
    # the system could not take the second event: it comes back after the hub's back-off
    for delivery in deliveries:
        held = [e["key"] for e in delivery["events"]]
        failed: dict[str, Any] = {"delivery_id": delivery["delivery_id"]}
        if keys[1] in held:
            failed["failed"] = {keys[1]: "数据库忙"}
        settled = await gateway.post("/v1/receipts", json=failed, headers=auth)
        assert settled.json() == {
            "status": "recorded",
            "acknowledged": len(held) - (keys[1] in held),
            "failed": int(keys[1] in held),
        }
    again = await gateway.post("/v1/receipts", json=failed, headers=auth)
    assert again.status_code == 409 and "不在待回执之列" in again.json()["message_zh"]
    retried = await gateway.get("/v1/deliveries", params={"wait": 10}, headers=auth)
    [redelivered] = retried.json()["deliveries"]
    assert redelivered["attempt"] == 2 and keys[1] in [e["key"] for e in redelivered["events"]]
    ok = {"delivery_id": redelivered["delivery_id"]}
    assert (await gateway.post("/v1/receipts", json=ok, headers=auth)).status_code == 200

    async def all_acknowledged() -> bool:
        rows = await hub.ledger.pairs(day_from=_today(), day_to=_today(), recipient=TOWNSHIP)
        return sorted(r.event_key for r in rows if r.state == "acknowledged") == sorted(keys)

    await eventually(all_acknowledged, within=15)
    rows = await hub.ledger.pairs(day_from=_today(), day_to=_today(), recipient=TOWNSHIP)
    assert {r.event_key: r.attempts for r in rows}[keys[1]] == 2  # the failure is on record
    # nothing more waits; another organisation's token reads only its own (empty) deliveries
    empty = await gateway.get("/v1/deliveries", params={"wait": 0.5}, headers=auth)
    assert empty.json() == {"deliveries": []}


def _today() -> date:
    return shanghai_day(datetime.now(UTC))


async def test_events_built_with_the_cloudevents_sdk_are_accepted_and_deliveries_parse_with_it(
    hub: Hub, gateway: httpx.AsyncClient
) -> None:
    auth = {"Authorization": f"Bearer {await token_of(hub, DEPARTMENT)}"}
    ids = []
    for n, to_http in enumerate((http.to_structured_event, http.to_binary_event)):
        sample = event(n)
        built = CloudEvent(
            {
                "type": "other.v1",
                "source": DEPARTMENT,
                "time": datetime.now(UTC),
                "recipients": TOWNSHIP,  # a CloudEvents extension is a string
            },
            sample["data"],  # type: ignore[arg-type]
        )
        message = to_http(built)
        sent = await gateway.post(
            "/v1/events", content=message.body, headers=auth | message.headers
        )
        assert sent.status_code == 201, sent.text
        ids.append(built.get_id())
    township = {"Authorization": f"Bearer {await token_of(hub, TOWNSHIP)}"}
    events: list[dict[str, Any]] = []
    while len(events) < 2:
        pulled = await gateway.get("/v1/deliveries", params={"wait": 5}, headers=township)
        events += [e["event"] for d in pulled.json()["deliveries"] for e in d["events"]]
    parsed = [
        http.from_structured_event(
            http.HTTPMessage(
                {"content-type": "application/cloudevents+json"}, json.dumps(e).encode()
            )
        )
        for e in events
    ]
    assert [p.get_id() for p in parsed] == ids
    assert {p.get_extension("recipients") for p in parsed} == {TOWNSHIP}
    assert all(p.get_source() == DEPARTMENT for p in parsed)
    assert [p.get_data() for p in parsed] == [e["data"] for e in events]
