"""The gateway's HTTPS, and mutual TLS: the client's certificate names its organisation.

With ``HUB_GATEWAY_CLIENT_CA`` set, the TLS handshake itself refuses a client without a
certificate of that CA; the certificate's common name is the organisation the request acts as
(``hub credentials client-cert ORG`` issues one). uvicorn does not put the peer's certificate in
the ASGI scope, so the connection's protocol adds it as the ASGI TLS extension's
``client_cert_name``.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from hub.config import HubSettings
from hub.errors import ConfigError


def server_context(settings: HubSettings) -> ssl.SSLContext | None:
    """The gateway's TLS context, or None for plain HTTP (behind the county's HTTPS proxy)."""
    cert, key, client_ca = (
        settings.gateway_tls_cert,
        settings.gateway_tls_key,
        settings.gateway_client_ca,
    )
    if cert is None:
        if client_ca is not None:
            raise ConfigError(
                "HUB_GATEWAY_TLS_CERT",
                "mutual TLS (HUB_GATEWAY_CLIENT_CA) needs the gateway's own certificate and key",
            )
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
        if client_ca is not None:
            context.load_verify_locations(client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "HUB_GATEWAY_TLS_CERT", f"cannot load the gateway's TLS files: {exc}"
        ) from exc
    return context


def _common_name(peer: dict[str, Any] | None) -> str | None:
    for rdn in (peer or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


class _WithPeer:
    """The app, with the connection's client certificate name in every request's scope."""

    def __init__(self, app: ASGIApp, name: str | None) -> None:
        self.app, self.name = app, name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = dict(scope.get("extensions") or {})
        extensions["tls"] = {"client_cert_name": self.name}
        await self.app({**scope, "extensions": extensions}, receive, send)


class PeerCertProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol that passes the verified client certificate on."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Wrap the app with the verified client certificate's name, once per connection."""
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.app = _WithPeer(self.app, _common_name(ssl_object.getpeercert()))


def certificate_org(scope: Scope) -> str | None:
    """The organisation the request's verified client certificate names (None: no certificate)."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    name = tls.get("client_cert_name")
    return name if isinstance(name, str) else None
