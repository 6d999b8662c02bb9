"""执法协作信息共享枢纽: the hub that shares Article 15 enforcement information over NATS.

The running parts live in ``hub.service`` (the hub process), ``hub.natsd`` (the embedded
nats-server) and ``hub.cli`` (the ``hub`` command); this package exports the light ones.
"""

from hub.config import HubSettings
from hub.errors import (
    ConfigError,
    EventRejected,
    HubError,
    HubUnavailable,
    NatsServerError,
    RegistryError,
)
from hub.registry import Organisation, OrgKind, Registry, load_registry

__all__ = [
    "ConfigError",
    "EventRejected",
    "HubError",
    "HubSettings",
    "HubUnavailable",
    "NatsServerError",
    "OrgKind",
    "Organisation",
    "Registry",
    "RegistryError",
    "load_registry",
]
