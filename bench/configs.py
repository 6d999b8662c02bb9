"""The security configurations the hub is measured in, and the run's credentials.

- ``open``: no authorization, plain TCP (the configuration before issue 11). The hub still
  connects with its credentials file, which an open server ignores; organisations connect
  anonymously.
- ``auth``: operator mode; every organisation connects with its own user JWT (``orgs/ORG.creds``),
  the hub as ``_hub`` and ``_admin``, the bench's checks as ``_ops``.
- ``auth+tls``: the same over TLS, the server's certificate signed by the county's CA.

The raw nats-py baseline runs ``open`` and ``auth+tls``; secured, it is one user allowed ``>``
(the ``_admin`` identity). One credentials authority, store and CA serve the whole run; every
server of the run trusts it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client

from hub.config import HubSettings
from hub.identity import Authority, ServerTrust, ensure_demo, ensure_own
from hub.identity.tls import TlsFiles, ensure_tls
from hub.natsd import NatsServer
from hub.registry import Registry, load_registry
from subscribers.connection import connect

OPEN, AUTH, AUTH_TLS = "open", "auth", "auth+tls"
CONFIGS = (OPEN, AUTH, AUTH_TLS)
RAW_CONFIGS = (OPEN, AUTH_TLS)  # the baseline: as before, and fully secured
STORE_BYTES = 8 * 1024**3  # the account's JetStream limit and the servers' file store
UNLIMITED_RATE = 1_000_000  # one publisher sends thousands of events at once: not throttled
# what a child must not inherit from the shell that started the bench
INHERITED = (
    "HUB_CREDENTIALS",
    "HUB_CREDENTIALS_DIR",
    "HUB_TLS_CA",
    "HUB_NATS_URL",
    "BENCH_ANONYMOUS",
    "BENCH_CREDENTIALS",
    "BENCH_CREDENTIALS_DIR",
    "BENCH_TLS_CA",
)


@dataclass(frozen=True)
class Credentials:
    """The run's credentials authority, its store (the hub's and organisations') and its CA."""

    store: Path
    tls: TlsFiles

    @classmethod
    def create(cls, directory: Path) -> Credentials:
        store = directory / "credentials"
        authority = Authority.open(store, create=True, jetstream_bytes=STORE_BYTES)
        ensure_own(authority, cls.settings_of(store))
        credentials = cls(store, ensure_tls(directory / "tls", ["127.0.0.1"]))
        credentials.issue(load_registry())
        return credentials

    @staticmethod
    def settings_of(store: Path) -> HubSettings:
        return HubSettings(credentials_dir=store, jetstream_max_bytes=STORE_BYTES)

    def issue(self, registry: Registry) -> None:
        """Credentials for every organisation of ``registry`` (those already issued are kept)."""
        authority = Authority.open(self.store, jetstream_bytes=STORE_BYTES)
        ensure_demo(authority, self.settings_of(self.store), registry)

    def trust(self) -> ServerTrust:
        """What a secured server of the run trusts: the authority's operator and accounts."""
        return Authority.open(self.store, jetstream_bytes=STORE_BYTES).server_trust()


@dataclass(frozen=True)
class Config:
    """One security configuration of a run: how servers start and how everyone connects."""

    name: str
    credentials: Credentials

    @property
    def secured(self) -> bool:
        return self.name != OPEN

    @property
    def ca(self) -> Path | None:
        return self.credentials.tls.ca if self.name == AUTH_TLS else None

    def server(self, store_dir: Path, sync: bool) -> NatsServer:
        if not self.secured:
            return NatsServer(store_dir, sync_always=sync)
        return NatsServer(
            store_dir,
            sync_always=sync,
            trust=self.credentials.trust(),
            tls=self.credentials.tls if self.name == AUTH_TLS else None,
            max_store_bytes=STORE_BYTES,
        )

    def creds(self, name: str) -> Path | None:
        """The credentials file of an organisation or of ``_admin``/``_ops`` (open: none)."""
        if not self.secured:
            return None
        store = self.credentials.store
        return (
            store / f"{name[1:]}.creds"
            if name.startswith("_")
            else store / "orgs" / f"{name}.creds"
        )

    async def connect(self, url: str, name: str, label: str) -> Client:
        """A connection as ``name`` (an organisation, ``_admin`` or ``_ops``)."""
        return await connect(url, name=label, credentials=self.creds(name), tls_ca=self.ca)

    def hub_env(self, url: str) -> dict[str, str]:
        """The environment of ``hub serve`` (and ``hub ledger follow``) against ``url``."""
        env = {k: v for k, v in os.environ.items() if k not in INHERITED}
        env |= {
            "HUB_NATS_URL": url,
            # open too: the hub creates its streams as _admin (an open server ignores the JWT)
            "HUB_CREDENTIALS_DIR": str(self.credentials.store),
            "HUB_JETSTREAM_MAX_BYTES": str(STORE_BYTES),
            "HUB_INGEST_RATE": str(UNLIMITED_RATE),
            "HUB_INGEST_BURST": str(UNLIMITED_RATE),
        }
        if self.ca is not None:
            env["HUB_TLS_CA"] = str(self.ca)
        return env

    def farm_env(self, raw: bool = False) -> dict[str, str]:
        """The recipients' process: each organisation's credentials (raw: the one ``>`` user)."""
        env = {k: v for k, v in os.environ.items() if k not in INHERITED}
        if raw:
            if self.secured:
                env["BENCH_CREDENTIALS"] = str(self.creds("_admin"))
        else:
            # the SDK checks the hub's signature and signs receipts in every configuration
            env["BENCH_CREDENTIALS_DIR"] = str(self.credentials.store / "orgs")
            if not self.secured:
                env["BENCH_ANONYMOUS"] = "1"
        if self.ca is not None:
            env["BENCH_TLS_CA"] = str(self.ca)
        return env
