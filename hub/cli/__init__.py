"""The ``hub`` command, one module per command group.

``running`` (up, serve), ``publishing`` (publish, example, tail), ``watching`` (lag, dashboard),
``registry``, ``quarantine``, ``reports``, ``ledger``, ``docs`` (schemas and AsyncAPI export),
``credentials`` (identities and TLS), ``calendar`` (working days), ``cases`` (case workflows);
``audit`` (the signed record), ``gateway`` (HTTP); ``common`` holds what they share, ``root``
the command itself and its exit codes.
"""

from hub.cli import (
    audit,
    calendar,
    cases,
    credentials,
    docs,
    gateway,
    ledger,
    publishing,
    quarantine,
    registry,
    reports,
    running,
    watching,
)
from hub.cli.root import app, main

__all__ = [
    "app",
    "audit",
    "calendar",
    "cases",
    "credentials",
    "docs",
    "gateway",
    "ledger",
    "main",
    "publishing",
    "quarantine",
    "registry",
    "reports",
    "running",
    "watching",
]
