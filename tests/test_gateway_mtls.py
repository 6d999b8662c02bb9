"""The gateway's mutual TLS, tried as an attacker with another organisation's certificate would."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client

from hub.config import HubSettings
from hub.gateway.app import Sessions, gateway_app
from hub.gateway.mtls import PeerCertProtocol, server_context
from hub.gateway.tokens import Tokens
from hub.identity.sessions import connect_as
from hub.identity.tls import ensure_tls, issue_client
from hub.service import Hub
from subscribers.serving import listening, serve_asgi
from tests.helpers import run_hub
from tests.test_gateway import DEPARTMENT, TOWNSHIP, event, token_of

pytestmark = [pytest.mark.connected, pytest.mark.timeout(120)]

Client_ = Callable[[tuple[Path, Path] | None], httpx.AsyncClient]
REFUSED_AT_HANDSHAKE = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)


async def _issued(settings: HubSettings, *orgs: str) -> Path:
    """The county's CA and each organisation's client certificate, made with the CLI."""
    code, _, err = await run_hub(settings, "credentials", "tls")
    assert code == 0, err
    for org in orgs:
        code, out, err = await run_hub(settings, "credentials", "client-cert", org)
        assert code == 0 and f"{org}.pem" in out, err
    return settings.credentials_store / "tls"


@asynccontextmanager
async def mutual_gateway(hub: Hub, tls_dir: Path) -> AsyncIterator[Client_]:
    """The gateway on HTTPS demanding a client certificate of the county's CA."""
    settings = hub.settings.model_copy(
        update={
            "gateway_tls_cert": tls_dir / "server.pem",
            "gateway_tls_key": tls_dir / "server-key.pem",
            "gateway_client_ca": tls_dir / "ca.pem",
        }
    )

    async def connect(org: str) -> Client:
        return await connect_as(settings, org, label=f"test-mtls-{org}", attempts=3)

    sessions = Sessions(settings, connect)
    app = gateway_app(settings, Tokens(settings.credentials_store), sessions)
    sock, stop = listening("127.0.0.1", 0), asyncio.Event()
    port = sock.getsockname()[1]
    serving = asyncio.create_task(
        serve_asgi(app, sock, stop, tls=server_context(settings), protocol=PeerCertProtocol)
    )
    opened: list[httpx.AsyncClient] = []

    def client(cert: tuple[Path, Path] | None) -> httpx.AsyncClient:
        context = ssl.create_default_context(cafile=tls_dir / "ca.pem")
        if cert is not None:
            context.load_cert_chain(*cert)
        opened.append(
            httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=20)
        )
        return opened[-1]

    try:
        yield client
    finally:
        for each in opened:
            await each.aclose()
        stop.set()
        await serving
        await sessions.close()


def _pair(tls_dir: Path, org: str) -> tuple[Path, Path]:
    return tls_dir / "clients" / f"{org}.pem", tls_dir / "clients" / f"{org}-key.pem"


STRUCTURED = {"Content-Type": "application/cloudevents+json"}


async def test_the_client_certificate_names_the_organisation_and_nothing_else_gets_in(
    hub: Hub, tmp_path: Path
) -> None:
    tls_dir = await _issued(hub.settings, DEPARTMENT, TOWNSHIP)
    sent = event(1)
    body = json.dumps(sent, ensure_ascii=False).encode()
    # an attacker's own CA, minting a certificate that names the department
    ensure_tls(tmp_path / "forged", ["127.0.0.1"])
    forged = issue_client(tmp_path / "forged", DEPARTMENT)
    async with mutual_gateway(hub, tls_dir) as client:
        for cert in (None, (forged.cert, forged.key)):
            with pytest.raises(REFUSED_AT_HANDSHAKE):
                await client(cert).post("/v1/events", content=body, headers=STRUCTURED)
        township = client(_pair(tls_dir, TOWNSHIP))
        # a township's genuine certificate, publishing as the department
        as_other = await township.post("/v1/events", content=body, headers=STRUCTURED)
        assert as_other.status_code == 403, as_other.text
        assert f"不能以 {DEPARTMENT} 的名义发布" in as_other.json()["message_zh"]
        # … or with the department's token beside it
        token = {"Authorization": f"Bearer {await token_of(hub, DEPARTMENT)}"}
        mixed = await township.post("/v1/events", content=body, headers=STRUCTURED | token)
        assert mixed.status_code == 403 and "须为同一单位" in mixed.json()["message_zh"]
        # the county CA's server certificate is a certificate of the CA, but no organisation's
        server = client((tls_dir / "server.pem", tls_dir / "server-key.pem"))
        nobody = await server.post("/v1/events", content=body, headers=STRUCTURED)
        assert nobody.status_code == 403 and "no NATS credentials" in nobody.json()["message_en"]
        info = await hub.js.stream_info(hub.settings.wire.events_stream)
        assert info.state.messages == 0  # nothing reached the record
        # the department's own certificate publishes; the township pulls it with its own
        accepted = await client(_pair(tls_dir, DEPARTMENT)).post(
            "/v1/events", content=body, headers=STRUCTURED
        )
        assert accepted.status_code == 201, accepted.text
        pulled = await township.get("/v1/deliveries", params={"wait": 10, "max": 10})
        assert pulled.status_code == 200, pulled.text
        keys = [e["key"] for d in pulled.json()["deliveries"] for e in d["events"]]
        assert keys == [f"{DEPARTMENT}/{sent['id']}"]
        # another organisation's certificate cannot read the township's deliveries
        other = await client(_pair(tls_dir, DEPARTMENT)).get(
            "/v1/deliveries", params={"wait": 0}, headers={}
        )
        assert other.status_code == 200 and other.json()["deliveries"] == []


async def test_mutual_tls_without_the_gateway_s_own_certificate_is_a_configuration_error(
    hub: Hub,
) -> None:
    code, _, err = await run_hub(
        hub.settings, "gateway", HUB_GATEWAY_CLIENT_CA=str(hub.settings.credentials_store)
    )
    assert code != 0 and "HUB_GATEWAY_TLS_CERT" in err, err
