"""The ``hub`` command, one module per command group.

``running`` (up, serve), ``publishing`` (publish, example, tail), ``watching`` (lag, dashboard),
``registry``, ``quarantine``, ``reports``, ``ledger``, ``docs`` (schemas and AsyncAPI export),
``credentials`` (identities and TLS), ``calendar`` (working days);
``common`` holds what they share, ``root`` the command itself and its exit codes.
"""

from hub.cli import (
    calendar,
    credentials,
    docs,
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
    "calendar",
    "credentials",
    "docs",
    "ledger",
    "main",
    "publishing",
    "quarantine",
    "registry",
    "reports",
    "running",
    "watching",
]
