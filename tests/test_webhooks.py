"""Deliveries pushed to HTTP endpoints, checked by the independent ``standardwebhooks`` package."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.config import HubSettings
from hub.gateway import webhooks
from hub.identity.sessions import connect_as
from hub.ledger import DeliveryState
from hub.registry import OrgKind, Registry
from hub.samples import sample_event
from hub.service import Hub
from subscribers.serving import address, listening, serve_asgi
from tests.conftest import Orgs, hub_running
from tests.helpers import HUB, eventually, hub_environment, run_hub

pytestmark = [pytest.mark.connected, pytest.mark.timeout(300)]

DEPARTMENT, TOWNSHIP = "renqiu-scjg", "renqiu-chuan"


@dataclass
class Receiver:
    """Endpoints at /hook/{org}: each checks the signature with the org's secret and records."""

    secrets: dict[str, str] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    arrived: dict[str, list[tuple[str, bytes]]] = field(default_factory=lambda: defaultdict(list))
    flaky: set[str] = field(default_factory=set)  # these fail every other call
    forged: int = 0
    url: str = ""

    async def hook(self, request: Request) -> Response:
        org = request.path_params["org"]
        body = await request.body()
        try:
            Webhook(self.secrets[org]).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.forged += 1
            return Response(status_code=401)
        self.calls[org] += 1
        if org in self.flaky and self.calls[org] % 2:
            return Response(status_code=503)
        self.arrived[org].append((request.headers["webhook-id"], body))
        return Response(status_code=204)

    def distinct(self, org: str) -> list[str]:
        """Webhook ids in order of first arrival."""
        return list(dict.fromkeys(i for i, _ in self.arrived[org]))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = Receiver()
    app = Starlette(routes=[Route("/hook/{org}", got.hook, methods=["POST"])])
    sock, stop = listening("127.0.0.1", 0), asyncio.Event()
    got.url = address(sock)
    task = asyncio.create_task(serve_asgi(app, sock, stop))
    try:
        yield got
    finally:
        stop.set()
        await task


async def register(settings: HubSettings, receiver: Receiver, org: str) -> None:
    endpoint = webhooks.register(settings.credentials_store, org, f"{receiver.url}/hook/{org}")
    receiver.secrets[org] = endpoint.secret


async def test_pushed_deliveries_are_signed_verified_and_acknowledged(
    hub: Hub, orgs: Orgs, receiver: Receiver
) -> None:
    url = f"{receiver.url}/hook/{TOWNSHIP}"
    code, secret, err = await run_hub(
        hub.settings, "credentials", "webhook", TOWNSHIP, "--url", url
    )
    assert code == 0, err
    receiver.secrets[TOWNSHIP] = secret.strip()
    receiver.flaky.add(TOWNSHIP)  # every other call fails: retried in place
    [endpoint] = webhooks.endpoints(hub.settings.credentials_store)
    nc = await connect_as(hub.settings, TOWNSHIP, label="test-pusher")
    stop = asyncio.Event()
    async with httpx.AsyncClient() as client:
        pusher = webhooks.Pusher(nc, endpoint, hub.settings.wire, client, (0.1, 0.2))
        task = asyncio.create_task(pusher.run(stop))
        publisher = await orgs.publisher(DEPARTMENT)
        keys = []
        for n in range(3):
            event = sample_event("other", DEPARTMENT, datetime.now(UTC), n, recipients=(TOWNSHIP,))
            keys.append(f"{DEPARTMENT}/{(await publisher.publish(event)).id}")
        await eventually(lambda: len(receiver.distinct(TOWNSHIP)) == 3, within=20)
        stop.set()
        await task
    await nc.close()
    assert receiver.distinct(TOWNSHIP) == keys and receiver.forged == 0
    assert json.loads(receiver.arrived[TOWNSHIP][0][1])["source"] == DEPARTMENT

    async def acknowledged() -> bool:
        counts = await hub.ledger.counts()
        return counts.get(DeliveryState.ACKNOWLEDGED, 0) == 3

    await eventually(acknowledged, within=15)


def twenty(registry: Registry) -> list[str]:
    """Renqiu's townships and streets and one department: 20 recipients."""
    kinds = (OrgKind.TOWNSHIP, OrgKind.STREET)
    return [*(o.id for o in registry.members("renqiu") if o.kind in kinds), "renqiu-zjj"]


async def start_gateway(settings: HubSettings) -> asyncio.subprocess.Process:
    environment = hub_environment(settings, HUB_GATEWAY_PORT="0", HUB_BACKOFF_S="[0.1,0.2]")
    return await asyncio.create_subprocess_exec(
        HUB,
        "gateway",
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_a_gateway_killed_while_pushing_loses_nothing_and_keeps_the_order(
    settings: HubSettings, registry: Registry, orgs: Orgs, receiver: Receiver
) -> None:
    patient = settings.model_copy(update={"ack_wait_s": 10.0, "max_deliver": 20})
    recipients = twenty(registry)
    for org in recipients:
        await register(patient, receiver, org)
    receiver.flaky.add(recipients[0])  # one endpoint fails half its calls
    async with hub_running(patient, registry) as hub:
        publisher = await orgs.publisher(DEPARTMENT)
        keys = []
        for n in range(100):  # 2,000 deliveries
            event = sample_event("other", DEPARTMENT, datetime.now(UTC), n, recipients=recipients)
            keys.append(f"{DEPARTMENT}/{(await publisher.publish(event)).id}")
        gateway = await start_gateway(patient)
        try:
            await eventually(lambda: sum(map(len, receiver.arrived.values())) >= 300, within=60)
            gateway.send_signal(signal.SIGKILL)
            await gateway.wait()
            before = sum(map(len, receiver.arrived.values()))
            gateway = await start_gateway(patient)

            def all_arrived() -> bool:
                return all(len(receiver.distinct(org)) == len(keys) for org in recipients)

            await eventually(all_arrived, within=180)
        finally:
            if gateway.returncode is None:
                gateway.send_signal(signal.SIGTERM)
                await gateway.wait()

        async def all_acknowledged() -> bool:
            counts = await hub.ledger.counts()
            return counts.get(DeliveryState.ACKNOWLEDGED, 0) == len(keys) * len(recipients)

        await eventually(all_acknowledged, within=30)
    assert before < len(keys) * len(recipients)  # the kill came mid-way
    for org in recipients:
        assert receiver.distinct(org) == keys, org  # in order, every one
        bodies: dict[str, set[bytes]] = defaultdict(set)
        for webhook_id, body in receiver.arrived[org]:
            bodies[webhook_id].add(body)
        assert all(len(b) == 1 for b in bodies.values())  # a repeat is the same message
    assert receiver.calls[recipients[0]] >= 2 * len(keys) - 1  # the flaky one was retried
    assert receiver.forged == 0
