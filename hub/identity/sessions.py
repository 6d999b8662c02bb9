"""Connections as an identity: its credentials file, its inbox, the county's TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

from nats.aio.client import Client

from hub.config import HubSettings
from hub.identity import credentials_for
from subscribers.connection import connect


def trusted_ca(settings: HubSettings) -> Path | None:
    """``HUB_TLS_CA``, else the CA ``hub credentials tls`` made in the store, if any."""
    if settings.tls_ca is not None:
        return settings.tls_ca
    made = settings.credentials_store / "tls" / "ca.pem"
    return made if made.exists() else None


def tls_context(settings: HubSettings) -> ssl.SSLContext | None:
    """The client TLS context trusting the county's CA (``None``: plain connections)."""
    ca = trusted_ca(settings)
    return ssl.create_default_context(cafile=str(ca)) if ca else None


async def connect_as(
    settings: HubSettings,
    name: str,
    *,
    label: str,
    attempts: int = -1,
    reconnect_attempts: int | None = None,
) -> Client:
    """A connection to the hub's servers as ``name`` (``_admin``, ``_ops``, an organisation …)."""
    return await connect(
        settings.nats_url,
        name=label,
        attempts=attempts,
        reconnect_attempts=reconnect_attempts,
        credentials=credentials_for(settings, name),
        tls_ca=trusted_ca(settings),
    )
